"""Helpers of the conformance suite: threads started together, round trips counted."""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor


def run_threads(target, count: int, *args) -> list:
    """Run `target(i, *args)` on `count` threads started together; their results in order
    (a thread's exception is raised here)."""
    start = threading.Barrier(count)

    def run(i: int):
        start.wait(10)
        return target(i, *args)

    with ThreadPoolExecutor(count) as pool:
        return [future.result(60) for future in [pool.submit(run, i) for i in range(count)]]


@contextlib.contextmanager
def round_trips(backend) -> Iterator[list[str]]:
    """The commands this thread's backend sends while the block runs: their names as a Redis
    MONITOR sees them, or the statements SQLite runs on this thread's connection. Warm the
    backend up first (a first call connects, and loads a script)."""
    seen: list[str] = []
    if backend.distributed:
        with backend.connect().monitor() as monitor:
            yield seen
            backend.connect().ping()  # a marker: every command before it has been seen
            while (command := monitor.next_command())["command"] != "PING":
                name = command["command"].split()[0].upper()
                # not the commands a script runs, nor a new connection's handshake
                if command["client_type"] != "lua" and name not in ("CLIENT", "HELLO", "SELECT"):
                    seen.append(name)
    else:
        conn = backend._conn()
        conn.set_trace_callback(seen.append)
        try:
            yield seen
        finally:
            conn.set_trace_callback(None)
