"""Metering: every invocation's record, kept in the backend.

Records are buffered and written once a second as one stream record per flush (a JSON
array), so metering costs one write per second per node instead of one per invocation.
Each record is encoded as it is taken, with orjson (a tenth of the json module's cost, and
this runs on every invocation): encoding a second's worth at flush time would hold the
GIL for milliseconds and stall every request in flight.
A node that is SIGKILLed loses at most the last second of metering, never an event.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections import Counter
from typing import Any, Iterator

import orjson

from squall.backends import Backend
from squall.runtime.invocation import Invocation

INVOCATIONS_STREAM = "squall.invocations"
log = logging.getLogger("squall.metering")


class Meter:
    def __init__(self, backend: Backend, node_id: str, interval: float = 1.0):
        self.backend = backend
        self.node_id = node_id
        self.interval = interval
        self.counts: Counter[str] = Counter()
        self._buffer: list[bytes] = []
        self._task: asyncio.Task | None = None

    def record(self, invocation: Invocation) -> None:
        self._buffer.append(orjson.dumps(invocation.record()))
        self.counts["invocations"] += 1
        self.counts["cold_starts"] += invocation.cold
        self.counts[invocation.outcome] += 1

    def start(self) -> None:
        self._task = asyncio.create_task(self._flush_forever())

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
        await asyncio.to_thread(self.flush)

    def flush(self) -> None:
        batch, self._buffer = self._buffer, []
        if batch:
            self.backend.stream_append(INVOCATIONS_STREAM, self.node_id, (b"[%s]" % b",".join(batch)).decode())

    async def _flush_forever(self) -> None:
        while True:
            await asyncio.sleep(self.interval)
            try:
                await asyncio.to_thread(self.flush)
            except Exception as exc:  # noqa: BLE001 - metering must never stop the node
                log.warning("metering flush failed: %s", exc)


def read_records(backend: Backend, limit: int = 1000) -> Iterator[dict[str, Any]]:
    """Metering records of every node, oldest first (up to `limit` flushes per shard)."""
    for shard in range(backend.stream_shards(INVOCATIONS_STREAM)):
        for record in backend.stream_read(INVOCATIONS_STREAM, shard, 0, limit):
            yield from json.loads(record.data)
