"""A function instance's output — print, `logging`, stdout and stderr, the runtime's
error lines — shipped to its node over the instance's channel.

An instance never writes its log to a file or a terminal itself: a write into a page
cache from inside the instance's memory cgroup cost a fifth of the node's HTTP throughput.
Its text is kept in memory and travels in the same socket write as the invocation's
`Result` (a `Log` frame before it), so an invocation that logs costs no system call of its
own; the node stores it (squall.observability.logs) and prints it. A long invocation's
output is shipped every FLUSH_INTERVAL, and whenever CHUNK characters are pending, so
what a handler printed before it hung is there when its timeout kills it. An invocation
that prints nothing sends no `Log` at all (the platform's lines are the node's).

`sys.stdout` and `sys.stderr` are replaced in the zygote, before the app is imported, by
streams whose target the instance switches to its buffer: a logger or library that kept
a reference to `sys.stdout` at import time writes into the buffer too. What bypasses them
(`os.write(1, ...)`, C extensions, subprocesses) lands in a pipe on the descriptors 1 and
2, drained into the buffer at each invocation's end and at every flush.
"""

from __future__ import annotations

import codecs
import io
import os
import socket
import sys
import threading
import time
from collections.abc import Callable

from squall.runtime import wire

#: seconds between shipments of a running invocation's output
FLUSH_INTERVAL = 0.2
#: characters pending that are shipped at once (a frame stays far below wire.MAX_FRAME)
CHUNK = 64 * 1024


class OutputStream(io.TextIOBase):
    """`sys.stdout` or `sys.stderr` of the zygote and its instances: text goes to `target`
    (the zygote's own stream; in an instance, its `Output`), unbuffered."""

    def __init__(self, name: str, fd: int, target: Callable[[str], object], flush: Callable[[], object]):
        super().__init__()
        self._name = name
        self._fd = fd
        self.target = target
        self._flush = flush
        self.buffer = _BinaryStream(self)

    @property
    def name(self) -> str:
        return self._name

    @property
    def encoding(self) -> str:  # type: ignore[override]
        return "utf-8"

    @property
    def errors(self) -> str:  # type: ignore[override]
        return "backslashreplace"

    def writable(self) -> bool:
        return True

    def write(self, text: str) -> int:
        if not isinstance(text, str):
            raise TypeError(f"write() argument must be str, not {type(text).__name__}")
        if text:
            self.target(text)
        return len(text)

    def flush(self) -> None:
        self._flush()

    def fileno(self) -> int:
        return self._fd

    def isatty(self) -> bool:
        return False


class _BinaryStream(io.RawIOBase):
    """`sys.stdout.buffer`: bytes, decoded as UTF-8 (a sequence split across writes kept)."""

    def __init__(self, text: OutputStream):
        super().__init__()
        self._text = text
        self._decoder = codecs.getincrementaldecoder("utf-8")("replace")

    def writable(self) -> bool:
        return True

    def write(self, data: bytes | bytearray | memoryview) -> int:  # type: ignore[override]
        self._text.write(self._decoder.decode(bytes(data)))
        return len(data)

    def fileno(self) -> int:
        return self._text.fileno()


def install_streams() -> None:
    """In the zygote, before the app is imported: stdout and stderr become OutputStreams,
    writing to the zygote's own streams until an instance captures them."""
    for name, fd in (("stdout", 1), ("stderr", 2)):
        original = getattr(sys, name)
        setattr(sys, name, OutputStream(f"<{name}>", fd, _write_through(original), original.flush))


def _write_through(stream: io.TextIOBase) -> Callable[[str], None]:
    def write(text: str) -> None:
        stream.write(text)
        stream.flush()
    return write


class Output:
    """An instance's output buffer, and the one writer on its socket.

    `request_id` names the invocation the pending text belongs to (empty outside one):
    each `Log` frame carries it, so the node attributes what a thread printed between two
    invocations to neither of them.
    """

    def __init__(self, sock: socket.socket):
        self.sock = sock
        self.request_id = ""
        self._pending: list[str] = []
        self._size = 0
        self._lock = threading.RLock()  # re-entered by a signal handler that prints mid-send
        self._running = False
        self._pipe = -1
        self._decoder = codecs.getincrementaldecoder("utf-8")("replace")

    def capture(self) -> None:
        """Take the process's output (in the instance, before the handler is loaded)."""
        for stream in (sys.stdout, sys.stderr):
            if isinstance(stream, OutputStream):
                stream.target = self.write
                stream._flush = _nothing
        read, write = os.pipe()
        os.set_blocking(read, False)
        os.dup2(write, 1)
        os.dup2(write, 2)
        os.close(write)
        self._pipe = read

    def start_flusher(self) -> None:
        """Start shipping long invocations' output as they run. Once the instance has said
        it is ready: a thread takes a tenth of a millisecond or more to start, which the
        node's turn with `Ready` then hides instead of the cold start paying it."""
        threading.Thread(target=self._ship_while_running, name="squall-output", daemon=True).start()

    def write(self, text: str) -> None:
        with self._lock:
            self._pending.append(text)
            self._size += len(text)
            if self._size >= CHUNK:
                self.flush()

    def begin(self, request_id: str) -> None:
        """An invocation starts: what is pending was written before it. (The descriptors
        are not read here: what a thread wrote to them between two invocations is
        attributed to the next one, as a log stream shows it on Lambda; a read per
        invocation would cost a system call to find nothing, nearly always.)"""
        if self._pending:
            self.flush()
        self.request_id = request_id
        self._running = True

    def finish(self) -> None:
        """An invocation's handler has returned: its output is complete but for the
        runtime's error line, shipped with the result by `send`."""
        self._running = False
        self.drain()

    def send(self, message: wire.Message, before: bytes = b"") -> None:
        """`message`, after a `Log` frame of what is pending and the frames `before`, in one write."""
        with self._lock:
            frames = self._take()
            frames += [before, wire.encode(message)] if before else [wire.encode(message)]
            self.sock.sendall(b"".join(frames) if len(frames) > 1 else frames[0])

    def complete(self, result: wire.Result, before: bytes = b"") -> None:
        """Send the invocation's result, its output (and `before`) first: what is written
        next is outside the invocation."""
        self.send(result, before)
        self.request_id = ""

    def flush(self) -> None:
        """Ship what is pending now. A node that has gone is noticed by the main loop, not
        by whoever printed."""
        with self._lock:
            frames = self._take()
            if frames:
                try:
                    self.sock.sendall(frames[0])
                except OSError:
                    pass

    def drain(self) -> None:
        """Move what was written to the descriptors 1 and 2 into the buffer."""
        if self._pipe < 0:
            return
        with self._lock:
            while True:
                try:
                    data = os.read(self._pipe, CHUNK)
                except BlockingIOError:
                    return
                if not data:
                    return
                self.write(self._decoder.decode(data))

    def _take(self) -> list[bytes]:
        if not self._pending:
            return []
        text = "".join(self._pending)
        self._pending = []
        self._size = 0
        return [wire.encode(wire.Log(self.request_id, text))]

    def _ship_while_running(self) -> None:
        """The flusher thread: every FLUSH_INTERVAL, ship a running invocation's output. It
        only polls a flag (waking it from each invocation would cost a context switch per
        invocation); an idle instance is frozen, and the thread with it."""
        while True:
            time.sleep(FLUSH_INTERVAL)
            if self._running:  # else the result took it
                self.drain()
                self.flush()


def _nothing() -> None:
    pass
