"""Wake-ups for SQLite: Linux inotify on the database file and its write-ahead log.

Every commit of any process writes the WAL, so a change of the file is the only news a
SQLite backend can get without polling; it cannot tell which queue changed, so the
callback gets None. inotify is reached through ctypes (no dependency); where it is missing
(not Linux, a filesystem without it) the watch does nothing and callers' slow polling is
all there is.
"""

from __future__ import annotations

import ctypes
import logging
import os
import select
import struct
import threading
from collections.abc import Callable

log = logging.getLogger("squall.backends")

_IN_MODIFY, _IN_CLOSE_WRITE, _IN_MOVED_TO, _IN_CREATE = 0x2, 0x8, 0x80, 0x100
_EVENT = struct.Struct("iIII")  # wd, mask, cookie, length of the name that follows
#: milliseconds the files must be quiet before a callback: a commit writes the WAL in
#: several calls, and a reader woken by the first of them would not see the commit yet
QUIET_MS = 1
#: least milliseconds between two callbacks: a busy node commits thousands of times a
#: second, and one wake-up per few milliseconds tells a poller all it needs (the kernel
#: merges the events that arrive meanwhile)
MIN_GAP_MS = 5


def _inotify(directory: str) -> int | None:
    """A non-blocking inotify descriptor watching `directory`, or None if there is none."""
    libc = ctypes.CDLL(None, use_errno=True)
    if not hasattr(libc, "inotify_init1"):
        return None
    fd = libc.inotify_init1(os.O_NONBLOCK | os.O_CLOEXEC)
    if fd < 0:
        return None
    mask = _IN_MODIFY | _IN_CLOSE_WRITE | _IN_MOVED_TO | _IN_CREATE
    if libc.inotify_add_watch(fd, os.fsencode(directory), mask) < 0:
        os.close(fd)
        return None
    return fd


def _names(buffer: bytes) -> set[bytes]:
    """The file names in a buffer of inotify events."""
    names, at = set(), 0
    while at + _EVENT.size <= len(buffer):
        _, _, _, length = _EVENT.unpack_from(buffer, at)
        at += _EVENT.size
        names.add(buffer[at:at + length].rstrip(b"\0"))
        at += length
    return names


class FileWatch:
    """Calls `callback(None)` from a daemon thread after the database or its WAL changed."""

    def __init__(self, path: str, callback: Callable[[str | None], None]):
        self._callback = callback
        self._pid = os.getpid()
        name = os.fsencode(os.path.basename(path))
        self._files = {name, name + b"-wal"}
        self._fd = _inotify(os.path.dirname(path))
        self._thread: threading.Thread | None = None
        if self._fd is not None:
            self._wake_read, self._wake_write = os.pipe()
            self._thread = threading.Thread(target=self._run, name="squall-sqlite-watch", daemon=True)
            self._thread.start()

    def _run(self) -> None:
        assert self._fd is not None
        poller = select.poll()
        poller.register(self._fd, select.POLLIN)
        poller.register(self._wake_read, select.POLLIN)
        stopped = select.poll()
        stopped.register(self._wake_read, select.POLLIN)
        while True:
            ready = {fd for fd, _ in poller.poll()}
            if self._wake_read in ready:
                return
            try:
                events = os.read(self._fd, 65536)
            except BlockingIOError:
                continue
            if not _names(events) & self._files:
                continue
            for _ in range(MIN_GAP_MS // QUIET_MS):  # until no event for QUIET_MS (a busy file: not long)
                if stopped.poll(QUIET_MS):  # the pauses double as the wait for close()
                    return
                try:
                    os.read(self._fd, 65536)
                except BlockingIOError:
                    break
            try:
                self._callback(None)
            except Exception:
                log.exception("a watch_enqueues callback failed")
            if stopped.poll(MIN_GAP_MS):
                return

    def close(self) -> None:
        if self._thread is None or self._pid != os.getpid():  # a forked child must not stop its parent's
            return
        os.write(self._wake_write, b"x")
        self._thread.join()
        self._thread = None
        for fd in (self._fd, self._wake_read, self._wake_write):
            if fd is not None:
                os.close(fd)
