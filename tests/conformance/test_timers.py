"""Timers: keyed durable timers, claimed with a lease and acked once fired."""

from __future__ import annotations

import dataclasses
import math

import pytest

from squall.backends.protocol import TimerFiring
from squall.errors import ConfigError
from tests.conformance.support import run_threads


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


# ---- the cases where the backends used to disagree --------------------------------------


def test_claims_are_returned_by_due_time_after_a_lease_expires(backend, clock):
    """Redis used to return timers in the order they became visible again."""
    now = clock.now
    backend.timer_set("g", "first", now, "1")
    backend.timers_claim("g", 10, 10)  # "first" is visible again at now + 10
    backend.timer_set("g", "second", now + 5, "2")
    clock.advance(20)
    assert [t.key for t in backend.timers_claim("g", 10, 10)] == ["first", "second"]


@pytest.mark.parametrize("call, text", [
    (lambda b: b.timers_claim("g", -1, 10), "limit must be an integer >= 0, got -1"),
    (lambda b: b.timers_claim("g", 1, -10), "lease must be a finite number of seconds >= 0, got -10"),
    (lambda b: b.timer_set("g", "k", math.nan, "p"), "due must be a finite time in seconds, got nan"),
    (lambda b: b.timer_set("g", "k", math.inf, "p"), "due must be a finite time in seconds, got inf"),
])
def test_bad_arguments_fail_alike_and_change_nothing(backend, clock, call, text):
    """A NaN due time used to be an IntegrityError on SQLite and a ResponseError on Redis; a
    negative limit claimed everything on SQLite and nothing on Redis."""
    backend.timer_set("g", "k", clock.now, "kept")
    with pytest.raises(ConfigError) as error:
        call(backend)
    assert str(error.value) == text
    [t] = backend.timers_claim("g", 10, 10)
    assert (t.key, t.payload) == ("k", "kept")


def test_limit_zero_claims_nothing(backend, clock):
    backend.timer_set("g", "k", clock.now, "p")
    assert backend.timers_claim("g", 0, 10) == []
    assert len(backend.timers_claim("g", 10, 10)) == 1


def test_zero_lease_leaves_the_timer_due(backend, clock):
    backend.timer_set("g", "k", clock.now, "p")
    [first] = backend.timers_claim("g", 10, 0)
    [second] = backend.timers_claim("g", 10, 0)
    assert first.receipt != second.receipt
    assert backend.timer_ack("g", "k", first.receipt) is False
    assert backend.timer_ack("g", "k", second.receipt) is True


def test_receipts_are_per_timer(backend, clock):
    backend.timer_set("g", "a", clock.now, "A")
    backend.timer_set("g", "b", clock.now, "B")
    a, b = backend.timers_claim("g", 10, 30)
    assert backend.timer_ack("g", "a", b.receipt) is False
    assert backend.timer_ack("other", "a", a.receipt) is False
    assert backend.timer_ack("g", "missing", a.receipt) is False
    assert backend.timer_ack("g", "a", "") is False
    assert backend.timer_ack("g", "a", a.receipt) is True
    assert backend.timer_cancel("g", "missing") is False


def test_groups_are_separate(backend, clock):
    backend.timer_set("a", "k", clock.now, "A")
    backend.timer_set("b", "k", clock.now, "B")
    assert [t.payload for t in backend.timers_claim("a", 10, 30)] == ["A"]
    assert backend.timer_cancel("b", "k") is True
    assert backend.timers_claim("b", 10, 30) == []


# ---- several backend objects, threads and processes ------------------------------------


def test_concurrent_claims_never_share_a_timer(backend, other, clock):
    for i in range(60):
        backend.timer_set("g", f"t{i:02}", clock.now - i, str(i))

    def claim(i: int) -> list[str]:
        b, mine = (backend, other)[i % 2], []
        while batch := b.timers_claim("g", 4, 600):
            mine += [t.key for t in batch]
        return mine

    claimed = [key for mine in run_threads(claim, 4) for key in mine]
    assert sorted(claimed) == [f"t{i:02}" for i in range(60)]


# ---- timers_fire: each firing's messages and its next timer, all in one commit -----------


def fire(backend, timer, queue, bodies, next_due=None, next_payload=""):
    return backend.timers_fire("g", [TimerFiring(timer.key, timer.receipt, queue, bodies, next_due, next_payload)])


def test_timers_fire_enqueues_and_replaces(backend, clock):
    backend.timer_set("g", "k", clock.now, "first")
    [claimed] = backend.timers_claim("g", 10, 30)
    assert fire(backend, claimed, "q", ["a", "b"], clock.now + 60, "second") == [True]
    assert [m.body for m in backend.peek("q")] == ["a", "b"]
    assert backend.queue_stats("q").visible == 2
    assert backend.timers_claim("g", 10, 30) == []  # the replacement is not due yet, and not leased
    clock.advance(61)
    [fresh] = backend.timers_claim("g", 10, 30)
    assert (fresh.payload, fresh.due) == ("second", clock.now - 1)


def test_timers_claim_ahead_takes_timers_due_soon(backend, clock):
    """A claim `ahead` seconds early: timers due within them, leased from now."""
    now = clock.now
    backend.timer_set("g", "soon", now + 2, "S")
    backend.timer_set("g", "later", now + 3.5, "L")
    [soon] = backend.timers_claim("g", 10, 30, 3)
    assert (soon.key, soon.due) == ("soon", now + 2)
    assert backend.timers_next("g") == now + 3.5  # "later" is not due within 3 s: still there
    clock.advance(26)
    assert [t.key for t in backend.timers_claim("g", 10, 30, 3)] == ["later"]  # "soon" still leased
    clock.advance(2)
    # a lease counts as due at its end: within 3 s of it, "soon" is claimed again
    assert [t.key for t in backend.timers_claim("g", 10, 30, 3)] == ["soon"]


def test_timers_fire_visible_at_a_later_time(backend, clock):
    """A firing claimed ahead of its time: its messages are stored, and claimable from `visible_at`."""
    backend.timer_set("g", "k", clock.now + 2, "p")
    [claimed] = backend.timers_claim("g", 10, 30, 2)
    firing = TimerFiring(claimed.key, claimed.receipt, "q", ["a", "b"], clock.now + 60, "n", visible_at=clock.now + 2)
    assert backend.timers_fire("g", [firing]) == [True]
    assert backend.queue_stats("q").delayed == 2
    assert backend.queues_next_visible(["q"]) == {"q": clock.now + 2}
    assert backend.claim("q", 10, 30) == []
    clock.advance(2)
    assert [m.body for m in backend.claim("q", 10, 30)] == ["a", "b"]
    # one whose time has passed is visible at once
    backend.timer_set("g", "old", clock.now - 5, "p")
    [old] = backend.timers_claim("g", 10, 30)
    assert backend.timers_fire("g", [TimerFiring(old.key, old.receipt, "q", ["c"], None,
                                                 visible_at=clock.now - 5)]) == [True]
    assert [m.body for m in backend.claim("q", 10, 30)] == ["c"]


def test_timers_fire_without_a_next_timer_deletes_it(backend, clock):
    backend.timer_set("g", "k", clock.now, "only")
    [claimed] = backend.timers_claim("g", 10, 30)
    assert fire(backend, claimed, "q", ["a"]) == [True]
    assert backend.timer_cancel("g", "k") is False
    assert len(backend.peek("q")) == 1


def test_timers_fire_many_into_several_queues_at_once(backend, clock):
    for i in range(4):
        backend.timer_set("g", f"t{i}", clock.now, str(i))
    claimed = backend.timers_claim("g", 10, 30)
    firings = [TimerFiring(t.key, t.receipt, f"q{int(t.key[1]) % 2}", [t.key] * int(t.key[1]), clock.now + 5, "n")
               for t in claimed]
    firings[1] = firings[1]._replace(receipt="stale")
    assert backend.timers_fire("g", firings) == [True, False, True, True]
    assert [m.body for m in backend.peek("q0")] == ["t2", "t2"]
    assert [m.body for m in backend.peek("q1")] == ["t3"] * 3  # t1 did not fire
    assert backend.timers_fire("g", []) == []


def test_timers_fire_with_a_stale_receipt_changes_nothing(backend, clock):
    backend.timer_set("g", "k", clock.now, "p")
    [first] = backend.timers_claim("g", 10, 30)
    clock.advance(31)
    [second] = backend.timers_claim("g", 10, 30)  # the lease ran out and another claim took it
    assert fire(backend, first, "q", ["late"], clock.now + 60, "x") == [False]
    assert fire(backend, dataclasses.replace(first, receipt="foreign"), "q", ["late"]) == [False]
    assert backend.peek("q") == []
    assert fire(backend, second, "q", ["once"]) == [True]
    assert fire(backend, second, "q", ["twice"]) == [False]
    assert [m.body for m in backend.peek("q")] == ["once"]


def test_timers_fire_races_fire_once(backend, other, clock):
    """Two nodes holding receipts of the same timer (one lease expired): one firing."""
    backend.timer_set("g", "k", clock.now, "p")
    [first] = backend.timers_claim("g", 10, 30)
    clock.advance(31)
    [second] = other.timers_claim("g", 10, 30)
    holders = [(backend, first, "a"), (other, second, "b")]
    results = run_threads(lambda i: fire(holders[i][0], holders[i][1], "q", [holders[i][2]]), 2)
    assert results == [[False], [True]]
    assert [m.body for m in backend.peek("q")] == ["b"]


def test_timers_next_is_the_earliest_claimable_time(backend, clock):
    assert backend.timers_next("g") is None
    backend.timer_set("g", "b", clock.now + 20, "B")
    backend.timer_set("g", "a", clock.now + 10, "A")
    backend.timer_set("other", "x", clock.now + 1, "X")
    assert backend.timers_next("g") == clock.now + 10
    clock.advance(10)
    [claimed] = backend.timers_claim("g", 10, 30)
    assert backend.timers_next("g") == clock.now + 10  # "b"; "a" is leased until now + 30
    backend.timer_ack("g", "a", claimed.receipt)
    backend.timer_cancel("g", "b")
    assert backend.timers_next("g") is None
