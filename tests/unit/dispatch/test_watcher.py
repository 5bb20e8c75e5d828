"""QueueWatcher: one check wakes the consumers of queues with a visible message; enqueue
notifications wake one consumer or ask for a check; checks run at the time a known message
becomes visible, and a failing check is retried."""

from __future__ import annotations

import asyncio
import logging
import threading

import pytest

from squall.dispatch.watcher import QueueWatcher
from squall.errors import BackendUnavailable
from tests.unit.support import CountingBackend, until


class Sleeper:
    """A consumer as the watcher sees it: counts wake() calls."""

    def __init__(self) -> None:
        self.wakes = 0

    def wake(self) -> None:
        self.wakes += 1


@pytest.fixture
def consumers():
    return {name: Sleeper() for name in ("visible", "empty", "later", "in-flight")}


def watching(backend, consumers) -> QueueWatcher:
    watcher = QueueWatcher(backend)
    for queue, consumer in consumers.items():
        watcher.watch(queue, consumer)
    return watcher


def fill(sqlite) -> None:
    sqlite.enqueue("visible", "now")
    sqlite.enqueue("later", "soon", delay=5)
    sqlite.enqueue("in-flight", "claimed")
    assert sqlite.claim("in-flight", 1, 30)


def wakes(consumers) -> dict[str, int]:
    return {name: c.wakes for name, c in consumers.items()}


def test_step_wakes_the_consumers_of_queues_with_visible_messages_only(sqlite, clock, consumers):
    fill(sqlite)
    backend = CountingBackend(sqlite)
    watcher = watching(backend, consumers)

    assert not asyncio.run(watcher.step())  # a check invokes nothing itself
    assert backend.calls == ["queues_next_visible"]  # one call for every watched queue
    assert wakes(consumers) == {"visible": 1, "empty": 0, "later": 0, "in-flight": 0}

    clock.advance(5)  # the delayed message is visible now
    asyncio.run(watcher.step())
    assert wakes(consumers) == {"visible": 2, "empty": 0, "later": 1, "in-flight": 0}

    clock.advance(25)  # and the claimed one's visibility timeout is over
    asyncio.run(watcher.step())
    assert wakes(consumers) == {"visible": 3, "empty": 0, "later": 2, "in-flight": 1}


def test_step_remembers_when_the_next_message_becomes_visible(sqlite, consumers):
    fill(sqlite)
    watcher = watching(sqlite, consumers)

    async def main() -> tuple[float, float | None]:
        now = asyncio.get_running_loop().time()
        await watcher.step()
        return now, watcher._due

    now, due = asyncio.run(main())
    assert due is not None and 4.9 < due - now < 5.1  # "later", before "in-flight" (30 s)


def test_step_without_watched_queues_makes_no_call(sqlite):
    backend = CountingBackend(sqlite)
    asyncio.run(QueueWatcher(backend).step())  # type: ignore[arg-type]
    assert backend.calls == []


def test_unwatched_queue_is_neither_checked_nor_woken(sqlite, consumers):
    fill(sqlite)
    watcher = watching(sqlite, consumers)
    watcher.unwatch("visible")
    watcher.unwatch("never-watched")
    asyncio.run(watcher.step())
    assert consumers["visible"].wakes == 0


def run_watcher(backend, consumers, body, interval: float = 60.0):
    """Start a watcher on a running loop, run `body(watcher)`, stop it."""

    async def main():
        watcher = watching(backend, consumers)
        watcher.interval = interval
        await watcher.start()
        try:
            await body(watcher)
        finally:
            await asyncio.wait_for(watcher.stop(), 5)
        return watcher

    return asyncio.run(main())


def notify_from_a_thread(watcher: QueueWatcher, queue: str | None) -> None:
    thread = threading.Thread(target=watcher._notified, args=(queue,))  # as the backend's notification thread
    thread.start()
    thread.join()


def test_a_notification_naming_a_queue_wakes_its_consumer_without_a_check(sqlite, consumers):
    backend = CountingBackend(sqlite)

    async def body(watcher):
        await until(lambda: backend.calls.count("queues_next_visible") == 1, what="the first check")
        notify_from_a_thread(watcher, "empty")
        await until(lambda: consumers["empty"].wakes == 1, what="the wake")
        notify_from_a_thread(watcher, "not-watched")  # nobody to wake, nothing to check
        await asyncio.sleep(0.05)
        assert backend.calls.count("queues_next_visible") == 1

    run_watcher(backend, consumers, body)
    assert wakes(consumers) == {"visible": 0, "empty": 1, "later": 0, "in-flight": 0}


def test_a_notification_without_a_queue_asks_for_a_check(sqlite, consumers):
    backend = CountingBackend(sqlite)

    async def body(watcher):
        await until(lambda: backend.calls.count("queues_next_visible") == 1, what="the first check")
        assert consumers["visible"].wakes == 0
        sqlite.enqueue("visible", "hello")
        notify_from_a_thread(watcher, None)
        await until(lambda: backend.calls.count("queues_next_visible") == 2, what="the requested check")
        await until(lambda: consumers["visible"].wakes == 1, what="the wake")

    run_watcher(backend, consumers, body)
    assert wakes(consumers) == {"visible": 1, "empty": 0, "later": 0, "in-flight": 0}


def test_watching_a_queue_asks_for_a_check(sqlite):
    sqlite.enqueue("q", "1")
    backend = CountingBackend(sqlite)
    late = Sleeper()

    async def body(watcher):
        await asyncio.sleep(0.05)
        assert backend.calls == ["watch_enqueues"]  # nothing watched: nothing checked
        watcher.watch("q", late)
        await until(lambda: late.wakes == 1, what="the new consumer's wake")

    run_watcher(backend, {}, body)


def test_a_check_runs_when_a_known_message_becomes_visible(sqlite, clock, consumers):
    sqlite.enqueue("later", "soon", delay=0.1)
    backend = CountingBackend(sqlite)

    async def body(watcher):
        await until(lambda: backend.calls.count("queues_next_visible") == 1, what="the first check")
        assert consumers["later"].wakes == 0
        clock.advance(0.1)  # the backend's time; the loop's goes by on its own
        await until(lambda: consumers["later"].wakes == 1, timeout=2, what="the check at the due time")

    run_watcher(backend, consumers, body, interval=60)  # long before the periodic check


def test_checks_run_every_interval(sqlite, consumers):
    backend = CountingBackend(sqlite)

    async def body(watcher):
        await until(lambda: backend.calls.count("queues_next_visible") >= 4, timeout=2, what="periodic checks")

    run_watcher(backend, consumers, body, interval=0.02)


def test_a_failing_check_is_logged_once_and_retried(sqlite, consumers, caplog):
    caplog.set_level(logging.WARNING, logger="squall.queues")
    sqlite.enqueue("visible", "1")
    backend = CountingBackend(sqlite)
    backend.fail_once("queues_next_visible", BackendUnavailable("down"))
    backend.fail_once("queues_next_visible", BackendUnavailable("still down"))

    async def body(watcher):
        await until(lambda: consumers["visible"].wakes >= 1, timeout=2, what="a check that works")

    run_watcher(backend, consumers, body, interval=0.02)
    warnings = [r.getMessage() for r in caplog.records if r.name == "squall.queues"]
    assert len([m for m in warnings if "check failed" in m]) == 1
    assert "down" in warnings[0]


def test_stop_closes_the_watch_and_a_late_notification_is_ignored(sqlite, consumers):
    closed = []

    class Watch:
        def close(self) -> None:
            closed.append(True)

    callbacks = []

    class Notifying(CountingBackend):
        def watch_enqueues(self, callback):
            callbacks.append(callback)
            return Watch()

    async def body(watcher):
        pass

    watcher = run_watcher(Notifying(sqlite), consumers, body)
    assert closed == [True]
    [callback] = callbacks
    callback("visible")  # the loop is closed now: nothing happens, nothing raises
    assert watcher._task is None and consumers["visible"].wakes == 0
