"""ClusterSlots: cluster-wide reserved concurrency, a released slot kept for the next invocation.

On both backends (the `backend` fixture): two ClusterSlots on one store stand for two nodes.
"""

from __future__ import annotations

import asyncio

import pytest

from squall.app import FunctionConfig
from squall.backends import open_backend
from squall.errors import Throttled
from squall.runtime.slots import ClusterSlots
from tests.unit.support import CountingBackend

FN = FunctionConfig("capped", "app.handler", timeout=3.0, reserved_concurrency=1)
KEY = "fn.capped"
LINGER = 0.05


def slots(backend, holder: str = "node-a") -> tuple[ClusterSlots, CountingBackend]:
    counting = CountingBackend(backend)
    return ClusterSlots(counting, holder, backend.clock, linger=LINGER), counting  # type: ignore[arg-type]


def test_back_to_back_invocations_take_one_slot_between_them(backend):
    node, calls = slots(backend)

    async def main():
        tokens = set()
        for _ in range(5):
            slot = await node.acquire(FN, 1, wait=0)
            tokens.add(slot.token)
            assert backend.slot_count(KEY) == 1
            await node.release(FN, slot)
        assert node.kept("capped") == 1 and backend.slot_count(KEY) == 1  # kept, and still counted
        await asyncio.sleep(LINGER * 4)
        assert node.kept("capped") == 0 and backend.slot_count(KEY) == 0  # idle: given back
        return tokens

    assert len(asyncio.run(main())) == 1
    assert calls.calls == ["slot_acquire", "slot_release"]


def test_a_kept_slot_counts_against_the_limit_of_every_node(backend):
    a, _ = slots(backend, "node-a")
    other = open_backend(backend.url, clock=backend.clock)
    b, _ = slots(other, "node-b")

    async def main():
        await a.release(FN, await a.acquire(FN, 1, wait=0))
        with pytest.raises(Throttled):
            await b.acquire(FN, 1, wait=0)  # node a keeps the only slot
        got = await b.acquire(FN, 1, wait=2)  # until a gives it back, idle
        assert a.kept("capped") == 0 and backend.slot_count(KEY) == 1
        await b.release(FN, got)
        await b.close()

    try:
        asyncio.run(main())
    finally:
        other.close()
    assert backend.slot_count(KEY) == 0


def test_a_slot_too_old_to_outlast_an_invocation_is_given_back_not_kept(backend, clock):
    node, calls = slots(backend)

    async def main():
        first = await node.acquire(FN, 1, wait=0)
        clock.advance(30 + 3 - 3 - 10 + 0.5)  # under timeout + 10 s of its TTL left
        await node.release(FN, first)
        assert node.kept("capped") == 0 and backend.slot_count(KEY) == 0
        second = await node.acquire(FN, 1, wait=0)
        assert second.token != first.token
        await node.release(FN, second)
        clock.advance(21)  # kept, but too old by its next acquire: given back, and a new one taken
        third = await node.acquire(FN, 1, wait=0)
        assert third.token != second.token and backend.slot_count(KEY) == 1
        await node.close()

    asyncio.run(main())
    assert calls.calls.count("slot_acquire") == 3


def test_close_gives_every_kept_slot_back_and_later_releases_too(backend):
    node, _ = slots(backend)
    two = FunctionConfig("capped", "app.handler", timeout=3.0, reserved_concurrency=2)

    async def main():
        held = [await node.acquire(two, 2, wait=0) for _ in range(2)]
        await node.release(two, held[0])
        assert backend.slot_count(KEY) == 2
        await node.close()
        assert backend.slot_count(KEY) == 1  # the running one is still held
        await node.release(two, held[1])
        assert backend.slot_count(KEY) == 0

    asyncio.run(main())


def test_a_crashed_node_leaks_its_kept_slots_only_until_their_ttl(backend, clock):
    node, _ = slots(backend)
    survivor, _ = slots(backend, "node-b")

    async def main():
        await node.release(FN, await node.acquire(FN, 1, wait=0))
        # the node dies here: no sweep, no close (its loop is gone)

    asyncio.run(main())
    assert backend.slot_count(KEY) == 1
    clock.advance(FN.timeout + 30)

    async def later():
        slot = await survivor.acquire(FN, 1, wait=0)
        await survivor.release(FN, slot)
        await survivor.close()

    asyncio.run(later())
