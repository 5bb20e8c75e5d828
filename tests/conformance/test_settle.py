"""Queues.settle: a consumer's turn (acks, releases, dead letters, then a claim) in one commit.

Each test holds `settle` to the calls it stands for, made one after another: the same
messages end in the same places with the same receive counts and attributes.
"""

from __future__ import annotations

import pytest

from squall.backends import QueueStats
from squall.backends.fifo import FifoEntry
from squall.backends.protocol import DeadLetter, Release
from squall.errors import ConfigError
from tests.conformance.support import round_trips
from tests.conformance.test_queues import Calls


def bodies(messages) -> list[str]:
    return [m.body for m in messages]


def claimed(backend, count: int, queue: str = "q") -> dict[str, object]:
    """`count` messages sent and claimed, by body."""
    backend.enqueue_batch(queue, [(f"m{i}", None, 0.0) for i in range(count)])
    return {m.body: m for m in backend.claim(queue, count, 30)}


def test_settle_acks_releases_dead_letters_then_claims(backend, clock):
    m = claimed(backend, 4)
    backend.enqueue("q", "next")
    added = {"RequestID": {"stringValue": "r-1", "dataType": "String"}}
    got = backend.settle("q", [m["m0"].receipt, m["m1"].receipt], [Release(m["m2"].receipt, delay=5)],
                         [DeadLetter(m["m3"].receipt, added)], dlq="dlq", claim=10, visibility_timeout=30)
    assert bodies(got) == ["next"] and got[0].receive_count == 1
    assert backend.queue_stats("q") == QueueStats(visible=0, in_flight=2, delayed=0)  # m2 waits, next is claimed
    [dead] = backend.peek("dlq")
    assert (dead.id, dead.body, dead.attributes, dead.receive_count) == (m["m3"].id, "m3", added, 0)
    clock.advance(6)
    [again] = backend.claim("q", 10, 30)
    assert (again.id, again.receive_count) == (m["m2"].id, 2)


def test_a_message_released_visible_now_is_claimed_again_by_the_same_turn(backend):
    m = claimed(backend, 2)
    got = backend.settle("q", releases=[Release(m["m0"].receipt), Release(m["m1"].receipt, uncount=True)],
                         claim=10, visibility_timeout=30)
    assert [(x.body, x.receive_count) for x in got] == [("m0", 2), ("m1", 1)]
    assert all(x.receipt != m[x.body].receipt for x in got)


def test_claim_in_settle_moves_messages_out_of_receives(backend, clock):
    m = claimed(backend, 2)
    clock.advance(31)  # both visible again; m0's receipt is still current until it is received again
    backend.enqueue("q", "fresh")
    got = backend.settle("q", [m["m0"].receipt], dlq="dlq", claim=10, visibility_timeout=30, max_receives=1)
    assert bodies(got) == ["fresh"] and bodies(backend.peek("dlq")) == ["m1"]
    assert backend.queue_stats("q") == QueueStats(visible=0, in_flight=1, delayed=0)


def test_stale_foreign_and_repeated_receipts_change_nothing(backend, clock):
    m = claimed(backend, 2)
    backend.enqueue("q", "waiting")
    stale = m["m1"].receipt
    assert backend.release("q", stale)  # visible again: the next claim makes the receipt stale
    [again] = [x for x in backend.claim("q", 1, 30) if x.body == "m1"]
    got = backend.settle("q", [m["m0"].receipt, m["m0"].receipt, stale, "garbage"],
                         [Release(m["m0"].receipt), Release(stale), Release("1:x")],
                         [DeadLetter(m["m0"].receipt), DeadLetter(stale), DeadLetter("")], dlq="dlq")
    assert got == []
    assert backend.queue_stats("dlq").total == 0
    assert {x.body for x in backend.peek("q")} == {"m1", "waiting"}  # m0 acked once, m1 untouched
    assert backend.ack("q", [again.receipt]) == 1


def test_nothing_to_settle_is_a_claim_and_nothing_at_all_changes_nothing(backend):
    backend.enqueue("q", "x")
    assert backend.settle("q") == []
    assert backend.queue_stats("q") == QueueStats(visible=1, in_flight=0, delayed=0)
    [m] = backend.settle("q", claim=1, visibility_timeout=30)
    assert m.body == "x" and backend.queue_stats("q").in_flight == 1
    assert backend.settle("empty", claim=5, visibility_timeout=30) == []


BAD_SETTLES = {
    "release delay": (dict(releases=[Release("R", delay=-1)]), "delay must be a finite number of seconds >= 0, got -1"),
    "dead letters without a dlq": (dict(dead_letters=[DeadLetter("R")]),
                                   "queue 'q': dead letters need a dead-letter queue"),
    "its own dlq": (dict(dead_letters=[DeadLetter("R")], dlq="q"), "queue 'q' cannot be its own dead-letter queue"),
    "attributes": (dict(dead_letters=[DeadLetter("R", {"a": {1, 2}})], dlq="dlq"), "message attributes"),
    "claim count": (dict(claim=-1), "max_messages must be an integer >= 0, got -1"),
    "visibility": (dict(claim=1, visibility_timeout=-1),
                   "visibility_timeout must be a finite number of seconds >= 0, got -1"),
    "max receives": (dict(claim=1, max_receives=0, dlq="dlq"), "max_receives must be an integer >= 1, got 0"),
}


@pytest.mark.parametrize("case", BAD_SETTLES)
def test_bad_arguments_fail_alike_and_change_nothing(backend, case):
    """Checked before anything is written: the ack given alongside does not happen."""
    m = claimed(backend, 1)["m0"]
    kwargs, text = BAD_SETTLES[case]
    for field in ("releases", "dead_letters"):
        kwargs = {**kwargs, field: [x._replace(receipt=m.receipt) for x in kwargs.get(field, [])]}
    with pytest.raises(ConfigError, match=text):
        backend.settle("q", [m.receipt], **kwargs)
    assert backend.queue_stats("q") == QueueStats(visible=0, in_flight=1, delayed=0)
    assert backend.queue_stats("dlq").total == 0


def test_a_turn_is_one_round_trip(backend):
    """The hot path of every consumer: one script (Redis), one transaction (SQLite)."""
    m = claimed(backend, 3)
    backend.enqueue("q", "next")
    with round_trips(backend) as seen:
        got = backend.settle("q", [m["m0"].receipt], [Release(m["m1"].receipt, 1.0)], [DeadLetter(m["m2"].receipt)],
                             dlq="dlq", claim=5, visibility_timeout=30, max_receives=3)
    assert bodies(got) == ["next"]
    if backend.distributed:
        assert seen == ["EVALSHA"]
    else:
        assert [s.split()[0] for s in seen].count("BEGIN") == 1 and seen[-1] == "COMMIT"


def test_fifo_a_settled_batch_unblocks_its_group_for_the_same_turn(backend):
    q = "jobs.fifo"
    backend.enqueue_fifo(q, [FifoEntry(body, None, group, f"d-{body}")
                             for body, group in [("a1", "a"), ("a2", "a"), ("b1", "b"), ("b2", "b")]])
    first = backend.claim(q, 1, 30)
    second = backend.claim(q, 1, 30)
    assert bodies(first + second) == ["a1", "b1"]
    assert backend.claim(q, 10, 30) == []  # both groups in flight
    got = backend.settle(q, [first[0].receipt], [Release(second[0].receipt, delay=60)], claim=10,
                         visibility_timeout=30)
    assert bodies(got) == ["a2"]  # b waits behind its released head
    assert backend.settle(q, [got[0].receipt], claim=10, visibility_timeout=30) == []
    assert bodies(backend.peek(q)) == ["b1", "b2"]


def test_fifo_dead_letters_go_to_a_fifo_dlq_only(backend):
    with pytest.raises(ConfigError, match="must be a FIFO queue too"):
        backend.settle("jobs.fifo", dead_letters=[DeadLetter("1:x")], dlq="standard-dlq")


@pytest.mark.parametrize("change", ["release", "dead_letter"])
def test_settle_wakes_watchers_of_what_became_visible(backend, other, change):
    m = claimed(backend, 1)["m0"]
    calls = Calls()
    watch = backend.watch_enqueues(calls)
    try:
        if change == "release":
            other.settle("q", releases=[Release(m.receipt)])
        else:
            other.settle("q", dead_letters=[DeadLetter(m.receipt)], dlq="dlq")
        assert calls.wait("q" if change == "release" else "dlq")
    finally:
        watch.close()
