"""Queues: enqueue, claim, ack, release, dead-letter, redrive, stats, peek, purge, the
registry, and the wake-up primitives (queues_next_visible, watch_enqueues).

Only the public protocol is used, never SQL or Redis commands, so one suite holds both
backends to the same behaviour. Time is a FakeClock that tests move by hand.
"""

from __future__ import annotations

import json
import math
import os
import threading
import time

import pytest

from squall.backends import QueueConfig, QueueStats, open_backend
from squall.backends.sqlite import watch as file_watch
from squall.errors import ConfigError
from tests.conformance.support import round_trips, run_threads
from tests.conftest import RedisServer


def bodies(messages) -> list[str]:
    return [m.body for m in messages]


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


def test_release_uncounted_gives_the_receive_back(backend, clock):
    """A platform failure (no runtime) must not walk a message towards its DLQ."""
    backend.enqueue("q", "x")
    for _ in range(3):
        [m] = backend.claim("q", 1, 300, max_receives=1, dlq="q-dlq")
        assert m.receive_count == 1
        assert backend.release("q", m.receipt, uncount=True) is True
    [m] = backend.claim("q", 1, 300, max_receives=1, dlq="q-dlq")
    assert backend.release("q", m.receipt) is True  # counted this time: the next claim dead-letters it
    assert backend.claim("q", 1, 300, max_receives=1, dlq="q-dlq") == []
    assert backend.queue_stats("q-dlq").visible == 1


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
    assert (dead.id, dead.queue, dead.body) == (message_id, "q-dlq", "poison")
    assert dead.attributes == {"trace": {"id": "t-1"}}
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


@pytest.mark.parametrize("attributes", [{}, {"a": {"stringValue": "x", "dataType": "String"}, "b": 2}],
                         ids=["none", "some"])
def test_dead_letter_adds_attributes(backend, attributes):
    """The attributes given join the message's own, replacing those of the same name;
    nothing else about the message changes (body with braces and quotes included)."""
    body = '{"attributes":{},"sent_at":1}} \\"'
    message_id = backend.enqueue("q", body, attributes)
    [m] = backend.claim("q", 1, 30)
    added = {"RequestID": {"stringValue": "r-1", "dataType": "String"}, "b": 3}
    assert backend.dead_letter("q", m.receipt, "dlq", added) is True
    [dead] = backend.claim("dlq", 1, 30)
    assert (dead.id, dead.body, dead.sent_at) == (message_id, body, m.sent_at)
    assert dead.attributes == {**attributes, **added}


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


# ---- the cases where the backends used to disagree --------------------------------------


def test_redrive_moves_every_message_including_in_flight_and_delayed(backend, clock):
    """Redis used to move only the visible ones: a redrive moves what the source holds."""
    backend.enqueue_batch("dlq", [("visible", None, 0.0), ("in-flight", None, 0.0), ("delayed", None, 60.0)])
    [m] = backend.claim("dlq", 1, 300)
    backend.claim("dlq", 1, 300)  # "in-flight" is being looked at
    assert backend.queue_stats("dlq") == QueueStats(visible=0, in_flight=2, delayed=1)
    assert backend.redrive("dlq", "q") == 3
    assert backend.queue_stats("dlq").total == 0
    assert backend.queue_stats("q") == QueueStats(visible=3, in_flight=0, delayed=0)
    assert [(x.body, x.receive_count) for x in backend.peek("q")] == [("visible", 0), ("in-flight", 0), ("delayed", 0)]
    assert backend.ack("dlq", [m.receipt]) == 0  # moved: the source's receipts are stale


def test_redrive_with_a_limit_moves_the_first_in_send_order_across_batches(backend):
    backend.enqueue_batch("dlq", [(f"m{i}", None, 0.0) for i in range(1500)])
    backend.claim("dlq", 700, 300)  # the first 700 in flight: state does not change the order
    assert backend.redrive("dlq", "q", limit=1200) == 1200
    assert bodies(backend.peek("q", 2000)) == [f"m{i}" for i in range(1200)]
    assert bodies(backend.peek("dlq", 2000)) == [f"m{i}" for i in range(1200, 1500)]


def test_moved_messages_join_the_tail_of_the_target(backend):
    """SQLite used to keep a moved message's place in the global send order."""
    backend.enqueue("q", "failed")
    backend.enqueue("dlq", "already there")
    [m] = backend.claim("q", 1, 30)
    assert backend.dead_letter("q", m.receipt, "dlq")
    assert bodies(backend.peek("dlq")) == ["already there", "failed"]
    backend.enqueue("q", "newer")
    assert backend.redrive("dlq", "q") == 2
    assert bodies(backend.peek("q")) == ["newer", "already there", "failed"]


def test_claim_with_zero_visibility_timeout_returns_each_message_once(backend, clock):
    """SQLite used to hand out the same message again in one claim (it stayed visible)."""
    backend.enqueue_batch("q", [("a", None, 0.0), ("b", None, 0.0)])
    messages = backend.claim("q", 10, 0)
    assert [(m.body, m.receive_count) for m in messages] == [("a", 1), ("b", 1)]
    again = backend.claim("q", 10, 0)  # visible again at once, as SQS does with 0
    assert [(m.body, m.receive_count) for m in again] == [("a", 2), ("b", 2)]
    assert backend.ack("q", [m.receipt for m in messages]) == 0
    assert backend.ack("q", [m.receipt for m in again]) == 2


def test_claim_with_zero_visibility_timeout_past_dead_messages(backend, clock):
    backend.enqueue_batch("q", [("old", None, 0.0)])
    backend.claim("q", 1, 10)
    clock.advance(11)
    backend.enqueue_batch("q", [("new0", None, 0.0), ("new1", None, 0.0)])
    messages = backend.claim("q", 10, 0, max_receives=1, dlq="dlq")
    assert [(m.body, m.receive_count) for m in messages] == [("new0", 1), ("new1", 1)]
    assert bodies(backend.peek("dlq")) == ["old"]


BAD_CALLS = {
    "claim max_messages": (lambda b: b.claim("q", -1, 30), "max_messages must be an integer >= 0, got -1"),
    "claim max_messages type": (lambda b: b.claim("q", 1.5, 30), "max_messages must be an integer >= 0, got 1.5"),
    "claim visibility": (lambda b: b.claim("q", 1, -1),
                         "visibility_timeout must be a finite number of seconds >= 0, got -1"),
    "claim max_receives": (lambda b: b.claim("q", 1, 30, max_receives=0, dlq="dlq"),
                           "max_receives must be an integer >= 1, got 0"),
    "claim dlq": (lambda b: b.claim("q", 1, 30, max_receives=1, dlq="q"),
                  "queue 'q' cannot be its own dead-letter queue"),
    "enqueue delay": (lambda b: b.enqueue("q", "x", delay=-1), "delay must be a finite number of seconds >= 0, got -1"),
    "enqueue nan": (lambda b: b.enqueue("q", "x", delay=math.nan),
                    "delay must be a finite number of seconds >= 0, got nan"),
    "enqueue inf": (lambda b: b.enqueue("q", "x", delay=math.inf),
                    "delay must be a finite number of seconds >= 0, got inf"),
    "batch delay": (lambda b: b.enqueue_batch("q", [("ok", None, 0.0), ("bad", None, -5.0)]),
                    "delay must be a finite number of seconds >= 0, got -5.0"),
    "release delay": (lambda b: b.release("q", "1:x", delay=-1),
                      "delay must be a finite number of seconds >= 0, got -1"),
    "dead_letter to itself": (lambda b: b.dead_letter("q", "1:x", "q"),
                              "queue 'q' cannot be its own dead-letter queue"),
    "redrive to itself": (lambda b: b.redrive("q", "q"), "queue 'q' cannot be its own redrive target"),
    "redrive limit": (lambda b: b.redrive("dlq", "q", limit=-1), "limit must be an integer >= 0, got -1"),
    "peek limit": (lambda b: b.peek("q", -1), "limit must be an integer >= 0, got -1"),
}


@pytest.mark.parametrize("case", BAD_CALLS)
def test_bad_arguments_fail_alike_and_change_nothing(backend, case):
    """Negative delays used to reorder a Redis queue and be clamped on SQLite; a negative
    peek or redrive limit meant "all" on SQLite and "none" on Redis."""
    backend.enqueue("q", "there")
    backend.enqueue("dlq", "dead")
    call, text = BAD_CALLS[case]
    with pytest.raises(ConfigError) as error:
        call(backend)
    assert str(error.value) == text
    assert bodies(backend.peek("q")) == ["there"] and bodies(backend.peek("dlq")) == ["dead"]
    assert backend.queue_stats("q") == QueueStats(visible=1, in_flight=0, delayed=0)


def test_limit_zero_asks_for_nothing(backend):
    backend.enqueue("q", "x")
    backend.enqueue("dlq", "y")
    assert backend.claim("q", 0, 30) == []
    assert backend.peek("q", 0) == []
    assert backend.redrive("dlq", "q", limit=0) == 0
    assert backend.queue_stats("q") == QueueStats(visible=1, in_flight=0, delayed=0)
    assert backend.queue_stats("dlq").visible == 1


def test_stale_and_foreign_receipts_match_nothing(backend, clock):
    backend.enqueue("q", "x")
    backend.enqueue("other", "y")
    [m] = backend.claim("q", 1, 30)
    [o] = backend.claim("other", 1, 30)
    seq, _, token = m.receipt.replace(":", ".").partition(".")
    foreign = ["", "garbage", ".", ":", "1", "1.", "1:", "-1.5", "99999999999999999999.1", f"{seq}.{token}x",
               f"{seq}:{token}", f"{seq}.{token}", "0000000000000001:0", "1.ff", o.receipt]
    foreign = [r for r in foreign if r != m.receipt]
    assert backend.ack("q", foreign) == 0
    assert not any(backend.release("q", r) for r in foreign)
    assert not any(backend.dead_letter("q", r, "dlq") for r in foreign)
    assert backend.queue_stats("q") == QueueStats(visible=0, in_flight=1, delayed=0)
    assert backend.queue_stats("dlq").total == 0
    assert backend.ack("q", [m.receipt]) == 1
    assert backend.release("q", m.receipt) is False  # acked: stale
    assert backend.ack("other", [o.receipt]) == 1


def test_unknown_queue_reads_as_empty(backend):
    assert backend.queue_stats("nope") == QueueStats(0, 0, 0)
    assert backend.peek("nope") == []
    assert backend.claim("nope", 10, 30) == []
    assert backend.ack("nope", ["1.1", "1:1"]) == 0
    assert backend.purge("nope") == 0
    assert backend.redrive("nope", "q") == 0
    assert backend.queue_config("nope") is None
    assert backend.queues_next_visible(["nope"]) == {}


def test_empty_lists(backend):
    assert backend.enqueue_batch("q", []) == []
    assert backend.ack("q", []) == 0
    assert backend.queues_next_visible([]) == {}
    assert backend.queue_stats("q").total == 0


def test_dead_letter_keeps_the_message_visible_in_the_dlq_now(backend, clock):
    backend.enqueue("q", "x", delay=0)
    [m] = backend.claim("q", 1, 300)
    clock.advance(5)
    assert backend.dead_letter("q", m.receipt, "dlq")
    assert backend.queues_next_visible(["dlq"]) == {"dlq": clock.now}
    [dead] = backend.claim("dlq", 1, 30)
    assert (dead.receive_count, dead.first_received_at) == (1, clock.now)


# ---- registry -------------------------------------------------------------------------


def test_queue_registry(backend):
    assert backend.queue_names() == []
    assert backend.queue_config("orders") is None
    orders = QueueConfig(dlq="orders-dlq", function="handle", max_receive_count=3, visibility_timeout=30)
    backend.queue_declare("orders", orders)
    backend.queue_declare("orders-dlq", QueueConfig(dlq_of="orders"))
    backend.queue_declare("async.f", QueueConfig(dlq="async.f-dlq", function="f", internal=True))
    backend.queue_declare("audit", QueueConfig())
    assert backend.queue_names() == ["async.f", "audit", "orders", "orders-dlq"]
    assert backend.queue_config("orders") == orders
    assert backend.queue_config("orders-dlq").is_dlq and not orders.is_dlq
    assert backend.queue_config("async.f").internal and not backend.queue_config("orders").internal
    assert backend.queue_config("audit") == QueueConfig()
    backend.queue_declare("orders", QueueConfig(visibility_timeout=60))  # replaces the entry
    assert backend.queue_config("orders") == QueueConfig(visibility_timeout=60)
    assert len(backend.queue_names()) == 4


def test_registry_is_shared(backend, other):
    other.queue_declare("q", QueueConfig(dlq="x"))
    assert backend.queue_names() == ["q"]
    assert backend.queue_config("q") == QueueConfig(dlq="x")


@pytest.mark.parametrize("stored, expected", [
    ('{"dlq": "orders-dlq", "function": "handle", "max_receive_count": 5, "visibility_timeout": 30}',
     QueueConfig(dlq="orders-dlq", function="handle", max_receive_count=5, visibility_timeout=30.0)),
    ('{"dlq_of": "orders"}', QueueConfig(dlq_of="orders")),
    ('{"dlq": "async.f-dlq", "function": "f", "max_receive_count": 3, "visibility_timeout": 930, "internal": true}',
     QueueConfig(dlq="async.f-dlq", function="f", max_receive_count=3, visibility_timeout=930.0, internal=True)),
    ('{"dlq_of": "async.f", "internal": true}', QueueConfig(dlq_of="async.f", internal=True)),
    ('{}', QueueConfig()),
    ('{"visibility_timeout": 0, "max_receive_count": 1}', QueueConfig(visibility_timeout=0.0, max_receive_count=1)),
    ('{"dlq": "d", "fifo": true, "tags": {"a": 1}}', QueueConfig(dlq="d")),  # keys of a later version
    ('{"dlq": 5, "max_receive_count": "3", "internal": "yes", "visibility_timeout": true}', QueueConfig()),
])
def test_queue_config_reads_records_of_any_version(stored, expected):
    assert QueueConfig.from_json("q", stored) == expected
    assert QueueConfig.from_json("q", expected.to_json()) == expected


def test_queue_config_stored_form_is_the_first_releases():
    config = QueueConfig(dlq="q-dlq", function="f", max_receive_count=5, visibility_timeout=30)
    assert json.loads(config.to_json()) == {"dlq": "q-dlq", "function": "f", "max_receive_count": 5,
                                            "visibility_timeout": 30}
    assert json.loads(QueueConfig(dlq_of="q", internal=True).to_json()) == {"dlq_of": "q", "internal": True}


@pytest.mark.parametrize("stored", ["not json", "[1, 2]", '"text"'])
def test_queue_config_refuses_what_is_not_a_record(stored):
    with pytest.raises(ConfigError, match="registry entry of queue 'q'"):
        QueueConfig.from_json("q", stored)


# ---- queues_next_visible --------------------------------------------------------------


def test_queues_next_visible(backend, clock):
    now = clock.now
    backend.enqueue("visible", "x")
    backend.enqueue("delayed", "x", delay=30)
    backend.enqueue("in-flight", "x")
    backend.claim("in-flight", 1, 60)
    backend.enqueue("mixed", "later", delay=50)
    backend.enqueue("mixed", "sooner", delay=10)
    backend.enqueue("acked", "x")
    [m] = backend.claim("acked", 1, 60)
    backend.ack("acked", [m.receipt])
    names = ["visible", "delayed", "in-flight", "mixed", "acked", "never"]
    assert backend.queues_next_visible(names) == {
        "visible": now, "delayed": now + 30, "in-flight": now + 60, "mixed": now + 10}
    assert backend.queues_next_visible(["mixed", "mixed"]) == {"mixed": now + 10}
    clock.advance(100)  # times do not move with the clock: they are when messages become visible
    assert backend.queues_next_visible(["delayed"]) == {"delayed": now + 30}


def test_queues_next_visible_is_one_round_trip(backend):
    names = [f"q{i}" for i in range(200)]
    for name in names[::7]:
        backend.enqueue(name, "x")
    backend.queues_next_visible(names)  # connects, loads the script
    with round_trips(backend) as seen:
        assert len(backend.queues_next_visible(names)) == len(names[::7])
    assert len(seen) == 1
    assert seen == ["EVALSHA"] if backend.distributed else seen[0].startswith("SELECT")


def test_claim_and_ack_are_one_round_trip_each(backend):
    """The hot path: a claim is one script (Redis) or a probe plus one transaction (SQLite)."""
    backend.enqueue_batch("q", [("a", None, 0.0), ("b", None, 0.0)])
    backend.claim("q", 1, 30)
    with round_trips(backend) as claimed:
        [m] = backend.claim("q", 1, 30)
    with round_trips(backend) as acked:
        backend.ack("q", [m.receipt])
    with round_trips(backend) as enqueued:
        backend.enqueue("q", "c")
    if backend.distributed:
        assert (claimed, acked, enqueued) == (["EVALSHA"], ["EVALSHA"], ["EVALSHA"])
    else:
        assert [len(claimed), len(acked), len(enqueued)] == [5, 3, 3]  # BEGIN..COMMIT around the writes


# ---- watch_enqueues -------------------------------------------------------------------


class Calls:
    """Records callbacks; `wait` for one that satisfies a test."""

    def __init__(self):
        self.seen: list[str | None] = []
        self.event = threading.Condition()

    def __call__(self, queue: str | None) -> None:
        with self.event:
            self.seen.append(queue)
            self.event.notify_all()

    def wait(self, queue: str | None, timeout: float = 5.0, *, exactly: bool = False) -> bool:
        """A call for `queue`, or (unless `exactly`) None, from backends that cannot tell which."""
        wanted = {queue} if exactly else {queue, None}
        with self.event:
            return self.event.wait_for(lambda: not wanted.isdisjoint(self.seen), timeout)

    def clear(self) -> None:
        with self.event:
            self.seen.clear()


def watch_threads() -> set[threading.Thread]:
    return {t for t in threading.enumerate() if t.name.startswith("squall-") and t.name.endswith("-watch")}


def test_watch_fires_when_another_backend_enqueues(backend, other):
    calls = Calls()
    watch = backend.watch_enqueues(calls)
    try:
        started = time.monotonic()
        other.enqueue("jobs", "x")
        assert calls.wait("jobs")
        assert time.monotonic() - started < 1.0
        if backend.distributed:
            assert calls.seen[0] == "jobs"  # Redis says which queue
    finally:
        watch.close()


@pytest.mark.parametrize("change", ["release", "redrive", "dead_letter", "delayed enqueue"])
def test_watch_fires_on_what_makes_messages_visible(backend, other, change):
    backend.enqueue("src", "x")
    [m] = backend.claim("src", 1, 300)
    calls = Calls()
    watch = backend.watch_enqueues(calls)
    try:
        if change == "release":
            assert other.release("src", m.receipt)
            target = "src"
        elif change == "redrive":
            assert other.redrive("src", "dst") == 1
            target = "dst"
        elif change == "dead_letter":
            assert other.dead_letter("src", m.receipt, "dst")
            target = "dst"
        else:
            other.enqueue("dst", "later", delay=30)  # a poller must learn the new earliest time
            target = "dst"
        assert calls.wait(target)
    finally:
        watch.close()


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork")
def test_watch_fires_when_a_forked_process_enqueues(backend):
    calls = Calls()
    watch = backend.watch_enqueues(calls)
    try:
        pid = os.fork()
        if pid == 0:
            code = 1
            try:
                backend.enqueue("forked", "from the child")
                code = 0
            finally:
                os._exit(code)
        _, status = os.waitpid(pid, 0)
        assert os.waitstatus_to_exitcode(status) == 0
        assert calls.wait("forked")
    finally:
        watch.close()
    assert bodies(backend.peek("forked")) == ["from the child"]


def test_watch_close_stops_callbacks_and_its_thread(backend, other):
    before = watch_threads()
    calls = Calls()
    watch = backend.watch_enqueues(calls)
    other.enqueue("q", "x")
    assert calls.wait("q")
    watch.close()
    assert watch_threads() == before
    calls.clear()
    other.enqueue("q", "y")
    time.sleep(0.2)
    assert calls.seen == []
    watch.close()  # twice is harmless


def test_watches_are_independent_and_survive_a_failing_callback(backend, other):
    def fail(queue):
        raise RuntimeError("callback bug")

    failing = backend.watch_enqueues(fail)
    calls = Calls()
    watch = backend.watch_enqueues(calls)
    try:
        other.enqueue("q", "x")
        assert calls.wait("q")
        failing.close()
        calls.clear()
        other.enqueue("q", "y")
        assert calls.wait("q")
    finally:
        watch.close()
        failing.close()


def test_sqlite_watch_without_inotify_does_nothing(tmp_path, monkeypatch):
    """SQLite only: where inotify is missing the watch is a no-op (callers poll slowly)."""
    monkeypatch.setattr(file_watch, "_inotify", lambda directory: None)
    backend = open_backend(f"sqlite:///{tmp_path}/state.db")
    before = watch_threads()
    calls = Calls()
    watch = backend.watch_enqueues(calls)
    assert watch_threads() == before
    backend.enqueue("q", "x")
    assert not calls.wait("q", 0.2)
    watch.close()
    backend.close()


def test_watch_reconnects_after_redis_restarts_and_says_so(tmp_path):
    """Redis only (SQLite has no connection to lose): wake-ups published while the watch is
    away are lost, so the first call after it is back is None."""
    server = RedisServer(tmp_path)
    server.start()
    backend = open_backend(server.url)
    calls = Calls()
    watch = backend.watch_enqueues(calls)
    try:
        server.stop()
        time.sleep(0.3)
        server.start()
        assert calls.wait(None, 10, exactly=True)
        assert calls.seen == [None]
        backend.enqueue("q", "x")
        assert calls.wait("q", exactly=True)
        assert calls.seen == [None, "q"]
    finally:
        watch.close()
        backend.close()
        server.stop()


# ---- several backend objects, threads and processes ------------------------------------


def test_two_backends_share_queues(backend, other):
    message_id = backend.enqueue("q", "from one")
    [m] = other.claim("q", 10, 30)
    assert m.id == message_id
    assert backend.claim("q", 10, 30) == []
    assert backend.ack("q", [m.receipt]) == 1


def test_concurrent_claims_never_share_a_message(backend, other):
    ids = set()
    for start in range(0, 400, 100):
        ids.update(backend.enqueue_batch("q", [(str(i), None, 0.0) for i in range(start, start + 100)]))

    def worker(i: int) -> list[str]:
        mine, b = [], (backend, other)[i % 2]
        while batch := b.claim("q", 7, 600):
            mine.extend(m.id for m in batch)
        return mine

    everything = [message_id for mine in run_threads(worker, 4) for message_id in mine]
    assert len(everything) == len(set(everything)) == 400
    assert set(everything) == ids


def test_concurrent_enqueues_lose_nothing(backend, other):
    def worker(i: int) -> list[str]:
        b = (backend, other)[i % 2]
        return [b.enqueue("q", f"{i}-{n}") for n in range(50)]

    ids = [message_id for mine in run_threads(worker, 4) for message_id in mine]
    assert len(set(ids)) == 200
    assert {m.id for m in backend.claim("q", 500, 30)} == set(ids)


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


def test_oldest_age_is_the_wait_of_the_head_of_the_queue(backend, clock):
    assert backend.queue_oldest_age("empty") == 0.0
    backend.enqueue("q", "first")
    clock.advance(10)
    backend.enqueue("q", "second", delay=100)
    clock.advance(2.5)
    assert backend.queue_oldest_age("q") == pytest.approx(12.5)
    [first] = backend.claim("q", 1, 30)  # in flight still counts: it is not deleted
    assert backend.queue_oldest_age("q") == pytest.approx(12.5)
    backend.ack("q", [first.receipt])
    assert backend.queue_oldest_age("q") == pytest.approx(2.5)  # the delayed one is next
    clock.advance(200)
    [second] = backend.claim("q", 1, 30)
    assert backend.dead_letter("q", second.receipt, "dlq")
    assert backend.queue_oldest_age("q") == 0.0
    assert backend.queue_oldest_age("dlq") == pytest.approx(202.5)  # it keeps its send time
