"""The SQLite state file under a running node: deleted, replaced, locked, read-only, full.

A node (and each of its instances) keeps the file open. After `rm state.db` its open
connections still write to the deleted inode, and any new connection used to create an
empty database in its place: every write was acknowledged and lost on the next restart.
Now every write checks that the path still names the file the backend opened and refuses
(HTTP 500 with the JSON error) when it does not, no connection ever creates the file
again, and `problem()` says why so the node can report itself unhealthy.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from squall.backends import QueueConfig, deadline, open_backend
from squall.errors import BackendUnavailable
from tests.support import NodeProcess, free_port, squall, write_app

APP = """
    import json

    from squall import App

    app = App("state")


    @app.http("PUT", "/items/{id}")
    def put_item(event, ctx):
        ctx.table("items").put(event["pathParameters"]["id"], event["body"])
        return {"statusCode": 200, "body": "stored"}


    @app.http("PUT", "/other/{id}")
    def put_other(event, ctx):  # never started before the fault: its instance opens the file afresh
        ctx.table("other").put(event["pathParameters"]["id"], event["body"])
        return {"statusCode": 200, "body": "stored"}


    @app.http("GET", "/items/{id}")
    def get_item(event, ctx):
        return {"statusCode": 200, "body": json.dumps(ctx.table("items").get(event["pathParameters"]["id"]))}
"""


def _refused(response: httpx.Response) -> None:
    assert response.status_code == 500, response.text
    assert response.json()["message"] == "Internal Server Error"
    assert response.json()["requestId"]


def test_writes_after_the_state_file_is_deleted_are_refused_and_no_file_is_recreated(tmp_path):
    state = tmp_path / ".squall" / "state.db"
    admin = free_port()
    with NodeProcess(write_app(tmp_path, APP), extra=["--admin-port", str(admin)]) as node, \
            node.client(timeout=10) as client:
        assert client.put("/items/before", content="kept").status_code == 200  # a warm instance
        assert httpx.get(f"http://127.0.0.1:{admin}/health").status_code == 200
        state.unlink()
        health = httpx.get(f"http://127.0.0.1:{admin}/health")
        assert health.status_code == 503 and "was deleted while open" in health.json()["problems"]["backend"]

        _refused(client.put("/items/after", content="would be lost"))  # the warm instance's connection
        _refused(client.put("/other/after", content="would be lost"))  # a cold instance: cannot open it
        time.sleep(0.3)  # the node's own writes (metering, heartbeats) go on meanwhile
        assert not state.exists(), "a connection created a fresh empty database under the running node"
        log = node.log()
    assert f"the state file {state} was deleted while open" in log
    assert f"cannot open SQLite database {state}: unable to open database file" in log


def test_writes_after_the_state_file_is_replaced_are_refused(tmp_path):
    state = tmp_path / ".squall" / "state.db"
    with NodeProcess(write_app(tmp_path, APP)) as node, node.client(timeout=10) as client:
        assert client.put("/items/before", content="kept").status_code == 200
        shutil.copy(state, tmp_path / "copy.db")
        os.replace(tmp_path / "copy.db", state)  # e.g. a backup restored with mv

        _refused(client.put("/items/after", content="would go to the old file"))
        assert f"the state file {state} was replaced by another file while open" in node.log()


def test_problem_names_a_deleted_or_replaced_file_and_writes_are_refused(tmp_path):
    path = tmp_path / "state.db"
    backend = open_backend(f"sqlite:///{path}")
    try:
        backend.table_put("t", "k", 1)
        assert backend.problem() is None

        os.replace(path, tmp_path / "moved.db")
        assert backend.problem() == f"the state file {path} was deleted while open; restore it or restart the node"
        with pytest.raises(BackendUnavailable, match="refusing to write: the state file .* was deleted"):
            backend.table_put("t", "k", 2)
        with pytest.raises(BackendUnavailable, match="unable to open database file"):
            open_backend(backend.url)  # how an instance reopens it: never creating it
        assert not path.exists()

        shutil.copy(tmp_path / "moved.db", path)
        assert "was replaced by another file while open" in (backend.problem() or "")
        with pytest.raises(BackendUnavailable, match="was replaced"):
            backend.enqueue("q", "body")

        os.replace(tmp_path / "moved.db", path)  # the very file is back: healthy again
        assert backend.problem() is None
        assert backend.table_put("t", "k", 3).version == 2
    finally:
        backend.close()


HOLD = """
import sqlite3, sys, time
conn = sqlite3.connect(sys.argv[1], isolation_level=None)
if sys.argv[2] == "exclusive-mode":  # no other connection can even read
    conn.execute("PRAGMA locking_mode = EXCLUSIVE")
conn.execute("BEGIN EXCLUSIVE")
conn.execute("INSERT INTO items VALUES ('x', 'x', '1', 1)")
print("locked", flush=True)
time.sleep(10)
"""


@contextlib.contextmanager
def _locked(path: Path, how: str):
    """Another process holding BEGIN EXCLUSIVE on the file for 10 s."""
    holder = subprocess.Popen([sys.executable, "-c", HOLD, str(path), how], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout is not None and holder.stdout.readline() == "locked\n"
        yield
    finally:
        holder.kill()
        holder.wait()


def test_a_cold_read_needs_no_write_lock(tmp_path):
    state = tmp_path / ".squall" / "state.db"
    with NodeProcess(write_app(tmp_path, APP)) as node, node.client(timeout=10) as client:
        assert client.put("/items/a", content="A").status_code == 200
        with _locked(state, "exclusive"):
            began = time.monotonic()
            response = client.get("/items/a")  # the first GET: a cold instance opens the backend
            assert (response.status_code, response.json()) == (200, "A")
            assert time.monotonic() - began < 1.5


def test_a_read_that_cannot_proceed_gives_up_by_the_deadline(tmp_path):
    url = f"sqlite:///{tmp_path}/state.db"
    open_backend(url).close()
    with _locked(tmp_path / "state.db", "exclusive-mode"):  # not even a reader gets in
        began = time.time()
        with deadline.bounded(began + 1.0), pytest.raises(BackendUnavailable, match="database is locked"):
            open_backend(url).table_get("items", "a")  # as a cold instance's first ctx call
        elapsed = time.time() - began
    assert 1.0 - deadline.MARGIN - 0.1 < elapsed < 1.0, elapsed  # not SQLite's 30 s busy timeout


def _mount_tmpfs(directory: Path, size: str) -> None:
    directory.mkdir()
    result = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(directory)],
                            capture_output=True, text=True)
    if result.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs (needs root): {result.stderr.strip()}")


@pytest.fixture
def small_disk(tmp_path):
    """A 512 KiB filesystem holding a state file with one declared queue."""
    disk = tmp_path / "disk"
    _mount_tmpfs(disk, "512k")
    try:
        backend = open_backend(f"sqlite:///{disk}/state.db")
        backend.queue_declare("q", QueueConfig())
        backend.close()
        yield disk
    finally:
        subprocess.run(["umount", "-l", str(disk)], check=False)


def _one_line_error(result: subprocess.CompletedProcess, *expected: str) -> None:
    assert result.returncode == 1, result
    assert "Traceback" not in result.stderr
    assert result.stderr.count("\n") == 1 and result.stderr.startswith("Error: "), result.stderr
    for text in expected:
        assert text in result.stderr


def test_send_on_a_read_only_database_is_one_line(small_disk):
    url = f"sqlite:///{small_disk}/state.db"
    result = _send_read_only(small_disk, "closed")
    _one_line_error(result, "unable to open database file (the file system is read-only)")

    node = open_backend(url)  # as a running node keeps it open, with its WAL files
    try:
        node.table_put("t", "k", 1)
        result = _send_read_only(small_disk, "in-use")
    finally:
        node.close()
    _one_line_error(result, "attempt to write a readonly database (the file system is read-only)")


def _send_read_only(disk: Path, view: str) -> subprocess.CompletedProcess:
    """`squall send` through a read-only bind mount of `disk`."""
    target = disk.parent / view
    target.mkdir()
    subprocess.run(["mount", "--bind", str(disk), str(target)], check=True)
    try:
        subprocess.run(["mount", "-o", "remount,bind,ro", str(target)], check=True)
        result = squall("send", "q", "hello", "--backend", f"sqlite:///{target}/state.db", timeout=20)
    finally:
        subprocess.run(["umount", str(target)], check=True)
    assert f"SQLite database {target}/state.db" in result.stderr
    return result


def test_send_on_a_full_disk_is_one_line_and_loses_nothing_acknowledged(small_disk):
    url = f"sqlite:///{small_disk}/state.db"
    assert squall("send", "q", "acknowledged", "--backend", url).returncode == 0
    with contextlib.suppress(OSError), open(small_disk / "filler", "wb", buffering=0) as filler:
        while True:
            filler.write(b"\0" * 4096)
    result = squall("send", "q", "x" * 100_000, "--backend", url, timeout=20)
    _one_line_error(result, f"SQLite database {small_disk}/state.db", "(the disk is full)")

    (small_disk / "filler").unlink()
    backend = open_backend(url)
    try:
        assert [message.body for message in backend.peek("q")] == ["acknowledged"]
    finally:
        backend.close()
