"""Queues.fan_out: a publish into several queues with its counts, one commit on both backends."""

from __future__ import annotations

import threading

import pytest

from squall.errors import ConfigError


def test_entries_reach_their_queues_in_order_with_ids(backend, clock):
    ids = backend.fan_out([("a", "1", {"k": {"dataType": "String"}}), ("b", "2", None), ("a", "3", None)],
                          "counts", {"t delivered": 2})
    assert len(set(ids)) == 3
    first, third = backend.claim("a", 10, 30)
    [second] = backend.claim("b", 10, 30)
    assert [(m.id, m.body) for m in (first, second, third)] == list(zip(ids, "123", strict=True))
    assert first.attributes == {"k": {"dataType": "String"}} and second.attributes == {}
    assert first.sent_at == clock.now


def test_counts_add_up_and_each_addition_is_a_write(backend):
    backend.fan_out([("a", "x", None)], "counts", {"t delivered": 1, "t filtered": 3})
    backend.fan_out([], "counts", {"t delivered": 2})
    delivered = backend.table_get("counts", "t delivered")
    assert (delivered.value, delivered.version) == (3, 2)
    assert backend.table_get("counts", "t filtered").value == 3
    assert [item.key for item in backend.table_scan("counts")] == ["t delivered", "t filtered"]


def test_a_counter_holding_no_integer_counts_from_zero(backend):
    backend.table_put("counts", "odd", {"not": "a number"})
    backend.fan_out([], "counts", {"odd": 4})
    assert backend.table_get("counts", "odd").value == 4
    assert backend.table_get("counts", "odd").version == 2


def test_nothing_is_written_when_an_attribute_is_not_json(backend):
    with pytest.raises(ConfigError, match="message attributes"):
        backend.fan_out([("a", "ok", None), ("b", "bad", {"k": object()})], "counts", {"n": 1})
    assert backend.queue_stats("a").total == backend.queue_stats("b").total == 0
    assert backend.table_get("counts", "n") is None


def test_an_empty_call_writes_nothing(backend):
    assert backend.fan_out([], "counts", {}) == []
    assert backend.table_scan("counts") == []


def test_concurrent_publishers_lose_no_count(backend, other):
    def publish(store):
        for _ in range(50):
            store.fan_out([("a", "m", None)], "counts", {"n": 1})

    threads = [threading.Thread(target=publish, args=(store,)) for store in (backend, other)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert backend.table_get("counts", "n").value == 100
    assert backend.queue_stats("a").visible == 100


def test_fan_out_wakes_the_watchers_of_each_queue(backend):
    woken: set[str | None] = set()
    event = threading.Event()

    def callback(queue):
        woken.add(queue)
        if {"a", "b"} <= woken or None in woken:
            event.set()

    watch = backend.watch_enqueues(callback)
    try:
        backend.fan_out([("a", "1", None), ("b", "2", None)], "counts", {})
        assert event.wait(5)
    finally:
        watch.close()
