"""The backend protocol, checked against every backend (the `backend` fixture is parametrized).

Only the public protocol is used, never SQL or Redis commands, so one suite holds both
backends to the same behaviour. Time is a FakeClock that tests move by hand.
"""

from __future__ import annotations

import json
import os
import threading

import pytest

from squall.backends import open_backend
from squall.backends.changefeed import change_stream
from squall.backends.protocol import QueueConfig, QueueStats, shard_for
from squall.errors import ConditionFailed


def bodies(messages) -> list[str]:
    return [m.body for m in messages]


def feed_records(backend, table: str) -> list[dict]:
    """Every change-feed record of a table, shard by shard, in append order."""
    stream = change_stream(table)
    records = []
    for shard in range(backend.stream_shards(stream)):
        records += backend.stream_read(stream, shard, 0, limit=1000)
    return [json.loads(r.data) for r in sorted(records, key=lambda r: r.timestamp)]


# ---- queues ---------------------------------------------------------------------------


def test_enqueue_claim_ack(backend, clock):
    message_id = backend.enqueue("q", "hello", {"k": "v"})
    [m] = backend.claim("q", 10, 30)
    assert (m.id, m.queue, m.body, m.attributes) == (message_id, "q", "hello", {"k": "v"})
    assert m.receive_count == 1
    assert m.receipt
    assert m.sent_at == clock.now and m.first_received_at == clock.now
    assert backend.ack("q", [m.receipt]) == 1
    assert backend.ack("q", [m.receipt]) == 0
    assert backend.queue_stats("q").total == 0
    clock.advance(60)
    assert backend.claim("q", 10, 30) == []


def test_claim_is_in_send_order_and_respects_max(backend):
    for i in range(25):
        backend.enqueue("q", f"m{i}")
    first = backend.claim("q", 10, 30)
    second = backend.claim("q", 10, 30)
    third = backend.claim("q", 10, 30)
    assert bodies(first + second + third) == [f"m{i}" for i in range(25)]
    assert [len(first), len(second), len(third)] == [10, 10, 5]
    assert len({m.receipt for m in first + second + third}) == 25


def test_queues_are_separate(backend):
    backend.enqueue("a", "for a")
    backend.enqueue("b", "for b")
    [m] = backend.claim("a", 10, 30)
    assert m.body == "for a"
    assert backend.ack("b", [m.receipt]) == 0  # a receipt only acks in its own queue
    assert backend.ack("a", [m.receipt]) == 1
    assert bodies(backend.claim("b", 10, 30)) == ["for b"]


def test_visibility_timeout_redelivers_with_new_receipt(backend, clock):
    backend.enqueue("q", "x")
    [first] = backend.claim("q", 10, 30)
    assert backend.claim("q", 10, 30) == []
    clock.advance(29)
    assert backend.claim("q", 10, 30) == []
    clock.advance(2)
    [second] = backend.claim("q", 10, 30)
    assert second.id == first.id
    assert second.receive_count == 2
    assert second.receipt != first.receipt
    assert second.first_received_at == first.first_received_at
    # the first receipt is stale now
    assert backend.ack("q", [first.receipt]) == 0
    assert backend.release("q", first.receipt) is False
    assert backend.dead_letter("q", first.receipt, "dlq") is False
    assert backend.queue_stats("dlq").total == 0
    assert backend.ack("q", [second.receipt]) == 1


def test_ack_many_ignores_unknown_receipts(backend):
    backend.enqueue_batch("q", [(f"m{i}", None, 0.0) for i in range(5)])
    messages = backend.claim("q", 5, 30)
    assert backend.ack("q", []) == 0
    assert backend.ack("q", [m.receipt for m in messages[:3]] + ["no-such-receipt"]) == 3
    assert backend.queue_stats("q") == QueueStats(visible=0, in_flight=2, delayed=0)


def test_release_makes_visible_after_delay(backend, clock):
    backend.enqueue("q", "x")
    [m] = backend.claim("q", 1, 300)
    assert backend.release("q", m.receipt, delay=5) is True
    assert backend.queue_stats("q") == QueueStats(visible=0, in_flight=1, delayed=0)
    assert backend.claim("q", 1, 300) == []
    clock.advance(6)
    [again] = backend.claim("q", 1, 300)
    assert again.id == m.id and again.receive_count == 2
    assert backend.release("q", again.receipt) is True
    assert backend.queue_stats("q").visible == 1
    [third] = backend.claim("q", 1, 300)
    assert backend.ack("q", [third.receipt]) == 1
    assert backend.release("q", third.receipt) is False


def test_release_keeps_the_receipt_until_received_again(backend):
    backend.enqueue("q", "x")
    [m] = backend.claim("q", 1, 300)
    assert backend.release("q", m.receipt, delay=60)
    assert backend.ack("q", [m.receipt]) == 1


def test_delay_on_enqueue(backend, clock):
    backend.enqueue("q", "later", delay=10)
    backend.enqueue("q", "now")
    assert backend.queue_stats("q") == QueueStats(visible=1, in_flight=0, delayed=1)
    [now] = backend.claim("q", 10, 300)
    assert now.body == "now"
    assert backend.queue_stats("q") == QueueStats(visible=0, in_flight=1, delayed=1)
    backend.ack("q", [now.receipt])
    clock.advance(11)
    assert backend.queue_stats("q") == QueueStats(visible=1, in_flight=0, delayed=0)
    [m] = backend.claim("q", 10, 300)
    assert m.body == "later" and m.receive_count == 1


def test_max_receives_moves_to_dlq_on_claim(backend, clock):
    message_id = backend.enqueue("q", "poison", {"trace": {"id": "t-1"}})
    sent_at = clock.now
    backend.enqueue("q", "fine")
    for receive in (1, 2):
        messages = backend.claim("q", 10, 30, max_receives=2, dlq="q-dlq")
        assert [(m.body, m.receive_count) for m in messages] == [("poison", receive), ("fine", receive)]
        backend.ack("q", [m.receipt for m in messages if m.body == "fine"] if receive == 2 else [])
        clock.advance(31)
    assert backend.claim("q", 10, 30, max_receives=2, dlq="q-dlq") == []
    assert backend.queue_stats("q").total == 0
    assert backend.queue_stats("q-dlq") == QueueStats(visible=1, in_flight=0, delayed=0)
    [dead] = backend.claim("q-dlq", 10, 30)
    assert (dead.id, dead.queue, dead.body, dead.attributes) == (message_id, "q-dlq", "poison", {"trace": {"id": "t-1"}})
    assert dead.sent_at == sent_at
    assert dead.receive_count == 1  # counting restarts in the DLQ


def test_max_receives_fills_the_batch_past_dead_messages(backend, clock):
    backend.enqueue_batch("q", [(f"old{i}", None, 0.0) for i in range(3)])
    backend.claim("q", 3, 10)
    clock.advance(11)
    backend.enqueue_batch("q", [(f"new{i}", None, 0.0) for i in range(3)])
    messages = backend.claim("q", 3, 10, max_receives=1, dlq="dlq")
    assert bodies(messages) == ["new0", "new1", "new2"]
    assert bodies(backend.peek("dlq")) == ["old0", "old1", "old2"]


def test_claim_without_dlq_ignores_max_receives(backend, clock):
    backend.enqueue("q", "x")
    backend.claim("q", 1, 10)
    clock.advance(11)
    [m] = backend.claim("q", 1, 10, max_receives=1)
    assert m.receive_count == 2


def test_dead_letter(backend):
    message_id = backend.enqueue("q", "bad", {"a": 1})
    [m] = backend.claim("q", 1, 30)
    assert backend.dead_letter("q", m.receipt, "dlq") is True
    assert backend.dead_letter("q", m.receipt, "dlq") is False
    assert backend.queue_stats("q").total == 0
    assert backend.queue_stats("dlq") == QueueStats(visible=1, in_flight=0, delayed=0)
    [dead] = backend.claim("dlq", 1, 30)
    assert (dead.id, dead.body, dead.attributes, dead.receive_count) == (message_id, "bad", {"a": 1}, 1)
    assert backend.ack("q", [m.receipt]) == 0


def test_redrive_resets_counts(backend, clock):
    ids = backend.enqueue_batch("q", [(f"m{i}", {"i": i}, 0.0) for i in range(3)])
    sent_at = clock.now
    clock.advance(5)
    for m in backend.claim("q", 3, 30):
        backend.dead_letter("q", m.receipt, "dlq")
    assert backend.redrive("dlq", "q", limit=2) == 2
    assert backend.queue_stats("dlq").visible == 1
    assert backend.redrive("dlq", "q") == 1
    assert backend.redrive("dlq", "q") == 0
    assert backend.queue_stats("q") == QueueStats(visible=3, in_flight=0, delayed=0)
    messages = backend.claim("q", 10, 30)
    assert sorted(m.id for m in messages) == sorted(ids)
    assert {m.body: m.attributes for m in messages} == {f"m{i}": {"i": i} for i in range(3)}
    assert all(m.receive_count == 1 and m.sent_at == sent_at for m in messages)


def test_large_batches_keep_send_order_through_claim_dead_letter_and_redrive(backend):
    """More messages than a backend moves per internal step (Redis redrives 1,000 per script)."""
    sent = [f"m{i}" for i in range(2500)]
    backend.enqueue_batch("q", [(body, None, 0.0) for body in sent])
    claimed = backend.claim("q", 2500, 30)
    assert bodies(claimed) == sent
    for m in claimed:
        backend.dead_letter("q", m.receipt, "dlq")
    assert backend.redrive("dlq", "q") == 2500
    again = backend.claim("q", 2500, 30)
    assert bodies(again) == sent
    assert backend.ack("q", [m.receipt for m in again] + [again[0].receipt]) == 2500  # a repeat counts once
    assert backend.queue_stats("q").total == 0 and backend.queue_stats("dlq").total == 0


def test_stats(backend, clock):
    assert backend.queue_stats("empty") == QueueStats(0, 0, 0)
    backend.enqueue_batch("q", [("v1", None, 0.0), ("v2", None, 0.0), ("v3", None, 0.0), ("d", None, 100.0)])
    backend.claim("q", 1, 50)
    stats = backend.queue_stats("q")
    assert stats == QueueStats(visible=2, in_flight=1, delayed=1)
    assert stats.total == 4
    clock.advance(51)  # the in-flight message times out and is visible again
    assert backend.queue_stats("q") == QueueStats(visible=3, in_flight=0, delayed=1)


def test_peek_does_not_claim(backend):
    ids = backend.enqueue_batch("q", [("a", {"x": 1}, 0.0), ("b", None, 0.0), ("c", None, 0.0)])
    peeked = backend.peek("q", limit=2)
    assert [(m.id, m.body, m.receipt, m.receive_count) for m in peeked] == [(ids[0], "a", "", 0), (ids[1], "b", "", 0)]
    assert peeked[0].attributes == {"x": 1}
    assert backend.queue_stats("q").visible == 3
    assert bodies(backend.claim("q", 10, 30)) == ["a", "b", "c"]
    assert [m.receive_count for m in backend.peek("q")] == [1, 1, 1]


def test_purge(backend):
    backend.enqueue_batch("q", [(str(i), None, 0.0) for i in range(5)])
    backend.enqueue("q", "delayed", delay=60)
    backend.enqueue("other", "stays")
    backend.claim("q", 2, 30)
    assert backend.purge("q") == 6
    assert backend.queue_stats("q").total == 0
    assert backend.purge("q") == 0
    assert backend.queue_stats("other").total == 1


def test_queue_registry(backend):
    assert backend.queue_names() == []
    assert backend.queue_config("orders") is None
    backend.queue_declare("orders", QueueConfig(visibility_timeout=30, dlq="orders-dlq"))
    backend.queue_declare("audit", QueueConfig())
    assert backend.queue_names() == ["audit", "orders"]
    assert backend.queue_config("orders") == QueueConfig(visibility_timeout=30, dlq="orders-dlq")
    backend.queue_declare("orders", QueueConfig(visibility_timeout=60))
    assert backend.queue_config("orders") == QueueConfig(visibility_timeout=60)
    assert backend.queue_config("audit") == QueueConfig()
    assert backend.queue_names() == ["audit", "orders"]


def test_enqueue_batch(backend, clock):
    ids = backend.enqueue_batch("q", [("a", {"n": 1}, 0.0), ("b", None, 0.0), ("c", None, 30.0)])
    assert len(ids) == 3 and len(set(ids)) == 3
    assert backend.queue_stats("q") == QueueStats(visible=2, in_flight=0, delayed=1)
    messages = backend.claim("q", 10, 300)
    assert [(m.id, m.body, m.attributes) for m in messages] == [(ids[0], "a", {"n": 1}), (ids[1], "b", {})]
    clock.advance(31)
    assert [m.id for m in backend.claim("q", 10, 300)] == [ids[2]]
    assert backend.enqueue_batch("q", []) == []


def test_attributes_round_trip(backend):
    attributes = {
        "nested": {"deeper": {"list": [1, 2.5, None, True, "ü"]}},
        "unicode": "日本語 ✓ \u00e9 😀",
        "number": 42,
        "empty": {},
    }
    body = "body with ünïcödé 😀 and \"quotes\"\nnewline"
    backend.enqueue("q", body, attributes)
    [peeked] = backend.peek("q")
    [m] = backend.claim("q", 1, 30)
    assert peeked.attributes == m.attributes == attributes
    assert m.body == body


# ---- tables ---------------------------------------------------------------------------


def test_table_put_get_delete(backend):
    assert backend.table_get("t", "k") is None
    item = backend.table_put("t", "k", {"a": [1, 2], "s": "é"})
    assert (item.key, item.value, item.version) == ("k", {"a": [1, 2], "s": "é"}, 1)
    assert backend.table_get("t", "k") == item
    assert backend.table_put("t", "k", "v2").version == 2
    assert backend.table_put("t", "k", 3).version == 3
    assert backend.table_get("t", "k").value == 3
    assert backend.table_get("other", "k") is None
    old = backend.table_delete("t", "k")
    assert (old.value, old.version) == (3, 3)
    assert backend.table_get("t", "k") is None
    assert backend.table_delete("t", "k") is None


@pytest.mark.parametrize("value", [None, 0, 1.5, "s", [1, "two"], {"n": {"m": None}}, True])
def test_table_values_are_json(backend, value):
    backend.table_put("t", "k", value)
    assert backend.table_get("t", "k").value == value


def test_table_scan(backend):
    for key in ["a/2", "b/1", "a/1", "ab", "a/10", "a", "é/1", "é/2"]:
        backend.table_put("t", key, key.upper())
    backend.table_put("other", "a/3", "not here")

    def keys(**kwargs):
        return [item.key for item in backend.table_scan("t", **kwargs)]

    assert keys() == ["a", "a/1", "a/10", "a/2", "ab", "b/1", "é/1", "é/2"]
    assert keys(prefix="a/") == ["a/1", "a/10", "a/2"]
    assert keys(prefix="a/", start_after="a/10") == ["a/2"]
    assert keys(prefix="a/", limit=2) == ["a/1", "a/10"]
    assert keys(start_after="ab", limit=2) == ["b/1", "é/1"]
    assert keys(prefix="é") == ["é/1", "é/2"]
    assert keys(prefix="zzz") == []
    assert [(i.value, i.version) for i in backend.table_scan("t", prefix="b/")] == [("B/1", 1)]


def test_if_version(backend):
    backend.table_put("t", "k", "v1")
    assert backend.table_put("t", "k", "v2", if_version=1).version == 2
    with pytest.raises(ConditionFailed):
        backend.table_put("t", "k", "v3", if_version=1)
    assert backend.table_get("t", "k").value == "v2"
    assert backend.table_get("t", "k").version == 2
    with pytest.raises(ConditionFailed):
        backend.table_put("t", "missing", "v", if_version=1)
    assert backend.table_get("t", "missing") is None


def test_if_absent(backend):
    assert backend.table_put("t", "k", "first", if_absent=True).version == 1
    with pytest.raises(ConditionFailed):
        backend.table_put("t", "k", "second", if_absent=True)
    assert (backend.table_get("t", "k").value, backend.table_get("t", "k").version) == ("first", 1)


def test_delete_if_version(backend):
    backend.table_put("t", "k", "v1")
    backend.table_put("t", "k", "v2")
    with pytest.raises(ConditionFailed):
        backend.table_delete("t", "k", if_version=1)
    assert backend.table_get("t", "k").value == "v2"
    assert backend.table_delete("t", "k", if_version=2).value == "v2"
    assert backend.table_get("t", "k") is None


def test_change_feed(backend, clock):
    backend.table_put("t", "k", {"n": 1}, feed=True)
    clock.advance(1)
    backend.table_put("t", "k", {"n": 2}, feed=True)
    clock.advance(1)
    backend.table_delete("t", "k", feed=True)
    records = feed_records(backend, "t")
    assert [(r["eventName"], r["key"], r["oldImage"], r["newImage"], r["version"]) for r in records] == [
        ("INSERT", "k", None, {"n": 1}, 1),
        ("MODIFY", "k", {"n": 1}, {"n": 2}, 2),
        ("REMOVE", "k", {"n": 2}, None, 2),
    ]
    start = clock.now - 2
    assert [r["timestamp"] for r in records] == [start, start + 1, start + 2]
    stream = change_stream("t")
    shard = shard_for("k", backend.stream_shards(stream))
    assert [r.partition_key for r in backend.stream_read(stream, shard, 0)] == ["k", "k", "k"]


def test_change_feed_orders_records_per_key(backend):
    for round_ in range(3):
        for key in ("a", "b", "c", "d"):
            backend.table_put("t", key, round_, feed=True)
    stream = change_stream("t")
    for key in ("a", "b", "c", "d"):
        shard = shard_for(key, backend.stream_shards(stream))
        values = [json.loads(r.data)["newImage"] for r in backend.stream_read(stream, shard, 0) if r.partition_key == key]
        assert values == [0, 1, 2]


def test_no_feed_record_without_feed_or_when_condition_fails(backend):
    backend.table_put("t", "quiet", 1)
    backend.table_delete("t", "quiet")
    backend.table_put("t", "k", 1, feed=True)
    with pytest.raises(ConditionFailed):
        backend.table_put("t", "k", 2, if_absent=True, feed=True)
    with pytest.raises(ConditionFailed):
        backend.table_put("t", "k", 2, if_version=7, feed=True)
    with pytest.raises(ConditionFailed):
        backend.table_delete("t", "k", if_version=7, feed=True)
    backend.table_delete("t", "never-there", feed=True)
    assert [(r["eventName"], r["key"]) for r in feed_records(backend, "t")] == [("INSERT", "k")]


# ---- streams --------------------------------------------------------------------------


def test_stream_create_and_shards(backend):
    assert backend.stream_shards("s") == 0
    assert backend.stream_create("s", 4) == 4
    assert backend.stream_create("s", 8) == 4  # exists: unchanged
    assert backend.stream_shards("s") == 4
    shard, seq = backend.stream_append("auto", "any-key", "d")  # created with one shard
    assert shard == 0 and seq > 0
    assert backend.stream_shards("auto") == 1


def test_stream_per_partition_order_across_many_keys(backend, clock):
    backend.stream_create("s", 4)
    keys = [f"key-{i}" for i in range(40)]
    appended = {}
    for n in range(5):
        for key in keys:
            shard, seq = backend.stream_append("s", key, f"{key}:{n}")
            assert shard == shard_for(key, 4)
            appended[(shard, seq)] = f"{key}:{n}"
            clock.advance(0.001)
    assert len(appended) == 200
    seen: dict[str, list[int]] = {}
    for shard in range(4):
        records = backend.stream_read("s", shard, 0, limit=1000)
        seqs = [r.seq for r in records]
        assert seqs == sorted(set(seqs)) and seqs[0] > 0
        for r in records:
            assert (r.stream, r.shard) == ("s", shard)
            assert appended[(shard, r.seq)] == r.data
            key, n = r.data.split(":")
            assert r.partition_key == key
            seen.setdefault(key, []).append(int(n))
    assert seen == {key: [0, 1, 2, 3, 4] for key in keys}


def test_stream_read_after_seq_with_limit(backend, clock):
    seqs = [backend.stream_append("s", "p", f"d{i}")[1] for i in range(10)]
    assert seqs == sorted(seqs) and len(set(seqs)) == 10
    page = backend.stream_read("s", 0, 0, limit=4)
    assert [r.data for r in page] == ["d0", "d1", "d2", "d3"]
    assert page[0].timestamp == clock.now
    page = backend.stream_read("s", 0, page[-1].seq, limit=4)
    assert [r.data for r in page] == ["d4", "d5", "d6", "d7"]
    assert [r.data for r in backend.stream_read("s", 0, page[-1].seq)] == ["d8", "d9"]
    assert backend.stream_read("s", 0, seqs[-1]) == []
    assert backend.stream_read("missing", 0, 0) == []


def test_stream_trim(backend, clock):
    start = clock.now
    for i in range(3):
        backend.stream_append("s", "p", f"old{i}")
    clock.advance(10)
    last_old = backend.stream_append("s", "p", "new0")[1] - 1
    backend.stream_append("s", "p", "new1")
    assert backend.stream_trim("s", start + 5) == 3
    assert [r.data for r in backend.stream_read("s", 0, 0)] == ["new0", "new1"]
    assert backend.stream_trim("s", start + 5) == 0
    clock.advance(10)
    assert backend.stream_trim("s", clock.now) == 2
    # sequence numbers keep increasing after the shard was emptied
    _, seq = backend.stream_append("s", "p", "after")
    assert seq > last_old + 2


def test_checkpoints(backend):
    assert backend.checkpoint_get("s", "c1", 0) == 0
    backend.checkpoint_set("s", "c1", 0, 5)
    backend.checkpoint_set("s", "c1", 1, 7)
    backend.checkpoint_set("s", "c2", 0, 9)
    assert backend.checkpoint_get("s", "c1", 0) == 5
    assert backend.checkpoint_get("s", "c1", 1) == 7
    assert backend.checkpoint_get("s", "c2", 0) == 9
    assert backend.checkpoint_get("other", "c1", 0) == 0
    backend.checkpoint_set("s", "c1", 0, 12)
    assert backend.checkpoint_get("s", "c1", 0) == 12


# ---- timers ---------------------------------------------------------------------------


def test_timers_claim_only_due_in_order(backend, clock):
    now = clock.now
    backend.timer_set("g", "late", now + 30, "L")
    backend.timer_set("g", "b", now + 2, "B")
    backend.timer_set("g", "a", now + 1, "A")
    backend.timer_set("other", "x", now, "X")
    assert backend.timers_claim("g", 10, 60) == []
    clock.advance(5)
    timers = backend.timers_claim("g", 10, 60)
    assert [(t.group, t.key, t.due, t.payload) for t in timers] == [("g", "a", now + 1, "A"), ("g", "b", now + 2, "B")]
    assert all(t.receipt for t in timers)
    assert backend.timer_ack("g", "a", timers[0].receipt) is True
    assert backend.timer_ack("g", "a", timers[0].receipt) is False


def test_timer_claim_limit(backend, clock):
    for i in range(5):
        backend.timer_set("g", f"t{i}", clock.now + i, str(i))
    clock.advance(10)
    assert [t.key for t in backend.timers_claim("g", 2, 60)] == ["t0", "t1"]
    assert [t.key for t in backend.timers_claim("g", 10, 60)] == ["t2", "t3", "t4"]


def test_timer_replace_and_cancel(backend, clock):
    backend.timer_set("g", "k", clock.now + 10, "first")
    backend.timer_set("g", "k", clock.now + 20, "second")
    clock.advance(15)
    assert backend.timers_claim("g", 10, 60) == []
    clock.advance(10)
    [t] = backend.timers_claim("g", 10, 60)
    assert t.payload == "second"
    assert backend.timer_cancel("g", "k") is True
    assert backend.timer_cancel("g", "k") is False
    clock.advance(120)
    assert backend.timers_claim("g", 10, 60) == []


def test_timer_lease_hides_then_reappears(backend, clock):
    backend.timer_set("g", "k", clock.now, "p")
    [first] = backend.timers_claim("g", 10, 30)
    assert backend.timers_claim("g", 10, 30) == []
    clock.advance(29)
    assert backend.timers_claim("g", 10, 30) == []
    clock.advance(2)
    [second] = backend.timers_claim("g", 10, 30)
    assert (second.key, second.payload) == ("k", "p")
    assert second.receipt != first.receipt
    assert backend.timer_ack("g", "k", first.receipt) is False
    assert backend.timer_ack("g", "k", second.receipt) is True


def test_timer_ack_with_stale_receipt_keeps_replacement(backend, clock):
    backend.timer_set("g", "k", clock.now, "old")
    [claimed] = backend.timers_claim("g", 10, 30)
    backend.timer_set("g", "k", clock.now + 5, "new")  # replaced while the old one runs
    assert backend.timer_ack("g", "k", claimed.receipt) is False
    clock.advance(6)
    [fresh] = backend.timers_claim("g", 10, 30)
    assert (fresh.payload, fresh.due) == ("new", clock.now - 1)
    assert backend.timer_ack("g", "k", fresh.receipt) is True
    assert backend.timer_cancel("g", "k") is False


# ---- leases, slots, nodes -------------------------------------------------------------


def test_leases(backend, clock):
    assert backend.lease_holder("leader") is None
    assert backend.lease_acquire("leader", "a", 10) is True
    assert backend.lease_acquire("leader", "b", 10) is False
    assert backend.lease_holder("leader") == "a"
    clock.advance(8)
    assert backend.lease_acquire("leader", "a", 10) is True  # renewal extends to +18
    clock.advance(5)
    assert backend.lease_acquire("leader", "b", 10) is False
    assert backend.lease_holder("leader") == "a"
    clock.advance(6)  # expired
    assert backend.lease_holder("leader") is None
    assert backend.lease_acquire("leader", "b", 10) is True
    assert backend.lease_release("leader", "a") is False
    assert backend.lease_holder("leader") == "b"
    assert backend.lease_acquire("other", "a", 10) is True  # leases are independent
    assert backend.lease_release("leader", "b") is True
    assert backend.lease_holder("leader") is None
    assert backend.lease_acquire("leader", "a", 10) is True


def test_releasing_an_expired_lease_reports_it_was_not_held(backend, clock):
    assert backend.lease_acquire("leader", "a", 10) is True
    clock.advance(11)
    assert backend.lease_release("leader", "a") is False
    assert backend.lease_holder("leader") is None
    assert backend.lease_acquire("leader", "b", 10) is True


def test_slots(backend, clock):
    first = backend.slot_acquire("fn", 2, "node-1", 10)
    second = backend.slot_acquire("fn", 2, "node-2", 10)
    assert first and second and first != second
    assert backend.slot_acquire("fn", 2, "node-3", 10) is None
    assert backend.slot_count("fn") == 2
    assert backend.slot_acquire("other", 1, "node-3", 10) is not None
    backend.slot_release("fn", first)
    assert backend.slot_count("fn") == 1
    third = backend.slot_acquire("fn", 2, "node-3", 10)
    assert third is not None
    assert backend.slot_acquire("fn", 2, "node-3", 10) is None
    clock.advance(11)  # every holder expired: their slots are free
    assert backend.slot_count("fn") == 0
    assert backend.slot_acquire("fn", 2, "node-4", 10) is not None
    assert backend.slot_acquire("fn", 2, "node-4", 10) is not None
    assert backend.slot_acquire("fn", 2, "node-4", 10) is None


def test_nodes(backend, clock):
    assert backend.nodes() == []
    backend.node_heartbeat("n2", {"port": 2}, 10)
    backend.node_heartbeat("n1", {"port": 1, "tags": ["x"]}, 10)
    assert [(n.node_id, n.info, n.seen) for n in backend.nodes()] == [
        ("n1", {"port": 1, "tags": ["x"]}, clock.now), ("n2", {"port": 2}, clock.now)]
    clock.advance(5)
    backend.node_heartbeat("n1", {"port": 11}, 10)
    clock.advance(6)
    assert [(n.node_id, n.info, n.seen) for n in backend.nodes()] == [("n1", {"port": 11}, clock.now - 6)]
    backend.node_remove("n1")
    assert backend.nodes() == []


# ---- several processes and threads ----------------------------------------------------


def test_two_backends_on_one_url_share_state(backend, clock):
    other = open_backend(backend.url, clock=clock)
    try:
        message_id = backend.enqueue("q", "from one")
        [m] = other.claim("q", 10, 30)
        assert m.id == message_id
        assert backend.claim("q", 10, 30) == []
        assert backend.ack("q", [m.receipt]) == 1
        other.table_put("t", "k", "v")
        assert backend.table_put("t", "k", "w", if_version=1).version == 2
        assert other.table_get("t", "k").value == "w"
        assert other.lease_acquire("l", "other", 10)
        assert not backend.lease_acquire("l", "backend", 10)
        backend.stream_append("s", "p", "d")
        assert [r.data for r in other.stream_read("s", 0, 0)] == ["d"]
        other.queue_declare("q", QueueConfig(dlq="x"))
        assert backend.queue_names() == ["q"]
    finally:
        other.close()


def test_concurrent_claims_never_share_a_message(backend):
    ids = set()
    for start in range(0, 400, 100):
        ids.update(backend.enqueue_batch("q", [(str(i), None, 0.0) for i in range(start, start + 100)]))
    received: list[list[str]] = [[] for _ in range(4)]
    errors: list[BaseException] = []

    def worker(mine: list[str]) -> None:
        try:
            while batch := backend.claim("q", 7, 600):
                mine.extend(m.id for m in batch)
        except BaseException as e:  # surfaced below; a thread's exception is otherwise lost
            errors.append(e)

    threads = [threading.Thread(target=worker, args=(received[i],)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert not errors
    everything = [message_id for mine in received for message_id in mine]
    assert len(everything) == len(set(everything)) == 400
    assert set(everything) == ids


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork")
def test_backend_works_in_a_forked_child(backend):
    backend.enqueue("q", "before fork")  # the parent has an open connection
    pid = os.fork()
    if pid == 0:  # child: use the inherited backend object, then leave without cleanup
        code = 1
        try:
            [m] = backend.claim("q", 1, 600)
            backend.ack("q", [m.receipt])
            backend.enqueue("q", "from child")
            code = 0
        finally:
            os._exit(code)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    assert bodies(backend.claim("q", 10, 30)) == ["from child"]
