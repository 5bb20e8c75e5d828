"""Records a node appends to a backend stream in batches, never one write per record.

A `StreamBatch` holds encoded JSON records and appends them, every `interval` seconds and
when the node stops, as one stream record (a JSON array) partitioned by node id: one write
per second per node whatever the rate (metering records, EMF datapoints). Records are
encoded by the caller as they are taken, so a flush only joins bytes and never holds the
GIL long. A node that is SIGKILLed loses at most the last interval.
"""

from __future__ import annotations

import asyncio

from squall.backends.protocol import Streams
from squall.core.lifecycle import PeriodicService, Progress


class StreamBatch(PeriodicService):
    def __init__(self, backend: Streams, node_id: str, stream: str, interval: float = 1.0):
        super().__init__()
        self.backend = backend
        self.node_id = node_id
        self.stream = stream
        self.interval = interval
        self._buffer: list[bytes] = []

    async def step(self) -> Progress:
        await asyncio.to_thread(self.flush)
        return Progress()

    async def settle(self) -> None:
        await asyncio.to_thread(self.flush)

    def flush(self) -> None:
        batch, self._buffer = self._buffer, []
        if batch:
            self.backend.stream_append(self.stream, self.node_id, (b"[%s]" % b",".join(batch)).decode())
