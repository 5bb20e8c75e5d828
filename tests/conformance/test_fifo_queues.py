"""FIFO queues: message groups, deduplication, sequence numbers, and the group lock.

The group lock is the backend's own state (a group with a message in flight gives nothing
more), so it holds across backend objects, as across nodes. Only the public protocol is
used; time is the FakeClock.
"""

from __future__ import annotations

import threading
import time

import pytest

from squall.backends.fifo import DEDUP_WINDOW, FifoEntry
from squall.errors import ConfigError
from tests.conformance.support import run_threads
from tests.conformance.test_queues import Calls

Q = "orders.fifo"
DLQ = "orders-dlq.fifo"


def send(backend, group: str, *bodies: str, delay: float = 0.0) -> list[str]:
    """Send bodies to one group, each body its own deduplication id."""
    return backend.enqueue_fifo(Q, [FifoEntry(body, None, group, body) for body in bodies], delay)


def bodies(messages) -> list[str]:
    return [m.body for m in messages]


def test_records_carry_group_dedup_id_and_increasing_sequence_numbers(backend, clock):
    ids = backend.enqueue_fifo(Q, [FifoEntry("a1", {"k": "v"}, "a", "d1"), FifoEntry("b1", None, "b", "d2"),
                                   FifoEntry("a2", None, "a", "d3")])
    claimed = backend.claim(Q, 10, 30)
    assert [(m.id, m.body, m.group, m.dedup_id) for m in claimed] == [
        (ids[0], "a1", "a", "d1"), (ids[2], "a2", "a", "d3"), (ids[1], "b1", "b", "d2")]  # group by group
    assert claimed[0].attributes == {"k": "v"} and claimed[0].sent_at == clock.now
    sequences = {m.body: m.sequence for m in claimed}
    assert all(len(s) == 20 and s.isdigit() for s in sequences.values())
    assert sequences["a1"] < sequences["b1"] < sequences["a2"]  # in send order, across groups too


def test_a_group_gives_nothing_while_a_message_of_it_is_in_flight(backend, other):
    send(backend, "a", "a1", "a2", "a3")
    send(backend, "b", "b1")
    assert bodies(backend.claim(Q, 2, 30)) == ["a1", "a2"]
    assert bodies(other.claim(Q, 10, 30)) == ["b1"]  # a3 waits behind its group's batch
    assert other.claim(Q, 10, 30) == []


def test_acking_the_batch_unblocks_the_group_in_order(backend, other):
    send(backend, "a", "a1", "a2", "a3")
    first = backend.claim(Q, 2, 30)
    assert backend.ack(Q, [m.receipt for m in first]) == 2
    assert bodies(other.claim(Q, 10, 30)) == ["a3"]


def test_a_partial_ack_keeps_the_group_blocked_until_its_head_goes(backend):
    send(backend, "a", "a1", "a2", "a3")
    a1, a2 = backend.claim(Q, 2, 30)
    backend.ack(Q, [a2.receipt])
    assert backend.claim(Q, 10, 30) == []  # a1 is still in flight: a3 must wait for it
    backend.ack(Q, [a1.receipt])
    assert bodies(backend.claim(Q, 10, 30)) == ["a3"]


def test_a_retried_head_holds_its_group_and_only_its_group(backend, clock):
    send(backend, "a", "a1", "a2")
    send(backend, "b", "b1", "b2")
    a1, a2 = backend.claim(Q, 2, 30)
    assert backend.release(Q, a1.receipt, delay=10)  # the failed head waits for its retry
    assert backend.release(Q, a2.receipt)  # visible, but behind its head
    assert bodies(backend.claim(Q, 10, 30)) == ["b1", "b2"]
    assert backend.claim(Q, 10, 30) == []
    assert backend.queue_stats(Q).visible == 1  # a2 counts as visible, as on SQS
    clock.advance(10)
    retried = backend.claim(Q, 10, 30)
    assert bodies(retried) == ["a1", "a2"] and [m.receive_count for m in retried] == [2, 2]


def test_visibility_timeout_expiry_redelivers_the_group_in_order(backend, clock):
    send(backend, "a", *[f"a{i}" for i in range(5)])
    first = backend.claim(Q, 3, 30)
    clock.advance(29)
    assert backend.claim(Q, 10, 30) == []
    clock.advance(2)
    again = backend.claim(Q, 10, 30)
    assert bodies(again) == [f"a{i}" for i in range(5)]
    assert [m.id for m in again[:3]] == [m.id for m in first]
    assert [m.receive_count for m in again] == [2, 2, 2, 1, 1]
    assert backend.ack(Q, [m.receipt for m in first]) == 0  # the first receipts are stale


def test_a_head_out_of_receives_moves_to_the_dlq_and_unblocks_its_group(backend, clock):
    send(backend, "a", "poison", "a2")
    for _ in range(2):
        [head] = backend.claim(Q, 1, 30, max_receives=2, dlq=DLQ)
        assert head.body == "poison" and backend.release(Q, head.receipt)
    claimed = backend.claim(Q, 10, 30, max_receives=2, dlq=DLQ)
    assert bodies(claimed) == ["a2"]  # the claim went on past the dead head, in the same call
    [dead] = backend.peek(DLQ)
    assert (dead.body, dead.group, dead.receive_count) == ("poison", "a", 0)


def test_dead_lettering_the_head_unblocks_the_group(backend, other):
    send(backend, "a", "poison", "a2")
    [head] = backend.claim(Q, 1, 30)
    assert other.dead_letter(Q, head.receipt, DLQ, {"reason": {"dataType": "String", "stringValue": "x"}})
    assert bodies(other.claim(Q, 10, 30)) == ["a2"]
    [dead] = backend.peek(DLQ)
    assert (dead.body, dead.sequence, dead.dedup_id) == ("poison", head.sequence, "poison")
    assert dead.attributes["reason"]["stringValue"] == "x"


def test_redrive_keeps_groups_order_and_sequence_numbers(backend):
    send(backend, "a", "a1", "a2")
    send(backend, "b", "b1")
    claimed = backend.claim(Q, 10, 30)
    for m in claimed:
        assert backend.dead_letter(Q, m.receipt, DLQ)
    assert backend.redrive(DLQ, Q) == 3
    again = backend.claim(Q, 10, 30)
    assert [(m.body, m.group, m.sequence) for m in again] == [(m.body, m.group, m.sequence) for m in claimed]
    assert backend.claim(DLQ, 10, 30) == []


def test_order_within_each_group_under_concurrent_claimers(backend, other):
    """Eight claimers on two backend objects: every group is processed in send order, and
    no group is ever held by two claimers at once."""
    groups = [f"g{n}" for n in range(3)]  # fewer groups than claimers: most claims find theirs held
    for i in range(20):
        backend.enqueue_fifo(Q, [FifoEntry(f"{g}:{i}", None, g, f"{g}:{i}") for g in groups])
    held: set[str] = set()
    processed: dict[str, list[int]] = {g: [] for g in groups}
    lock = threading.Lock()

    def claimer(i: int) -> None:
        store = (backend, other)[i % 2]
        idle = 0
        while idle < 50:
            batch = store.claim(Q, 3, 30)
            if not batch:
                idle += 1
                continue
            idle = 0
            mine = {m.group for m in batch}
            with lock:
                assert held.isdisjoint(mine), f"groups {held & mine} handed out twice"
                held.update(mine)
                for m in batch:
                    processed[m.group].append(int(m.body.split(":")[1]))
            time.sleep(0.002)  # hold the batch a while, as a handler does
            with lock:
                held.difference_update(mine)  # before the ack: the backend still holds them
            assert store.ack(Q, [m.receipt for m in batch]) == len(batch)

    run_threads(claimer, 8)
    assert processed == {g: list(range(20)) for g in groups}
    assert backend.queue_stats(Q).total == 0


def test_dedup_window(backend, clock):
    [original] = send(backend, "a", "m")
    clock.advance(DEDUP_WINDOW - 1)
    assert backend.enqueue_fifo(Q, [FifoEntry("other body", None, "b", "m")]) == [original]  # by id, not body
    [m] = backend.claim(Q, 10, 30)
    backend.ack(Q, [m.receipt])
    assert send(backend, "a", "m") == [original]  # delivered and deleted: still a duplicate
    assert backend.queue_stats(Q).total == 0
    clock.advance(1)  # five minutes after the first send
    [fresh] = send(backend, "a", "m")
    assert fresh != original
    assert bodies(backend.claim(Q, 10, 30)) == ["m"]


def test_duplicates_within_one_batch_store_the_first(backend):
    ids = backend.enqueue_fifo(Q, [FifoEntry("one", None, "a", "d"), FifoEntry("two", None, "a", "d"),
                                   FifoEntry("three", None, "a", "e")])
    assert ids[0] == ids[1] != ids[2]
    assert bodies(backend.claim(Q, 10, 30)) == ["one", "three"]


def test_dedup_ids_are_per_queue_and_purge_forgets_them(backend):
    [first] = send(backend, "a", "m")
    [elsewhere] = backend.enqueue_fifo("other.fifo", [FifoEntry("m", None, "a", "m")])
    assert elsewhere != first
    assert backend.purge(Q) == 1
    assert send(backend, "a", "m") != [first]


def test_a_queue_delay_applies_to_every_message(backend, clock):
    send(backend, "a", "a1", "a2", delay=10)
    assert backend.claim(Q, 10, 30) == []
    assert backend.queue_stats(Q).delayed == 2
    assert backend.queues_next_visible([Q]) == {Q: clock.now + 10}
    clock.advance(10)
    assert bodies(backend.claim(Q, 10, 30)) == ["a1", "a2"]


def test_next_visible_is_the_earliest_group_head(backend, clock):
    send(backend, "a", "a1", "a2")
    send(backend, "b", "b1")
    [a1] = [m for m in backend.claim(Q, 1, 30)]
    assert backend.release(Q, a1.receipt, delay=20)
    [b1] = backend.claim(Q, 10, 30)
    # a2 is visible, but behind a head that is not: a poller must not spin on it
    assert backend.queues_next_visible([Q, "standard"]) == {Q: clock.now + 20}
    backend.ack(Q, [b1.receipt])
    backend.enqueue("standard", "s")
    assert backend.queues_next_visible([Q, "standard"]) == {Q: clock.now + 20, "standard": clock.now}


def test_an_ack_that_unblocks_a_group_wakes_watchers(backend, other):
    send(backend, "a", "a1", "a2")
    [a1] = backend.claim(Q, 1, 30)
    calls = Calls()
    watch = backend.watch_enqueues(calls)
    try:
        assert other.ack(Q, [a1.receipt]) == 1
        assert calls.wait(Q)
    finally:
        watch.close()


@pytest.mark.parametrize("call, complaint", [
    (lambda b: b.enqueue(Q, "x"), "is a FIFO queue"),
    (lambda b: b.enqueue_batch(Q, [("x", None, 0.0)]), "is a FIFO queue"),
    (lambda b: b.enqueue_fifo("standard", [FifoEntry("x", None, "g", "d")]), "is not a FIFO queue"),
    (lambda b: b.enqueue_fifo(Q, [FifoEntry("x", None, "", "d")]), "needs a group"),
    (lambda b: b.enqueue_fifo(Q, [FifoEntry("x", None, "g", "d")], -1), "delay"),
    (lambda b: b.claim(Q, 1, 30, max_receives=1, dlq="standard-dlq"), "must be a FIFO queue too"),
    (lambda b: b.claim("standard", 1, 30, max_receives=1, dlq=DLQ), "must be a standard queue too"),
    (lambda b: b.dead_letter(Q, "1.1", "standard-dlq"), "must be a FIFO queue too"),
    (lambda b: b.redrive(DLQ, "standard"), "must be a FIFO queue too"),
])
def test_fifo_and_standard_queues_do_not_mix(backend, call, complaint):
    with pytest.raises(ConfigError, match=complaint):
        call(backend)
    assert backend.queue_stats(Q).total == backend.queue_stats("standard").total == 0
