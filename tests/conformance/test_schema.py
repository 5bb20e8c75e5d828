"""The SQLite schema version: new files, files of the first release, files of a newer release.

SQLite only: Redis keeps no schema (its key layout is `squall/backends/redis/keys.py`).
"""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import pytest

from squall.backends import QueueConfig, QueueStats, open_backend
from squall.backends.changefeed import change_stream
from squall.backends.sqlite import schema
from squall.errors import ConditionFailed, ConfigError
from tests.conformance.support import run_threads
from tests.conftest import FakeClock

FIXTURES = Path(__file__).parent / "fixtures"
#: the clock of the fixture's writer (make_release1_state.py)
T = 1_700_000_000.0


def user_version(path: Path) -> int:
    with sqlite3.connect(path) as conn:
        return conn.execute("PRAGMA user_version").fetchone()[0]


def release1_file(tmp_path: Path) -> Path:
    """A fresh state file loaded from the dump of one written by the first release."""
    path = tmp_path / "release1.db"
    conn = sqlite3.connect(path)
    conn.executescript((FIXTURES / "release1_state.sql").read_text(encoding="utf-8"))
    conn.execute("PRAGMA journal_mode = WAL")  # as the first release left its files
    conn.close()
    assert user_version(path) == 0
    return path


def test_a_new_file_is_at_the_latest_version(tmp_path):
    open_backend(f"sqlite:///{tmp_path}/new.db").close()
    assert user_version(tmp_path / "new.db") == schema.LATEST


def test_a_file_of_the_first_release_opens_and_works(tmp_path):
    path = release1_file(tmp_path)
    clock = FakeClock(T)
    b = open_backend(f"sqlite:///{path}", clock=clock)
    try:
        assert user_version(path) == schema.LATEST

        # the registry, read through QueueConfig
        assert b.queue_names() == ["async.handle", "async.handle-dlq", "orders", "orders-dlq"]
        assert b.queue_config("orders") == QueueConfig(dlq="orders-dlq", function="handle", max_receive_count=3,
                                                       visibility_timeout=30)
        assert b.queue_config("orders-dlq").is_dlq
        assert b.queue_config("async.handle").internal and b.queue_config("async.handle-dlq").internal

        # messages: visible, delayed, in flight (its old receipt still acks), dead-lettered
        assert b.queue_stats("orders") == QueueStats(visible=2, in_flight=1, delayed=1)
        assert [m.body for m in b.peek("orders")] == ["m2", "m3", "m4", "later"]
        assert [(m.body, m.attributes) for m in b.peek("orders-dlq")] == [("m0", {"i": 0})]
        in_flight_receipt = f"3.{1712478362740491782:x}"  # as the first release handed it out
        [m3, m4] = b.claim("orders", 10, 30, max_receives=3, dlq="orders-dlq")
        assert [(m.body, m.attributes, m.receive_count, m.sent_at) for m in (m3, m4)] == [
            ("m3", {"i": 3}, 1, T), ("m4", {"i": 4}, 1, T)]
        assert b.ack("orders", [in_flight_receipt, m3.receipt, m4.receipt]) == 3
        clock.advance(101)
        [later] = b.claim("orders", 10, 30)
        assert later.body == "later"
        assert b.redrive("orders-dlq", "orders") == 1
        assert [m.body for m in b.claim("orders", 10, 30)] == ["m0"]
        assert b.claim("async.handle", 1, 30)[0].body == '{"event": 1}'
        new_id = b.enqueue("orders", "after the upgrade")
        assert b.peek("orders")[-1].id == new_id

        # items keep their versions; conditional writes go on from them
        alice = b.table_get("users", "alice")
        assert (alice.value, alice.version) == ({"name": "Alice", "age": 30}, 2)
        with pytest.raises(ConditionFailed):
            b.table_put("users", "alice", {}, if_version=1)
        assert b.table_put("users", "alice", {"name": "Alice", "age": 31}, if_version=2, feed=True).version == 3
        assert [i.key for i in b.table_scan("users")] == ["alice", "bob"]
        assert b.table_get("plain", "k").value == [1, 2, 3]
        feed = [json.loads(r.data) for r in b.stream_read(change_stream("users"), 0, 0)]
        assert [(r["eventName"], r["key"], r["version"]) for r in feed] == [
            ("INSERT", "alice", 1), ("MODIFY", "alice", 2), ("INSERT", "bob", 1), ("MODIFY", "alice", 3)]

        # streams, their sequence counters and checkpoints
        assert b.stream_shards("clicks") == 2
        records = [r for shard in range(2) for r in b.stream_read("clicks", shard, 0)]
        assert sorted(r.data for r in records) == [f"click-{i}" for i in range(6)]
        assert (b.checkpoint_get("clicks", "agg", 0), b.checkpoint_get("clicks", "agg", 1)) == (2, 1)
        shard, seq = b.stream_append("clicks", "user-0", "click-6")
        assert seq == max(r.seq for r in records if r.shard == shard) + 1

        # timers (one claimed: its lease runs out), the lease, the slot, the node
        clock.now = T + 61
        assert [(t.key, t.payload) for t in b.timers_claim("sched", 10, 30)] == [
            ("claimed", "claimed-payload"), ("nightly", "nightly-payload")]
        clock.now = T
        assert b.lease_holder("leader") == "node-a"
        assert b.slot_count("fn.handle") == 1
        assert [(n.node_id, n.info) for n in b.nodes()] == [("node-a", {"app": "shop", "pid": 1})]
    finally:
        b.close()


def test_migration_happens_once_and_is_kept(tmp_path):
    path = release1_file(tmp_path)
    open_backend(f"sqlite:///{path}").close()
    open_backend(f"sqlite:///{path}").close()
    assert user_version(path) == schema.LATEST


def test_processes_opening_an_old_file_together_migrate_it_once(tmp_path):
    path = release1_file(tmp_path)
    backends = run_threads(lambda i: open_backend(f"sqlite:///{path}", clock=FakeClock(T)), 4)
    try:
        assert user_version(path) == schema.LATEST
        assert all(b.queue_stats("orders").total == 4 for b in backends)
    finally:
        for b in backends:
            b.close()


def test_a_file_of_a_newer_release_is_refused(tmp_path):
    path = tmp_path / "future.db"
    open_backend(f"sqlite:///{path}").close()
    with sqlite3.connect(path) as conn:
        conn.execute(f"PRAGMA user_version = {schema.LATEST + 1}")
    with pytest.raises(ConfigError, match=r"schema version \d+ was written by a newer Squall"):
        open_backend(f"sqlite:///{path}")
    assert user_version(path) == schema.LATEST + 1
