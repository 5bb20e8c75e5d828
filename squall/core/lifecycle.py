"""One lifecycle for everything a node runs in the background.

Every background loop of a node — queue consumers, the queue watcher, metering flushes,
the heartbeat, the instance reaper, stream retention, leases — is a `Service`:

- `start()` begins its background rounds (a node calls it; the test harness does not);
- `stop()` stops taking new work and settles what is in flight (acks the batches that
  are running, flushes what is buffered) before it returns;
- `step()` runs one bounded round of work to completion and says what it did. The
  background loop is made of the same rounds, and `squall.testing.Harness` drives
  services only through `step()`, on its manual clock.

A node starts its services in dependency order and stops them in the reverse order
(`Services`), so consumers settle their last batches before metering's final flush.
"""

from __future__ import annotations

import asyncio
import logging
from abc import ABC, abstractmethod
from dataclasses import dataclass

log = logging.getLogger("squall.services")


@dataclass
class Progress:
    """What one `step()` did: invocations made, and the items they succeeded or failed on."""

    invocations: int = 0
    succeeded: int = 0
    failed: int = 0

    def __bool__(self) -> bool:
        return bool(self.invocations or self.succeeded or self.failed)

    def __iadd__(self, other: Progress) -> Progress:
        self.invocations += other.invocations
        self.succeeded += other.succeeded
        self.failed += other.failed
        return self


class Service(ABC):
    """A background loop with one lifecycle. See the module docstring."""

    #: shown in log lines
    name: str = ""
    #: the durable queues this service consumes (the harness drains one queue by stepping them)
    consumes: frozenset[str] = frozenset()
    #: the durable queues a service that acts when the clock reaches a time (schedules)
    #: enqueues to: the harness steps it at each such time and delivers these queues
    produces: frozenset[str] = frozenset()

    @abstractmethod
    async def start(self) -> None:
        """Begin background rounds; returns once they are running."""

    @abstractmethod
    async def stop(self) -> None:
        """Stop taking work and settle what is in flight. Safe without a start()."""

    @abstractmethod
    async def step(self) -> Progress:
        """One bounded round of work, finished before it returns."""

    async def wakes_at(self) -> float | None:
        """For a service that acts at a time: the next time it will (None: none pending)."""
        return None


class PeriodicService(Service):
    """A service whose background loop is `step()` every `interval` seconds.

    A round that raises is logged and the loop goes on: a background loop must never
    take the node down. `settle()` runs once the loop has ended (a final flush, a
    deregistration); it also runs when stop() is called without a start().
    """

    interval: float = 1.0

    def __init__(self) -> None:
        self._task: asyncio.Task[None] | None = None
        self._stopping = asyncio.Event()

    async def start(self) -> None:
        self._task = asyncio.create_task(self._loop(), name=self.name or type(self).__name__)

    async def stop(self) -> None:
        self._stopping.set()
        if self._task is not None:
            await self._task
            self._task = None
        await self.settle()

    async def settle(self) -> None:
        """What stop() does after the last round; nothing by default."""

    async def _loop(self) -> None:
        while not self._stopping.is_set():
            try:
                await self.step()
            except Exception as exc:  # noqa: BLE001 - one failed round is logged; the next one retries
                log.warning("%s: %s", self.name or type(self).__name__, exc)
            try:
                await asyncio.wait_for(self._stopping.wait(), self.interval)
            except TimeoutError:
                pass


class Services:
    """Services in dependency order: started first to last, stopped last to first."""

    def __init__(self, services: list[Service] | None = None) -> None:
        self.all: list[Service] = list(services or [])

    def add(self, service: Service) -> None:
        self.all.append(service)

    async def start(self) -> None:
        for service in self.all:
            await service.start()

    async def stop(self) -> None:
        """Stop every service, the last started first; one that fails to stop does not
        keep the others from settling."""
        for service in reversed(self.all):
            try:
                await service.stop()
            except Exception as exc:  # noqa: BLE001 - the rest must still settle
                log.warning("%s did not stop cleanly: %s", service.name or type(service).__name__, exc)

    async def step(self, only: list[Service] | None = None) -> Progress:
        """One round of every service (or of `only`), in order."""
        progress = Progress()
        for service in self.all if only is None else only:
            progress += await service.step()
        return progress
