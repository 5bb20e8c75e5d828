"""Metering: every invocation's record, kept in the backend.

`Metering` is the first interceptor of every node's pipeline, so no invocation escapes it
whatever its trigger. Records are buffered by the `Meter` service and written once a
second as one stream record per flush (a JSON array), so metering costs one write per
second per node instead of one per invocation, encoded in the flush's thread a few
hundred at a time (squall.observability.batching). A node that is SIGKILLed loses at most the last second of
metering, never an event. The stream is trimmed to the node's metering retention
(`squall.core.retention`), 24 hours by default.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Iterator
from typing import Any

from squall.backends import Backend
from squall.backends.protocol import Streams
from squall.core.pipeline import Handler, Interceptor, InvokeRequest
from squall.observability.batching import Batch, StreamBatch
from squall.observability.recorder import Recorder
from squall.runtime.invocation import Invocation

INVOCATIONS_STREAM = "squall.invocations"
#: what ends with an invocation's metering record (`Tracing.close`)
Closer = Callable[[InvokeRequest, Invocation], None]
log = logging.getLogger("squall.metering")


class Meter(StreamBatch):
    """Buffers invocation records and flushes them every `interval` seconds (and on stop),
    counting each flush in the Prometheus counters (`recorder`) when observability is on."""

    name = "metering"

    def __init__(self, backend: Streams, node_id: str, interval: float = 1.0, recorder: Recorder | None = None):
        super().__init__(backend, node_id, INVOCATIONS_STREAM, interval)
        self.recorder = recorder
        #: invocations metered since the node started (`squall nodes`)
        self.invocations = 0

    def record(self, invocation: Invocation) -> None:
        self._buffer.append(invocation.record())
        self.invocations += 1

    def write(self, batch: Batch) -> None:
        # counted before the write: a flush the backend refuses is lost to the stream
        # (metering is at most once), not to the node's own counters
        if self.recorder is not None and batch.records:
            self.recorder.count(batch.records)
        super().write(batch)


class Metering(Interceptor):
    """Records every invocation. (Its REPORT line, whatever ended it, is in the function's
    log: the runtime writes the platform's lines, squall.runtime.platform.)"""

    def __init__(self, meter: Meter, closers: list[Closer] | None = None):
        """`closers`: what else ends with the invocation's record (tracing's span), called
        here rather than from a coroutine of their own around the rest of the chain."""
        self.meter = meter
        self.closers = closers or []

    async def __call__(self, request: InvokeRequest, call_next: Handler) -> Invocation:
        invocation = await call_next(request)
        self.meter.record(invocation)
        for close in self.closers:
            close(request, invocation)
        return invocation


def read_records(backend: Backend, consumer: str | None = None, limit: int = 1000) -> Iterator[dict[str, Any]]:
    """Metering records of every node, oldest first per node (up to `limit` flushes per shard).

    Without `consumer`, everything still retained. With one, only what that consumer has
    not read yet: its checkpoint on each shard moves past what is returned, so a reader
    that comes back (a billing export, a dashboard) never rescans the stream.
    """
    for shard in range(backend.stream_shards(INVOCATIONS_STREAM)):
        after = backend.checkpoint_get(INVOCATIONS_STREAM, consumer, shard) if consumer else 0
        records = backend.stream_read(INVOCATIONS_STREAM, shard, after, limit)
        for record in records:
            yield from json.loads(record.data)
        if consumer and records:
            backend.checkpoint_set(INVOCATIONS_STREAM, consumer, shard, records[-1].seq)
