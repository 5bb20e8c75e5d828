"""The deadline bound of backend calls: what `cap` leaves, and that `bind` applies it per call."""

from __future__ import annotations

import threading
import time

import pytest

from squall.backends import deadline


def test_cap_is_the_wait_itself_outside_an_invocation():
    assert deadline.left() is None
    assert deadline.cap(30.0) == 30.0
    assert deadline.cap(None) is None


def test_cap_shortens_a_wait_to_the_deadline_less_the_margin_but_not_below_the_floor():
    with deadline.bounded(time.time() + 2.0):
        assert 2.0 - deadline.MARGIN - 0.05 < deadline.cap(30.0) <= 2.0 - deadline.MARGIN
        assert deadline.cap(0.5) == 0.5
        assert deadline.cap(None) == pytest.approx(2.0 - deadline.MARGIN, abs=0.05)
    with deadline.bounded(time.time() - 1):  # past: a healthy backend still gets FLOOR to answer
        assert deadline.cap(30.0) == deadline.FLOOR
    assert deadline.left() is None  # the block's bound ends with it


class _Recorder:
    """A stand-in backend that records the bound each call ran under."""

    url = "test://"

    def __init__(self):
        self.seen: list[float | None] = []

    def table_get(self, table: str, key: str) -> None:
        self.seen.append(deadline.left())


def test_bind_bounds_each_call_and_opens_the_backend_on_first_use():
    recorder = _Recorder()
    opened: list[float | None] = []

    def open_backend():
        opened.append(deadline.left())
        return recorder

    bound = deadline.bind(open_backend, time.time() + 1.0)
    assert opened == []  # nothing opened until a call needs it
    assert bound.url == "test://"
    bound.table_get("t", "k")
    assert opened[0] is not None and 0 < opened[0] <= 1.0 - deadline.MARGIN  # the opening is bounded too
    assert recorder.seen[0] is not None and 0 < recorder.seen[0] <= 1.0 - deadline.MARGIN
    assert deadline.left() is None  # nothing leaks to the caller


def test_concurrent_invocations_keep_their_own_deadline():
    recorder = _Recorder()
    near, far = deadline.bind(lambda: recorder, time.time() + 1), deadline.bind(lambda: recorder, time.time() + 60)
    threads = [threading.Thread(target=b.table_get, args=("t", "k")) for b in (near, far)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    low, high = sorted(recorder.seen)  # type: ignore[type-var]
    assert low < 1 < high
