"""Event source filters: Lambda's FilterCriteria, shared by sources that read records.

An event source mapping may carry up to `MAX_FILTERS` EventBridge patterns; a record is
delivered when any of them matches it and otherwise deleted without an invocation (Lambda
"drops" it). Each source turns its records into the document the patterns see (for SQS,
the record as Lambda shapes it with `body` parsed when it is a JSON object). What was
dropped is counted twice: live, on the consumer (`QueueConsumer.filtered`, for metrics),
and durably, per source name, in the `squall.filtered` table, which `FilteredCounts`
updates once a second and the CLI reads (`filtered_counts`).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

from squall.backends.protocol import Tables
from squall.core.lifecycle import PeriodicService, Progress
from squall.errors import ConditionFailed, ConfigError, InvalidEventPattern
from squall.routing import Pattern, event_pattern

#: Lambda's default quota of filters per event source mapping
MAX_FILTERS = 5
FILTERED_TABLE = "squall.filtered"


def check_filters(owner: str, filters: Any) -> tuple[str, ...]:
    """The filters as canonical JSON texts (what the manifest carries), each checked as
    EventBridge checks a pattern; the error names the filter and the offending part."""
    if isinstance(filters, (str, bytes, Mapping)) or not isinstance(filters, Iterable):
        raise ConfigError(f"filters of {owner} must be a list of event patterns, not {filters!r}")
    patterns = list(filters)
    if len(patterns) > MAX_FILTERS:
        raise ConfigError(f"{owner} has {len(patterns)} filters; an event source mapping takes at most "
                          f"{MAX_FILTERS}")
    return tuple(compile_filter(owner, index, pattern).source for index, pattern in enumerate(patterns))


def compile_filter(owner: str, index: int, pattern: Any) -> Pattern:
    try:
        return event_pattern(pattern)
    except InvalidEventPattern as exc:
        raise InvalidEventPattern(f"filter {index} of {owner}: {exc}") from None


class RecordFilter:
    """Whether a record is delivered: any of the patterns matches its document."""

    def __init__(self, owner: str, filters: Sequence[str], document: Callable[[Any], Any]):
        self.patterns = [compile_filter(owner, index, text) for index, text in enumerate(filters)]
        self.document = document

    def __call__(self, record: Any) -> bool:
        document = self.document(record)
        return any(pattern.matches(document) for pattern in self.patterns)


class FilteredCounts(PeriodicService):
    """Adds what each consumer dropped since the last round to its durable count."""

    name = "filtered-counts"

    def __init__(self, backend: Tables, counters: Mapping[str, Callable[[], int]]):
        """`counters`: per source name, a function returning its live count."""
        super().__init__()
        self.backend = backend
        self.counters = counters
        self._stored = dict.fromkeys(counters, 0)

    async def step(self) -> Progress:
        await self.settle()
        return Progress()

    async def settle(self) -> None:
        """Flush (also the last time, once the consumers stopped)."""
        await asyncio.to_thread(self.flush)

    def flush(self) -> None:
        for name, counter in self.counters.items():
            live = counter()
            if live > self._stored[name]:
                self._add(name, live - self._stored[name])
                self._stored[name] = live

    def _add(self, name: str, count: int) -> None:
        """Add under optimistic concurrency: nodes sharing the backend add to one count."""
        while True:
            item = self.backend.table_get(FILTERED_TABLE, name)
            try:
                if item is None:
                    self.backend.table_put(FILTERED_TABLE, name, count, if_absent=True)
                else:
                    self.backend.table_put(FILTERED_TABLE, name, item.value + count, if_version=item.version)
                return
            except ConditionFailed:
                continue  # another node added first: read again


def filtered_counts(backend: Tables) -> dict[str, int]:
    """Records dropped by filters so far, by source name (a queue)."""
    counts: dict[str, int] = {}
    start: str | None = None
    while True:
        items = backend.table_scan(FILTERED_TABLE, start_after=start)
        counts.update((item.key, item.value) for item in items)
        if len(items) < 1000:
            return counts
        start = items[-1].key
