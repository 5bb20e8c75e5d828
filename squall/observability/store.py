"""Where spans are kept: the `squall.spans` stream, bounded in time and in count.

Each node appends one stream record per second holding that second's spans (a JSON array:
their count, then their `SpanRecord.encode()` arrays), partitioned by node. The count lets
`SpanCap` count a record without decoding it; what a span's `faas.name` implies is not
stored (`spans.function_attributes`) but added back as it is read. Retention trims the stream by time
(`trace_retention`, one hour by default) and `SpanCap` by count (`trace_max_spans`,
100,000): the retention leader counts the spans of each record once, as they arrive, and
trims the oldest records while the stream holds more.
"""

from __future__ import annotations

import heapq
from collections import deque
from collections.abc import Iterator

from squall.backends.protocol import Streams
from squall.observability.batching import count_of, records_of
from squall.observability.spans import SpanRecord, function_attributes

SPANS_STREAM = "squall.spans"
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
                for raw in records_of(record.data):
                    span = SpanRecord.decode(raw)
                    if span is not None and span.start_ns >= since_ns:
                        span.attributes = {**function_attributes(span.attributes), **span.attributes}
                        yield span
            if len(records) < PAGE:
                break
            after = records[-1].seq


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
