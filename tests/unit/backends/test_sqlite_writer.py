"""One write transaction at a time on SQLite: the writer lock and the gate.

Threads of a node wait for each other on a lock, and processes for each other at a flock
gate beside the database, rather than in SQLite's busy handler, which sleeps 1, 2, 5,
10... ms between retries; a write that cannot pass either within the invocation's
deadline fails as a locked file does, with BackendUnavailable.
"""

from __future__ import annotations

import signal
import subprocess
import sys
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


# ---- the gate: writers of other processes ---------------------------------------------

HOLD_GATE = """
import fcntl, os, sys, time
fd = os.open(sys.argv[1], os.O_RDONLY | os.O_CREAT, 0o660)
fcntl.flock(fd, fcntl.LOCK_EX)
print("held", flush=True)
time.sleep(float(sys.argv[2]))
"""


def _hold_gate(path: str, seconds: float) -> subprocess.Popen:
    holder = subprocess.Popen([sys.executable, "-c", HOLD_GATE, path, str(seconds)], stdout=subprocess.PIPE, text=True)
    assert holder.stdout is not None and holder.stdout.readline() == "held\n"
    return holder


def test_a_write_waits_at_the_gate_while_another_process_holds_it_and_commits_once_it_is_free(backend):
    backend.table_put("t", "k", {"v": 1})
    holder = _hold_gate(backend.path + "-lock", 0.5)
    try:
        started = time.monotonic()
        backend.table_put("t", "k", {"v": 2})
        waited = time.monotonic() - started
    finally:
        holder.wait()
    assert 0.3 < waited < 5  # waited for the other process, then went in within moments
    assert backend.table_get("t", "k").value == {"v": 2}


def test_a_killed_holder_of_the_gate_leaves_it_free(backend):
    holder = _hold_gate(backend.path + "-lock", 60)
    holder.send_signal(signal.SIGKILL)
    holder.wait()
    started = time.monotonic()
    backend.table_put("t", "k", {"v": 1})
    assert time.monotonic() - started < 2
    assert backend.table_get("t", "k").value == {"v": 1}


def test_a_gate_held_past_the_deadline_fails_with_backend_unavailable(backend):
    backend.table_put("t", "k", {"v": 1})
    holder = _hold_gate(backend.path + "-lock", 60)
    try:
        with deadline.bounded(time.time() + deadline.MARGIN + 0.3), \
                pytest.raises(BackendUnavailable, match="database is locked"):
            backend.table_put("t", "k", {"v": 2})
    finally:
        holder.kill()
        holder.wait()
    assert backend.table_get("t", "k").value == {"v": 1}  # nothing half-written
