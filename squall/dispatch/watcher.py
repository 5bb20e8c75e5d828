"""One poller per node for every queue it consumes, so an idle node costs (almost) nothing.

A consumer whose last claim came back short stops claiming and waits for this watcher
to wake it. The watcher learns that a queue may have visible messages in two ways:

- the backend's enqueue notifications (`Backend.watch_enqueues`: Redis pub/sub from the
  scripts that make messages visible, inotify on the SQLite file), which wake the named
  queue's consumer at once, or ask for a check when the backend cannot say which queue;
- a check: one `queues_next_visible` call for all watched queues, which wakes the
  consumers of queues with a visible message and remembers the earliest time a delayed,
  retried or in-flight message becomes visible. Checks run on request, at that time,
  and at least every `interval` seconds in case a notification was lost.

The idle cost is then a check per `interval` whatever the number of queues, where a
poller per queue would multiply it by the number of functions.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Protocol

from squall.backends import Backend, Watch
from squall.core.lifecycle import Progress, Service

log = logging.getLogger("squall.queues")


class Wakeable(Protocol):
    def wake(self) -> None: ...


class QueueWatcher(Service):
    name = "queue-watcher"

    #: seconds between checks when nothing else asks for one
    interval: float = 1.0
    #: least seconds between two checks: the first after a quiet spell runs at once, but a
    #: busy SQLite node is notified of its own commits hundreds of times a second
    min_gap: float = 0.01

    def __init__(self, backend: Backend) -> None:
        self.backend = backend
        self._consumers: dict[str, Wakeable] = {}
        self._check = asyncio.Event()
        self._stopping = asyncio.Event()
        self._due: float | None = None  # loop time at which a known message becomes visible
        self._watch: Watch | None = None
        self._task: asyncio.Task[None] | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._failing = False

    def watch(self, queue: str, consumer: Wakeable) -> None:
        self._consumers[queue] = consumer
        self._check.set()

    def unwatch(self, queue: str) -> None:
        self._consumers.pop(queue, None)

    def recheck(self) -> None:
        """Check soon: a consumer woke for a message it could not claim yet."""
        self._check.set()

    async def start(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._watch = await asyncio.to_thread(self.backend.watch_enqueues, self._notified)
        self._task = asyncio.create_task(self._run(), name=self.name)

    async def stop(self) -> None:
        self._stopping.set()
        if self._task is not None:
            await self._task
            self._task = None
        if self._watch is not None:
            await asyncio.to_thread(self._watch.close)
            self._watch = None

    def _notified(self, queue: str | None) -> None:
        """From the backend's notification thread. A check already asked for covers a
        notification that names no queue (reading the flag here races harmlessly)."""
        loop = self._loop
        if loop is not None and not loop.is_closed() and not (queue is None and self._check.is_set()):
            loop.call_soon_threadsafe(self._on_notice, queue)

    def _on_notice(self, queue: str | None) -> None:
        consumer = self._consumers.get(queue) if queue is not None else None
        if consumer is not None:
            consumer.wake()
        elif queue is None:
            self._check.set()

    async def step(self) -> Progress:
        """One check: wake the consumers of every queue with a visible message."""
        self._check.clear()
        queues = list(self._consumers)
        if not queues:
            return Progress()
        found = await asyncio.to_thread(self.backend.queues_next_visible, queues)
        now, loop_now = self.backend.clock(), asyncio.get_running_loop().time()
        later = [at for at in found.values() if at > now]
        self._due = loop_now + (min(later) - now) if later else None
        for queue, at in found.items():
            consumer = self._consumers.get(queue)
            if at <= now and consumer is not None:
                consumer.wake()
        return Progress()

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        last = 0.0
        while not self._stopping.is_set():
            deadline = last + self.interval if self._due is None else min(last + self.interval, self._due)
            if not self._check.is_set() and loop.time() < deadline:
                await self._wait(deadline - loop.time())
                if self._stopping.is_set():
                    return
            if (pause := last + self.min_gap - loop.time()) > 0:
                await asyncio.sleep(pause)
            last = loop.time()
            try:
                await self.step()
            except Exception as exc:  # noqa: BLE001 - a failed check is retried after the interval
                if not self._failing:
                    log.warning("queue watcher: check failed, retrying: %s", exc)
                self._failing = True
            else:
                self._failing = False

    async def _wait(self, seconds: float) -> None:
        """Until a check is asked for, stop() is called, or `seconds` pass."""
        check = asyncio.ensure_future(self._check.wait())
        stop = asyncio.ensure_future(self._stopping.wait())
        try:
            await asyncio.wait({check, stop}, timeout=seconds, return_when=asyncio.FIRST_COMPLETED)
        finally:
            check.cancel()
            stop.cancel()

