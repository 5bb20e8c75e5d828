"""The metering records of a recent window, read page by page from every shard.

Each stream record is one node's flush of a second's invocations, appended after every
invocation in it started, so a record appended before `since` holds nothing started
since then: it is skipped without being decoded. A reader that is asked again for a
later window (the alarm evaluator, once per period) starts after what it skipped last
time instead of rescanning the 24 hours the stream keeps.
"""

from __future__ import annotations

import orjson

from squall.backends.protocol import Streams
from squall.observability.metering import INVOCATIONS_STREAM
from squall.observability.statistics import Call

PAGE = 500


class MeteringWindow:
    def __init__(self, backend: Streams):
        self.backend = backend
        #: per shard: (time, seq) such that every record up to seq was appended before time
        self._skipped: dict[int, tuple[float, int]] = {}

    def calls(self, since: float) -> list[Call]:
        """Every call recorded by any node that started at or after `since`."""
        found: list[Call] = []
        for shard in range(self.backend.stream_shards(INVOCATIONS_STREAM)):
            known, after = self._skipped.get(shard, (0.0, 0))
            if since < known:
                after = 0  # an earlier window than last time: from the start
            skipped = after
            while True:
                page = self.backend.stream_read(INVOCATIONS_STREAM, shard, after, PAGE)
                for record in page:
                    if record.timestamp < since:
                        if skipped == after:
                            skipped = record.seq
                    else:
                        found.extend(Call.of(r) for r in orjson.loads(record.data) if r["start"] >= since)
                    after = record.seq
                if len(page) < PAGE:
                    break
            self._skipped[shard] = (since, skipped)
        return found
