"""What crosses between a node, its zygote and its function instances: named message
types, and the framing of the instance channel (a 4-byte length, then a pickle).

A message travels as a plain tuple, its type's tag first (`pack`/`unpack`), not as a
pickled NamedTuple: that would name the class in every message, and looking it up and
calling its constructor on each side cost more than the rest of the encoding (this runs
twice per invocation). Both ends are the same code base (the instance is a fork of the
app), so pickle is fast and simple here; decoding what an instance sends without it is
issue 8's work.
"""

from __future__ import annotations

import asyncio
import collections
import pickle
import socket
import struct
from typing import Any, NamedTuple

HEADER = struct.Struct("!I")


# ---- node <-> instance ------------------------------------------------------------------

class Invoke(NamedTuple):
    """Node -> instance: run the handler once."""

    request_id: str
    event: Any
    deadline: float  # epoch seconds
    headers: dict[str, str]


class Result(NamedTuple):
    """Instance -> node: how the invocation ended (`payload` is the result or Lambda's error dict)."""

    ok: bool
    payload: Any
    duration_ms: float
    max_memory_mb: int


class Call(NamedTuple):
    """Instance -> node: `ctx.invoke`, a nested synchronous invocation."""

    function: str
    payload: Any
    headers: dict[str, str]


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


InstanceMessage = Result | Call | Ready | InitError


# ---- node <-> zygote --------------------------------------------------------------------

class Fork(NamedTuple):
    """Node -> zygote: fork an instance of `function` (the socket travels as SCM_RIGHTS)."""

    token: int
    function: str


class Forked(NamedTuple):
    token: int
    pid: int


class Exited(NamedTuple):
    """Zygote -> node: an instance ended, with its wait status."""

    pid: int
    status: int


class ZygoteReady(NamedTuple):
    pid: int


class ZygoteFailed(NamedTuple):
    """Zygote -> node: the app could not be loaded (one line)."""

    message: str


ZygoteMessage = Forked | Exited | ZygoteReady | ZygoteFailed

Message = InstanceMessage | Invoke | Reply | ZygoteMessage | Fork

_TYPES: tuple[type[Any], ...] = (Invoke, Result, Call, Reply, Ready, InitError, Fork, Forked, Exited, ZygoteReady,
                                 ZygoteFailed)
_TAGS = {kind: tag for tag, kind in enumerate(_TYPES)}


def pack(message: Message) -> bytes:
    """One message as a pickled plain tuple: its tag, then its fields."""
    return pickle.dumps((_TAGS[type(message)], *message), protocol=pickle.HIGHEST_PROTOCOL)


def unpack(data: bytes | memoryview) -> Message:
    """The message `pack` made; ValueError for anything else."""
    fields = pickle.loads(data)
    try:
        kind = _TYPES[fields[0]]
    except (TypeError, IndexError, KeyError):
        raise ValueError("not a Squall wire message") from None
    message: Message = tuple.__new__(kind, fields[1:])
    return message


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
    decoded from it without copying, then handed to the single waiter.
    """

    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self.closed = False
        self._buffer = bytearray()
        self._messages: collections.deque[Any] = collections.deque()
        self._waiter: asyncio.Future[None] | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes | bytearray) -> None:
        """Decode every whole frame straight from the bytes read (one, usually); keep only
        an incomplete tail for the next read."""
        buffered = bool(self._buffer)
        if buffered:
            self._buffer += data
            data = self._buffer
        offset = 0
        with memoryview(data) as view:
            while len(data) - offset >= HEADER.size:
                end = offset + HEADER.size + HEADER.unpack_from(data, offset)[0]
                if len(data) < end:
                    break
                self._messages.append(unpack(view[offset + HEADER.size:end]))
                offset = end
        if buffered:
            del self._buffer[:offset]
        elif offset < len(data):
            self._buffer = bytearray(data[offset:])
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

    async def receive(self, expires: float) -> Any:
        """The next message. TimeoutError at `expires` (event loop time): one timer per
        wait is cheaper than asyncio.timeout, and this runs once per invocation.
        ConnectionResetError once the instance has gone."""
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
        return self._messages.popleft()

    def close(self) -> None:
        if self.transport is not None:
            self.transport.close()


def _expire(waiter: asyncio.Future[None]) -> None:
    if not waiter.done():
        waiter.set_exception(TimeoutError())
