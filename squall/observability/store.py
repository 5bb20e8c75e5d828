"""Where spans are kept: the `squall.spans` stream, bounded in time and in count.

Each node appends one stream record per second holding that second's spans, partitioned by
node: a JSON array of their count, a header, then the spans. The count lets `SpanCap`
count a record without decoding it. An invocation's span is stored compact (`compact_span`):
its ids, times and outcome, and the index of its shape in the header's `shapes`, the name,
kind and attributes it shares with like invocations (one route's requests from one client).
The spans instances hand back are stored whole (`SpanRecord.encode()` arrays). What a
span's `faas.name` implies is not stored (`spans.function_attributes`) but added back as it
is read. Retention trims the stream by time
(`trace_retention`, one hour by default) and `SpanCap` by count (`trace_max_spans`,
100,000): the retention leader counts the spans of each record once, as they arrive, and
trims the oldest records while the stream holds more.
"""

from __future__ import annotations

import heapq
from collections import deque
from collections.abc import Iterator
from typing import Any

from squall.backends.protocol import Streams
from squall.observability.batching import Batch, count_of, read_batch
from squall.observability.spans import SpanRecord, function_attributes

SPANS_STREAM = "squall.spans"
#: the header's list of shapes: [name, kind, attributes] each
SHAPES = "shapes"
#: stream records read per call
PAGE = 500


def read_spans(backend: Streams, since: float = 0.0) -> Iterator[SpanRecord]:
    """Every retained span that started at or after `since` (epoch seconds), by shard."""
    since_ns = int(since * 1e9)
    for shard in range(backend.stream_shards(SPANS_STREAM)):
        after = 0
        while True:
            records = backend.stream_read(SPANS_STREAM, shard, after, PAGE)
            for record in records:
                for span in spans_of(read_batch(record.data)):
                    if span.start_ns >= since_ns:
                        span.attributes = {**function_attributes(span.attributes), **span.attributes}
                        yield span
            if len(records) < PAGE:
                break
            after = records[-1].seq


def spans_of(batch: Batch) -> Iterator[SpanRecord]:
    """The spans of one stored batch; what is malformed (a record damaged, an instance's
    span) is skipped."""
    shapes = (batch.header or {}).get(SHAPES)
    for raw in batch.records:
        span = SpanRecord.decode(compact_span(raw, shapes) if len(raw) == COMPACT_FIELDS else raw)
        if span is not None:
            yield span


#: an invocation's span as `Tracing` buffers it: [trace_id, span_id, parent_id, shape,
#: start_ns, end_ns, invocation_id, coldstart, status, status_message, error_type, links]
COMPACT_FIELDS = 12


def compact_span(raw: list[Any], shapes: Any) -> list[Any] | None:
    """An invocation's span, from its compact form and the batch's shapes, in
    `SpanRecord.encode`'s form (None if it does not fit them)."""
    trace_id, span_id, parent_id, shape, start, end, invocation_id, cold, status, message, error_type, links = raw
    if not (isinstance(shapes, list) and type(shape) is int and 0 <= shape < len(shapes)):
        return None
    try:
        name, kind, shared = shapes[shape]
        attributes = {**shared, "faas.invocation_id": invocation_id, "faas.coldstart": cold}
        links = [list(link) for link in links]  # tuples, before they were stored
    except (TypeError, ValueError):
        return None
    if error_type:
        attributes["error.type"] = error_type
    return [trace_id, span_id, parent_id, name, kind, start, end, attributes, status, message, links]


class SpanCap:
    """Keeps `squall.spans` to at most `max_spans` spans (whole records: a record is one
    node's second). Used by the retention leader (`Retention`'s caps): `cut()` says before
    which time to trim. It reads each record once, when it is new, and remembers its time
    and span count; a node that becomes leader reads the retained stream once."""

    stream = SPANS_STREAM

    def __init__(self, max_spans: int):
        self.max_spans = max_spans
        self._seen: dict[int, int] = {}  # shard -> last seq counted
        self._counts: deque[tuple[float, int]] = deque()  # (record time, spans), oldest first
        self._total = 0

    def cut(self, backend: Streams, oldest: float) -> float | None:
        """The time before which records must go (None: within the cap). `oldest` is the
        time-retention cut: what is older is gone anyway and no longer counted."""
        fresh: list[tuple[float, int]] = []
        for shard in range(backend.stream_shards(self.stream)):
            while True:
                records = backend.stream_read(self.stream, shard, self._seen.get(shard, 0), PAGE)
                fresh.extend((r.timestamp, count_of(r.data)) for r in records)
                if records:
                    self._seen[shard] = records[-1].seq
                if len(records) < PAGE:
                    break
        if fresh:
            merged = list(heapq.merge(self._counts, sorted(fresh)))
            self._counts = deque(merged)
            self._total += sum(count for _, count in fresh)
        while self._counts and self._counts[0][0] < oldest:
            self._total -= self._counts.popleft()[1]
        cut = None
        while self._total > self.max_spans and self._counts:
            timestamp, count = self._counts.popleft()
            self._total -= count
            cut = timestamp
        if cut is None:
            return None
        # records of the same second as the last one dropped go with it
        while self._counts and self._counts[0][0] <= cut:
            self._total -= self._counts.popleft()[1]
        return cut + 1e-6
