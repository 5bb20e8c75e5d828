"""One service lifecycle: Services start in order and stop in reverse (a failing stop does not
keep the rest from settling), PeriodicService rounds, and Progress."""

from __future__ import annotations

import asyncio
import logging

import pytest

from squall.core.lifecycle import PeriodicService, Progress, Service, Services
from tests.unit.support import until


class Recording(Service):
    def __init__(self, name: str, log: list[str], fail_stop: bool = False, progress: Progress | None = None):
        self.name, self.log, self.fail_stop, self.progress = name, log, fail_stop, progress or Progress()

    async def start(self) -> None:
        self.log.append(f"start {self.name}")

    async def stop(self) -> None:
        self.log.append(f"stop {self.name}")
        if self.fail_stop:
            raise RuntimeError(f"{self.name} would not stop")

    async def step(self) -> Progress:
        self.log.append(f"step {self.name}")
        return Progress(self.progress.invocations, self.progress.succeeded, self.progress.failed)


def test_services_start_in_order_and_stop_in_reverse():
    log: list[str] = []
    services = Services([Recording("watcher", log), Recording("consumer", log)])
    services.add(Recording("metering", log))
    asyncio.run(services.start())
    asyncio.run(services.stop())
    assert log == ["start watcher", "start consumer", "start metering",
                   "stop metering", "stop consumer", "stop watcher"]


def test_a_service_that_fails_to_stop_does_not_keep_the_others_from_stopping(caplog):
    caplog.set_level(logging.WARNING, logger="squall.services")
    log: list[str] = []
    services = Services([Recording("first", log), Recording("broken", log, fail_stop=True), Recording("last", log)])
    asyncio.run(services.stop())
    assert log == ["stop last", "stop broken", "stop first"]
    [record] = [r for r in caplog.records if r.name == "squall.services"]
    assert record.levelno == logging.WARNING
    assert "broken did not stop cleanly: broken would not stop" in record.getMessage()


def test_a_nameless_service_is_logged_by_its_class_name(caplog):
    class Nameless(Recording):
        pass

    caplog.set_level(logging.WARNING, logger="squall.services")
    service = Nameless("", [], fail_stop=True)
    asyncio.run(Services([service]).stop())
    assert "Nameless did not stop cleanly" in caplog.records[-1].getMessage()


def test_services_step_adds_up_progress_in_order():
    log: list[str] = []
    a = Recording("a", log, progress=Progress(1, 2, 0))
    b = Recording("b", log, progress=Progress(2, 1, 3))
    services = Services([a, b])
    assert asyncio.run(services.step()) == Progress(3, 3, 3)
    assert asyncio.run(services.step(only=[b])) == Progress(2, 1, 3)
    assert asyncio.run(Services().step()) == Progress()
    assert log == ["step a", "step b", "step b"]


class Counter(PeriodicService):
    name = "counter"
    interval = 0.01

    def __init__(self, fail_on: frozenset[int] = frozenset()) -> None:
        super().__init__()
        self.steps = 0
        self.settled = 0
        self.fail_on = fail_on

    async def step(self) -> Progress:
        self.steps += 1
        if self.steps in self.fail_on:
            raise RuntimeError(f"round {self.steps} failed")
        return Progress(1, 1)

    async def settle(self) -> None:
        self.settled += 1


def test_periodic_service_steps_every_interval_and_settles_once_on_stop():
    service = Counter()

    async def main():
        await service.start()
        await until(lambda: service.steps >= 3, what="three rounds")
        assert service.settled == 0
        await service.stop()
        steps = service.steps
        await asyncio.sleep(0.05)
        assert service.steps == steps  # no round after stop()

    asyncio.run(main())
    assert service.settled == 1


def test_periodic_service_survives_a_round_that_raises(caplog):
    caplog.set_level(logging.WARNING, logger="squall.services")
    service = Counter(fail_on=frozenset({1, 2}))

    async def main():
        await service.start()
        await until(lambda: service.steps >= 4, what="rounds after the failures")
        await service.stop()

    asyncio.run(main())
    messages = [r.getMessage() for r in caplog.records if r.name == "squall.services"]
    assert messages == ["counter: round 1 failed", "counter: round 2 failed"]
    assert service.settled == 1


def test_periodic_service_settles_without_a_start():
    service = Counter()
    asyncio.run(service.stop())
    assert (service.steps, service.settled) == (0, 1)


def test_periodic_service_stops_without_waiting_out_its_interval():
    service = Counter()
    service.interval = 60

    async def main():
        await service.start()
        await until(lambda: service.steps == 1, what="the first round")
        loop = asyncio.get_running_loop()
        began = loop.time()
        await service.stop()
        return loop.time() - began

    assert asyncio.run(main()) < 1
    assert service.steps == 1


def test_periodic_service_default_settle_does_nothing():
    class Plain(PeriodicService):
        async def step(self) -> Progress:
            return Progress()

    asyncio.run(Plain().stop())


def test_a_service_must_implement_the_lifecycle():
    class Partial(Service):
        async def start(self) -> None: ...

    with pytest.raises(TypeError):
        Partial()  # type: ignore[abstract]


@pytest.mark.parametrize("progress, truthy", [
    (Progress(), False),
    (Progress(0, 0, 0), False),
    (Progress(1), True),
    (Progress(0, 1), True),
    (Progress(0, 0, 1), True),
])
def test_progress_truthiness(progress, truthy):
    assert bool(progress) is truthy


def test_progress_adds_in_place():
    total = Progress()
    same = total
    total += Progress(1, 10, 0)
    total += Progress(2, 3, 4)
    assert total is same
    assert total == Progress(invocations=3, succeeded=13, failed=4)
