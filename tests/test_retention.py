"""Nothing grows without bound: every stream is trimmed to its retention, by one node."""

from __future__ import annotations

import asyncio

from squall import App
from squall.core.retention import DAY, Retention
from squall.observability.metering import INVOCATIONS_STREAM, read_records
from squall.testing import Harness

HOUR = 3600.0


def stream_length(backend, stream: str) -> int:
    return sum(len(backend.stream_read(stream, shard, 0, 100_000)) for shard in range(backend.stream_shards(stream)))


def test_a_long_run_keeps_a_day_of_metering(tmp_path):
    """Two simulated days of traffic, an invocation burst every hour: the metering
    stream never holds more than a day (plus the hour being written)."""
    app = App("busy")

    @app.function()
    def work(event, ctx):
        return event

    with Harness(app) as h:
        lengths = []
        for hour in range(48):
            for _ in range(5):
                h.invoke("work", hour)
            h.step()  # metering flushes one record for the burst; retention trims
            lengths.append(stream_length(h.backend, INVOCATIONS_STREAM))
            h.advance(HOUR)
        assert max(lengths) <= 25  # 24 h of hourly flushes, and the one just written
        assert lengths[-1] == 25
        kept = [record["start"] for record in read_records(h.backend)]
        assert len(kept) == 25 * 5


def test_every_stream_is_trimmed_to_its_policy_by_the_leader_only(backend, clock):
    for hour in range(30):
        backend.stream_append(INVOCATIONS_STREAM, "node-a", f"m{hour}")
        backend.stream_append("table-changes.orders", f"k{hour}", f"c{hour}")
        clock.advance(HOUR)
    leader = Retention(backend, "node-a", {INVOCATIONS_STREAM: 6 * HOUR})
    follower = Retention(backend, "node-b", {INVOCATIONS_STREAM: 6 * HOUR})

    async def rounds():
        return (await leader.step()).succeeded, (await follower.step()).succeeded

    trimmed_by_leader, trimmed_by_follower = asyncio.run(rounds())
    assert trimmed_by_follower == 0  # node-b does not hold the lease
    assert stream_length(backend, INVOCATIONS_STREAM) == 6  # its own policy
    assert stream_length(backend, "table-changes.orders") == 24  # the default: a day
    assert trimmed_by_leader == (30 - 6) + (30 - 24)
    asyncio.run(leader.stop())  # resigns: the follower takes over at once
    assert asyncio.run(follower.step()).succeeded == 0 and follower.lease.is_leader
    assert DAY == 24 * HOUR


def test_a_reader_with_a_checkpoint_reads_each_record_once(backend):
    backend.stream_append(INVOCATIONS_STREAM, "node-a", '[{"n": 1}]')
    backend.stream_append(INVOCATIONS_STREAM, "node-b", '[{"n": 2}, {"n": 3}]')
    assert sorted(r["n"] for r in read_records(backend, consumer="billing")) == [1, 2, 3]
    assert list(read_records(backend, consumer="billing")) == []
    backend.stream_append(INVOCATIONS_STREAM, "node-a", '[{"n": 4}]')
    assert [r["n"] for r in read_records(backend, consumer="billing")] == [4]
    assert len(list(read_records(backend))) == 4  # without a consumer: everything retained
