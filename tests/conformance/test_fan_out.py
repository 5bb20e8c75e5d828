"""Queues.fan_out: a publish into several queues with its counts, one commit on both backends;
into FIFO queues with groups and deduplication ids, a FIFO topic's publish deduplicated
and numbered (`PublishOnce`) in the same commit, and claimed messages consumed by the
commit that writes what they become (`Consumed`, an event bus's router)."""

from __future__ import annotations

import threading

import pytest

from squall.backends.fifo import DEDUP_WINDOW, SEQUENCE_PLACEHOLDER, FifoEntry, PublishOnce
from squall.backends.protocol import Consumed
from squall.backends.protocol import FanOutEntry as E
from squall.errors import ConfigError
from tests.conformance.support import run_threads


def test_entries_reach_their_queues_in_order_with_ids(backend, clock):
    ids, sequence, original, consumed = backend.fan_out(
        [E("a", "1", {"k": {"dataType": "String"}}), E("b", "2"), E("a", "3")], "counts", {"t delivered": 2})
    assert sequence is None and original is None and consumed == 0
    assert len(set(ids)) == 3
    first, third = backend.claim("a", 10, 30)
    [second] = backend.claim("b", 10, 30)
    assert [(m.id, m.body) for m in (first, second, third)] == list(zip(ids, "123", strict=True))
    assert first.attributes == {"k": {"dataType": "String"}} and second.attributes == {}
    assert first.sent_at == clock.now


def test_counts_add_up_and_each_addition_is_a_write(backend):
    backend.fan_out([E("a", "x")], "counts", {"t delivered": 1, "t filtered": 3})
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
        backend.fan_out([E("a", "ok"), E("b", "bad", {"k": object()})], "counts", {"n": 1})
    assert backend.queue_stats("a").total == backend.queue_stats("b").total == 0
    assert backend.table_get("counts", "n") is None


def test_an_empty_call_writes_nothing(backend):
    assert backend.fan_out([], "counts", {}).ids == []
    assert backend.table_scan("counts") == []


def test_concurrent_publishers_lose_no_count(backend, other):
    def publish(store):
        for _ in range(50):
            store.fan_out([E("a", "m")], "counts", {"n": 1})

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
        backend.fan_out([E("a", "1"), E("b", "2")], "counts", {})
        assert event.wait(5)
    finally:
        watch.close()


# ---- FIFO queues and FIFO publishes --------------------------------------------------------

TOPIC = "orders.fifo"


def envelope(text: str) -> tuple[str, int]:
    """A body holding the sequence number placeholder after `text`, and where."""
    return f"{text}:{SEQUENCE_PLACEHOLDER}:end", len(text) + 1


def publish(store, dedup_id: str, message_id: str, group: str = "g", text: str = "m", counts=None):
    body, at = envelope(text)
    return store.fan_out([E("ledger.fifo", body, {"k": "v"}, group, dedup_id, at),
                          E("audit", body, None, None, None, at), E("raw.fifo", text, None, group, dedup_id)],
                         "counts", counts or {"published": 1},
                         PublishOnce(TOPIC, dedup_id, message_id))


def test_fifo_entries_join_their_groups_with_the_queues_deduplication(backend):
    backend.enqueue_fifo("ledger.fifo", [FifoEntry("direct", None, "a", "d1")])
    ids = backend.fan_out([E("ledger.fifo", "a1", None, "a", "d1"), E("ledger.fifo", "b1", None, "b", "d2"),
                           E("ledger.fifo", "a2", None, "a", "d3"), E("audit", "x")], "counts", {}).ids
    first = backend.peek("ledger.fifo")[0]
    assert ids[0] == first.id  # d1 was accepted by the queue: the original's id, nothing stored
    messages = backend.claim("ledger.fifo", 10, 30)
    assert [(m.body, m.group, m.dedup_id) for m in messages] == [
        ("direct", "a", "d1"), ("a2", "a", "d3"), ("b1", "b", "d2")]
    assert [m.id for m in messages[1:]] == [ids[2], ids[1]]
    assert sorted(m.sequence for m in messages) == [m.sequence for m in sorted(messages, key=lambda m: m.sequence)]
    assert len({m.sequence for m in messages}) == 3
    [audit] = backend.claim("audit", 10, 30)
    assert (audit.id, audit.group, audit.sequence) == (ids[3], None, None)


def test_a_fifo_publish_is_numbered_in_its_scope_and_the_number_written_into_the_bodies(backend):
    first = publish(backend, "d1", "m1", text="one")
    second = publish(backend, "d2", "m2", text="two√")  # a non-ASCII character before the placeholder
    assert first.original is None and second.original is None
    assert len(first.sequence) == 20 and first.sequence.isdigit() and second.sequence > first.sequence
    ledger = backend.claim("ledger.fifo", 10, 30)
    assert [m.body for m in ledger] == [f"one:{first.sequence}:end", f"two√:{second.sequence}:end"]
    assert [m.attributes for m in ledger] == [{"k": "v"}] * 2 and [m.group for m in ledger] == ["g", "g"]
    assert [m.body for m in backend.claim("audit", 10, 30)] == [f"one:{first.sequence}:end",
                                                                 f"two√:{second.sequence}:end"]
    assert [m.body for m in backend.claim("raw.fifo", 10, 30)] == ["one", "two√"]
    assert ledger[0].id == first.ids[0] and backend.table_get("counts", "published").value == 2


def test_a_duplicate_publish_writes_nothing_and_answers_the_original(backend, clock):
    first = publish(backend, "d1", "m1")
    clock.advance(DEDUP_WINDOW - 1)
    again = publish(backend, "d1", "m-other", group="h", text="changed")
    assert again == ([], first.sequence, "m1", 0)
    assert backend.queue_stats("ledger.fifo").total == backend.queue_stats("audit").total == 1
    assert backend.table_get("counts", "published").value == 1
    clock.advance(1)  # the window is over: accepted again, with the next number
    later = publish(backend, "d1", "m3", group="h", text="later")
    assert later.original is None and later.sequence > first.sequence
    assert backend.queue_stats("audit").total == 2
    # the queues deduplicated d1 too, for their own window, which ended with the topic's
    assert backend.queue_stats("ledger.fifo").total == 2


def test_publish_scopes_are_apart_from_queues_and_from_each_other(backend):
    backend.enqueue_fifo(TOPIC, [FifoEntry("a message", None, "g", "d1")])
    assert publish(backend, "d1", "m1").original is None  # the queue named like the topic keeps its own ids
    assert backend.fan_out([], "counts", {}, PublishOnce("other.fifo", "d1", "m2")).original is None
    assert publish(backend, "d1", "m3").original == "m1"


def test_a_publish_with_a_bad_entry_writes_nothing_and_remembers_nothing(backend):
    body, at = envelope("x")
    bad = [E("ledger.fifo", body, None, "g", "d1", at), E("audit", body, {"k": object()}, None, None, at)]
    with pytest.raises(ConfigError, match="message attributes"):
        backend.fan_out(bad, "counts", {"published": 1}, PublishOnce(TOPIC, "d1", "m1"))
    assert backend.queue_stats("ledger.fifo").total == 0 and backend.table_get("counts", "published") is None
    assert publish(backend, "d1", "m2").original is None


@pytest.mark.parametrize(("entry", "reason"), [
    (E("ledger.fifo", "b"), "needs a group and a deduplication id"),
    (E("ledger.fifo", "b", None, "g"), "needs a group and a deduplication id"),
    (E("audit", "b", None, "g", "d"), "'audit' is a standard queue"),
    (E("audit", "no placeholder", None, None, None, 3), "no sequence number placeholder at 3"),
])
def test_bad_entries_are_refused_before_anything_is_written(backend, entry, reason):
    with pytest.raises(ConfigError, match=reason):
        backend.fan_out([E("audit", "fine"), entry], "counts", {"n": 1}, PublishOnce(TOPIC, "d", "m"))
    assert backend.queue_stats("audit").total == 0
    assert publish(backend, "d", "m2").original is None  # "d" was not remembered


def test_a_placeholder_without_a_fifo_publish_is_refused(backend):
    body, at = envelope("x")
    with pytest.raises(ConfigError, match="no FIFO publish"):
        backend.fan_out([E("audit", body, None, None, None, at)], "counts", {})


def test_concurrent_publishers_get_distinct_numbers_and_one_wins_a_deduplication_id(backend, other):
    stores = (backend, other)
    numbers = run_threads(lambda i: [publish(stores[i % 2], f"d{i}-{n}", f"m{i}-{n}").sequence for n in range(20)], 4)
    flat = [number for numbers_ in numbers for number in numbers_]
    assert len(set(flat)) == 80 and all(numbers_ == sorted(numbers_) for numbers_ in numbers)
    answers = run_threads(lambda i: publish(stores[i % 2], "same", f"racer{i}"), 4)
    assert sum(answer.original is None for answer in answers) == 1
    winner = next(answer for answer in answers if answer.original is None)
    assert {answer.sequence for answer in answers} == {winner.sequence}
    assert backend.queue_stats("audit").total == 81


# ---- consuming claimed messages -------------------------------------------------------------


def bodies(messages) -> list[str]:
    return [m.body for m in messages]


def test_claimed_messages_are_replaced_by_their_entries_in_one_commit(backend, clock):
    backend.enqueue("bus", "e1")
    backend.enqueue("bus", "e2")
    first, second = backend.claim("bus", 10, 30)
    clock.advance(1)
    done = backend.fan_out([E("t1", "e1 for t1", {"k": "v"}, receipt=first.receipt),
                            E("t2", "e1 for t2", receipt=first.receipt),
                            E("t1", "e1 again", receipt=first.receipt)],
                           consumed=Consumed("bus", [first.receipt, second.receipt]))  # e2 matched nothing
    assert done.consumed == 2 and all(done.ids) and len(set(done.ids)) == 3
    assert backend.queue_stats("bus").total == 0
    t1 = backend.claim("t1", 10, 30)
    assert bodies(t1) == ["e1 for t1", "e1 again"]  # in the order given, visible now, never received
    assert t1[0].attributes == {"k": "v"} and t1[0].sent_at == clock.now and t1[0].receive_count == 1
    assert [m.id for m in t1] == [done.ids[0], done.ids[2]] and first.id not in done.ids
    assert bodies(backend.claim("t2", 10, 30)) == ["e1 for t2"]


def test_the_entries_of_a_stale_or_foreign_receipt_are_not_written(backend):
    backend.enqueue("bus", "e1")
    backend.enqueue("bus", "e2")
    stale, kept = backend.claim("bus", 10, 0)
    [again, _] = backend.claim("bus", 10, 30)  # received again: the first receipt went stale
    assert again.id == stale.id
    receipts = [stale.receipt, "not-a-receipt", "1.zz", again.receipt, again.receipt]
    done = backend.fan_out([E("t", "from stale", receipt=stale.receipt),
                            E("t", "from foreign", receipt="not-a-receipt"),
                            E("t", "from current", receipt=again.receipt), E("t", "unconditional")],
                           consumed=Consumed("bus", receipts))
    assert done.consumed == 1 and done.ids[:2] == ["", ""] and all(done.ids[2:])
    assert bodies(backend.peek("t")) == ["from current", "unconditional"]
    assert bodies(backend.peek("bus")) == ["e2"]


def test_a_message_claimed_by_two_routers_is_forwarded_once(backend, other):
    backend.enqueue("bus", "e")
    [late] = backend.claim("bus", 1, 0)  # its visibility timeout is over at once
    [early] = other.claim("bus", 1, 30)
    answers = run_threads(lambda i: (backend, other)[i].fan_out(
        [E("t", f"by {i}", receipt=(late, early)[i].receipt)], consumed=Consumed("bus", [(late, early)[i].receipt])), 2)
    assert [answer.consumed for answer in answers] == [0, 1]
    assert bodies(backend.peek("t")) == ["by 1"] and backend.queue_stats("bus").total == 0


def test_consumed_entries_to_fifo_queues_keep_their_groups_and_deduplication(backend):
    for body in ("e1", "e2", "e3"):
        backend.enqueue("bus", body)
    one, two, three = backend.claim("bus", 10, 30)
    backend.release("bus", three.receipt)
    [three_again] = backend.claim("bus", 10, 30)
    done = backend.fan_out([E("out.fifo", "a", None, "g", "d1", receipt=one.receipt),
                            E("out.fifo", "b", None, "g", "d2", receipt=two.receipt),
                            E("out.fifo", "c", None, "g", "d3", receipt=three.receipt),  # stale: not written
                            E("out.fifo", "a dup", None, "g", "d1", receipt=two.receipt),
                            E("plain", "p", receipt=two.receipt)],
                           "counts", {"routed": 2}, consumed=Consumed("bus", [one.receipt, two.receipt, three.receipt]))
    assert done.consumed == 2 and done.ids[2] == "" and done.ids[3] == done.ids[0]
    messages = backend.claim("out.fifo", 10, 30)
    assert [(m.body, m.group, m.dedup_id, m.id) for m in messages] == [("a", "g", "d1", done.ids[0]),
                                                                     ("b", "g", "d2", done.ids[1])]
    assert messages[0].sequence < messages[1].sequence
    assert bodies(backend.claim("plain", 10, 30)) == ["p"]
    assert backend.table_get("counts", "routed").value == 2
    assert [m.id for m in backend.peek("bus")] == [three_again.id]  # its current receipt was not given


def test_a_consuming_fan_out_that_fails_a_check_consumes_nothing(backend):
    backend.enqueue("bus", "e")
    [m] = backend.claim("bus", 1, 30)
    consumed = Consumed("bus", [m.receipt])
    refusals = [
        ([E("t", "x", receipt=m.receipt), E("bus", "y")], {}, None, "cannot append to it"),
        ([E("t", "x", receipt="another")], {}, None, "does not consume"),
        ([E("t", "x", {"k": object()}, receipt=m.receipt)], {}, None, "message attributes"),
        ([E("t", "x")], {}, PublishOnce(TOPIC, "d", "m"), "cannot be a FIFO publish"),
    ]
    for entries, counts, once, reason in refusals:
        with pytest.raises(ConfigError, match=reason):
            backend.fan_out(entries, "counts", counts, once, consumed)
    with pytest.raises(ConfigError, match="needs the table of its counters"):
        backend.fan_out([E("t", "x")], counts={"n": 1}, consumed=consumed)
    with pytest.raises(ConfigError, match="does not consume"):
        backend.fan_out([E("t", "x", receipt=m.receipt)])
    assert backend.queue_stats("bus").in_flight == 1 and backend.queue_stats("t").total == 0
    assert backend.table_scan("counts") == []
    assert backend.fan_out([], consumed=Consumed("bus", [])).consumed == 0  # nothing to do
    assert backend.fan_out([], consumed=consumed).consumed == 1  # consumed, nothing written
    assert backend.queue_stats("bus").total == 0
