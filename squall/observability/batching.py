"""Records a node appends to a backend stream in batches, never one write per record.

A `StreamBatch` holds JSON-ready records (dicts and lists the caller no longer changes)
and appends them, every `interval` seconds and when the node stops, as one stream record
(a JSON array) partitioned by node id: one write per second per node whatever the rate
(metering records, spans, EMF datapoints). They are encoded at flush, in the flush's
worker thread, CHUNK at a time, so the event loop never waits long for the GIL. Not as
they are taken: a small bytes object kept per record cost 4 µs each (every one a fresh
allocation), against 0.2 µs encoded with a few hundred others. A node that is SIGKILLed
loses at most the last interval.
"""

from __future__ import annotations

import asyncio
from typing import Any

import orjson

from squall.backends.protocol import Streams
from squall.core.lifecycle import PeriodicService, Progress

#: records encoded per orjson call at flush (about 50 µs each with the GIL held)
CHUNK = 256


class StreamBatch(PeriodicService):
    def __init__(self, backend: Streams, node_id: str, stream: str, interval: float = 1.0, counted: bool = False):
        """`counted`: the array starts with the number of records after it (`count_of`
        reads it without decoding the rest)."""
        super().__init__()
        self.backend = backend
        self.node_id = node_id
        self.stream = stream
        self.interval = interval
        self.counted = counted
        self._buffer: list[Any] = []

    async def step(self) -> Progress:
        await asyncio.to_thread(self.flush)
        return Progress()

    async def settle(self) -> None:
        await asyncio.to_thread(self.flush)

    def flush(self) -> None:
        batch, self._buffer = self._buffer, []
        if batch:
            parts = [orjson.dumps(batch[start:start + CHUNK])[1:-1] for start in range(0, len(batch), CHUNK)]
            if self.counted:
                parts.insert(0, b"%d" % len(batch))
            self.backend.stream_append(self.stream, self.node_id, (b"[%s]" % b",".join(parts)).decode())


def records_of(data: str) -> list[Any]:
    """The records of a stream record a counted batch wrote (or an uncounted one: the
    streams written before the count was)."""
    values = orjson.loads(data)
    return values[1:] if values and isinstance(values[0], int) else values


def count_of(data: str) -> int:
    """How many records a stream record holds, read from a counted batch's first element."""
    head = data[1:data.find(",", 1, 24)] if data.startswith("[") else ""
    if head.isdigit():
        return int(head)
    return len(records_of(data))  # an empty batch, or one written before counts
