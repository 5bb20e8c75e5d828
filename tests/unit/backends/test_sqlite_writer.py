"""One write transaction at a time per process on SQLite: the writer lock.

Threads of a node wait for each other on a lock rather than in SQLite's busy handler,
which sleeps 1, 2, 5, 10... ms between retries; a write that cannot get the lock within
the invocation's deadline fails as a locked file does, with BackendUnavailable.
"""

from __future__ import annotations

import threading
import time

import pytest

from squall.backends import deadline, open_backend
from squall.errors import BackendUnavailable


@pytest.fixture
def backend(tmp_path):
    b = open_backend(f"sqlite:///{tmp_path}/state.db")
    yield b
    b.close()


def test_concurrent_writers_of_one_process_all_commit(backend):
    threads, per_thread = 8, 50

    def write(n: int) -> None:
        for i in range(per_thread):
            backend.table_put("t", f"{n}-{i}", {"n": n, "i": i})

    workers = [threading.Thread(target=write, args=(n,)) for n in range(threads)]
    for w in workers:
        w.start()
    for w in workers:
        w.join()
    assert len(backend.table_scan("t", limit=1000)) == threads * per_thread


def test_a_writer_held_past_the_deadline_fails_with_backend_unavailable(backend):
    backend.table_put("t", "k", {"v": 1})  # opens this thread's connection
    held, release = threading.Event(), threading.Event()

    def hold() -> None:
        with backend._write():  # a transaction kept open by another thread
            held.set()
            release.wait(10)

    holder = threading.Thread(target=hold)
    holder.start()
    try:
        assert held.wait(5)
        started = time.monotonic()
        with deadline.bounded(time.time() + deadline.MARGIN + 0.3), \
                pytest.raises(BackendUnavailable, match="database is locked"):
            backend.table_put("t", "k", {"v": 2})
        assert time.monotonic() - started < 2.0
    finally:
        release.set()
        holder.join()
    backend.table_put("t", "k", {"v": 3})  # the lock is free again
    assert backend.table_get("t", "k").value == {"v": 3}
