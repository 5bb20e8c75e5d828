"""What crosses between a node, its zygote and its function instances: named message
types, and the framing of the instance channel (a 4-byte length, then the message).

A message travels as a JSON array, its type's tag first (`pack`/`unpack`). Never as a
pickle: the node would then run whatever an instance's handler put in its result
(`__reduce__` makes unpickling call any function), outside every limit. JSON constructs
only plain values, and `unpack` checks each field's type, so a hostile instance can send
the node nothing but a well-formed message or an error. A value a handler produced (its
result, a nested `ctx.invoke` payload) is encoded once, in the instance, as Lambda's
runtime encodes it (`json`), and carried as a `Fragment` inside the message.
"""

from __future__ import annotations

import asyncio
import collections
import json
import re
import socket
import struct
from collections.abc import Callable
from typing import Any, NamedTuple

import orjson
from orjson import Fragment as Fragment  # re-exported: a value already encoded as JSON

from squall.aws import MAX_RESPONSE_BYTES

HEADER = struct.Struct("!I")


#: the largest message an instance may send: Lambda's 6 MB synchronous response limit,
#: plus room for the envelope. A bigger one is skipped unread (`Oversized`): an instance
#: checks its result first, so only a hostile one sends it.
MAX_RESULT_BYTES = MAX_RESPONSE_BYTES
MAX_FRAME = MAX_RESULT_BYTES + 4096

#: a field any JSON value may fill (the type checks below skip it)
ANY = object


class Headers(dict[str, str]):
    """Marker type of a field holding invocation headers: a JSON object of strings."""


# ---- node <-> instance ------------------------------------------------------------------

class Invoke(NamedTuple):
    """Node -> instance: run the handler once."""

    request_id: str
    event: Any
    deadline: float  # epoch seconds
    headers: Headers


class Result(NamedTuple):
    """Instance -> node: how the invocation ended (`payload` is the result or Lambda's error
    dict). It names its request: a result for another one means the instance is out of step
    (a handler wrote on its socket), and it is replaced."""

    request_id: str
    ok: bool
    payload: Any
    duration_ms: float
    max_memory_mb: int


class Call(NamedTuple):
    """Instance -> node: `ctx.invoke`, a nested synchronous invocation."""

    function: str
    payload: Any
    headers: Headers


class Reply(NamedTuple):
    """Node -> instance: the nested invocation's result, or its error dict."""

    ok: bool
    value: Any


class Ready(NamedTuple):
    """Instance -> node: the handler is loaded (milliseconds since the fork was asked for)."""

    init_ms: float


class InitError(NamedTuple):
    """Instance -> node: the handler could not be loaded (Lambda's error dict)."""

    error: dict[str, Any]


class Log(NamedTuple):
    """Instance -> node: text the instance wrote (whole lines, usually), during the
    invocation `request_id` names, or outside any (empty)."""

    request_id: str
    text: str


class Spans(NamedTuple):
    """Instance -> node, in the same write as the `Result` it precedes: the spans made in
    the instance since its last result (`SpanRecord.encode()` arrays; the node checks
    each). Sent only when there are some."""

    spans: list[Any]


class Oversized(NamedTuple):
    """Not sent by anyone: what the node's `Channel` yields for a message over MAX_FRAME,
    which it skipped without buffering it."""

    size: int


InstanceMessage = Result | Call | Ready | InitError | Log | Spans | Oversized


# ---- node <-> zygote --------------------------------------------------------------------

class Fork(NamedTuple):
    """Node -> zygote: fork an instance of `function` (the socket travels as SCM_RIGHTS);
    `initialization` is its AWS_LAMBDA_INITIALIZATION_TYPE."""

    token: int
    function: str
    initialization: str


class Forked(NamedTuple):
    token: int
    pid: int


class Exited(NamedTuple):
    """Zygote -> node: an instance ended, with its wait status."""

    pid: int
    status: int


class Manifest(NamedTuple):
    """Zygote -> node, before ZygoteReady: a piece of the app's description (JSON text,
    `squall.manifest`), in pieces that each fit one datagram."""

    chunk: str


class ZygoteReady(NamedTuple):
    pid: int


class ZygoteFailed(NamedTuple):
    """Zygote -> node: the app could not be loaded (one line)."""

    message: str


ZygoteMessage = Forked | Exited | Manifest | ZygoteReady | ZygoteFailed

Message = InstanceMessage | Invoke | Reply | ZygoteMessage | Fork

_TYPES: tuple[type[Any], ...] = (Invoke, Result, Call, Reply, Ready, InitError, Fork, Forked, Exited, Manifest,
                                 ZygoteReady, ZygoteFailed, Log, Spans)
_TAGS = {kind: tag for tag, kind in enumerate(_TYPES)}
#: what each field of each message must hold once decoded (ANY: whatever JSON decodes to)
_FIELD_TYPES: tuple[tuple[Any, ...], ...] = tuple(
    tuple({"str": str, "float": (int, float), "int": int, "bool": bool, "Headers": Headers,
           "dict[str, Any]": dict, "list[Any]": list}.get(annotation, ANY)
          for annotation in kind.__annotations__.values())
    for kind in _TYPES)


class WireError(ValueError):
    """A message that cannot be encoded (a value JSON cannot hold) or decoded (not a
    well-formed Squall message)."""


def dumps(value: Any, default: Callable[[Any], Any] | None = None) -> bytes:
    """A value as JSON by the `json` module's rules, without what JSON lacks (NaN, strings
    that are not Unicode text); `default` converts what `json` cannot encode itself.
    WireError for what it cannot encode."""
    try:
        return json.dumps(value, separators=(",", ":"), ensure_ascii=False, allow_nan=False, default=default).encode()
    except (TypeError, ValueError, RecursionError) as exc:  # UnicodeEncodeError is a ValueError
        raise WireError(str(exc)) from None


def to_json(value: Any) -> bytes:
    """A value the platform built (an event, a message) as JSON. orjson is fast, but stops
    at 254 levels of nesting; deeper values take the slower `json` encoder."""
    try:
        return orjson.dumps(value)
    except orjson.JSONEncodeError:
        return dumps(value)


#: an integer literal orjson cannot hold exactly (beyond 64 bits it silently decodes a
#: float): 19 digits or more, not the start of a fraction or exponent. Inside a string it
#: costs only the slower exact decode.
_BIG_INT = re.compile(rb"\d{19,}(?![\d.eE])")
#: every ASCII digit as "0", everything else as " ": a run of 19 digits is then a plain
#: substring search, ten times faster than `_BIG_INT`'s scan (this runs on every frame,
#: most of which have no such run; only those that do take the regex)
_DIGITS = bytes(0x30 if 0x30 <= byte <= 0x39 else 0x20 for byte in range(256))
_RUN = b"0" * 19


def loads(data: bytes | bytearray | memoryview | str) -> Any:
    """JSON as Python's `json` decodes it (the round trip Lambda's runtime gives), fast:
    orjson, which also checks the text (UTF-8, no lone surrogates, at most 1,024 levels),
    then `json` again only when an integer is too big for orjson to keep it exact (2**64
    must not arrive as 1.8446744073709552e+19). orjson.JSONDecodeError for bad JSON."""
    value = orjson.loads(data)
    raw = data.encode() if isinstance(data, str) else bytes(data) if isinstance(data, memoryview) else data
    if _RUN not in raw.translate(_DIGITS) or _BIG_INT.search(raw) is None:
        return value
    try:
        return json.loads(raw)
    except RecursionError:  # deeper than `json` goes, yet orjson decoded it: keep that
        return value


def pack(message: Message) -> bytes:
    """One message as a JSON array: its tag, then its fields."""
    return to_json([_TAGS[type(message)], *message])


def unpack(data: bytes | memoryview) -> Message:
    """The message `pack` made, its fields checked; WireError for anything else."""
    try:
        fields = loads(data)
        kind = _TYPES[fields[0]]
        types = _FIELD_TYPES[fields[0]]
    except (orjson.JSONDecodeError, TypeError, IndexError, KeyError):
        raise WireError("not a Squall wire message") from None
    values = fields[1:]
    if len(values) != len(types) or not all(t is ANY or _holds(t, v) for t, v in zip(types, values, strict=True)):
        raise WireError(f"malformed {kind.__name__} message")
    message: Message = tuple.__new__(kind, values)
    return message


def _holds(expected: Any, value: Any) -> bool:
    if expected is Headers:
        return isinstance(value, dict) and all(isinstance(v, str) for v in value.values())
    if expected is bool or isinstance(value, bool):  # JSON true is not an int here, nor 1 a bool
        return expected is bool and isinstance(value, bool)
    return isinstance(value, expected)


def encode(message: Message) -> bytes:
    data = pack(message)
    return HEADER.pack(len(data)) + data


def send(sock: socket.socket, message: Message) -> None:
    sock.sendall(encode(message))


def recv(sock: socket.socket) -> Any:
    """Read one message; EOFError when the other end has gone."""
    (size,) = HEADER.unpack(_recv_exact(sock, HEADER.size))
    return unpack(_recv_exact(sock, size))


def _recv_exact(sock: socket.socket, size: int) -> bytes:
    chunks = []
    while size:
        chunk = sock.recv(min(size, 1 << 20))
        if not chunk:
            raise EOFError("peer closed the connection")
        chunks.append(chunk)
        size -= len(chunk)
    return b"".join(chunks)


class Channel(asyncio.Protocol):
    """The node's end of an instance's socket: framed messages in and out.

    A protocol rather than a StreamReader: a message usually arrives in one read, and is
    decoded from it without copying, then handed to the single waiter. What an instance
    sends is untrusted: a message over MAX_FRAME is skipped as it streams in (never
    buffered) and yields `Oversized`; one that does not decode yields its WireError,
    which `receive` raises.
    """

    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self.closed = False
        self._buffer = bytearray()
        self._skip = 0  # bytes of an oversized message still to discard
        self._messages: collections.deque[Message | WireError] = collections.deque()
        self._waiter: asyncio.Future[None] | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes | bytearray) -> None:
        """Decode every whole frame straight from the bytes read (one, usually); keep only
        an incomplete tail for the next read."""
        if self._skip:
            skipped = min(self._skip, len(data))
            self._skip -= skipped
            data = data[skipped:]
        buffered = bool(self._buffer)
        if buffered:
            self._buffer += data
            data = self._buffer
        offset = 0
        with memoryview(data) as view:
            while len(data) - offset >= HEADER.size:
                size = HEADER.unpack_from(data, offset)[0]
                if size > MAX_FRAME:
                    self._messages.append(Oversized(size))
                    skipped = min(size, len(data) - offset - HEADER.size)
                    self._skip = size - skipped
                    offset += HEADER.size + skipped
                    continue
                end = offset + HEADER.size + size
                if len(data) < end:
                    break
                try:
                    self._messages.append(unpack(view[offset + HEADER.size:end]))
                except WireError as exc:
                    self._messages.append(exc)
                offset = end
        if buffered:
            del self._buffer[:offset]
        elif offset < len(data):
            self._buffer = bytearray(data[offset:])
        if self._messages:
            self._wake()

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        self._wake()

    def _wake(self) -> None:
        if self._waiter is not None and not self._waiter.done():
            self._waiter.set_result(None)

    def send(self, message: Message) -> None:
        if self.transport is None or self.closed:
            raise ConnectionResetError("the instance's socket is closed")
        self.transport.write(encode(message))

    async def receive(self, expires: float) -> Message:
        """The next message. TimeoutError at `expires` (event loop time): one timer per
        wait is cheaper than asyncio.timeout, and this runs once per invocation.
        ConnectionResetError once the instance has gone; WireError for a malformed message."""
        while not self._messages:
            if self.closed:
                raise ConnectionResetError("the instance closed its socket")
            loop = asyncio.get_running_loop()
            self._waiter = waiter = loop.create_future()
            timer = loop.call_at(expires, _expire, waiter)
            try:
                await waiter
            finally:
                timer.cancel()
                self._waiter = None
        message = self._messages.popleft()
        if isinstance(message, WireError):
            raise message
        return message

    def close(self) -> None:
        if self.transport is not None:
            self.transport.close()


def _expire(waiter: asyncio.Future[None]) -> None:
    if not waiter.done():
        waiter.set_exception(TimeoutError())
