"""Per-invocation metrics, counted the cheap way.

The recorder counts the metering records (`Invocation.record()`) as the meter flushes
them, once a second in the flush's worker thread: a tight loop over a second of
invocations costs a fraction of what the same counting costs done on the event loop
between every invocation's other work. A scrape first flushes the meter, so it counts
every invocation that ended before it. The counters are plain: keyed by label tuples,
with histogram buckets found by bisection; prometheus-client's own metric objects take a
lock and a label lookup per call, and here that work happens once per scrape, in
`squall.observability.prometheus`, which reads `snapshot()`.

Throttled invocations are counted (outcome "throttled") but, as on Lambda, neither
timed nor billed: they never ran.
"""

from __future__ import annotations

import threading
from bisect import bisect_left
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from squall.errors import Outcome

#: seconds; Lambda's timeouts go up to 900 s
DURATION_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0,
                    300.0, 900.0)
#: seconds an instance took to initialise (import the handler's module)
INIT_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)

#: (function, trigger, outcome)
InvocationKey = tuple[str, str, str]


class Histogram:
    """One histogram series: per-bucket counts (not cumulative; the last is +Inf) and the sum."""

    __slots__ = ("bounds", "counts", "sum")

    def __init__(self, bounds: tuple[float, ...]):
        self.bounds = bounds
        self.counts = [0] * (len(bounds) + 1)
        self.sum = 0.0

    def observe(self, value: float) -> None:
        # bisect_left: the first bound >= value, as Prometheus' `le` (less or equal) wants
        self.counts[bisect_left(self.bounds, value)] += 1
        self.sum += value

    def copy(self) -> Histogram:
        clone = Histogram(self.bounds)
        clone.counts, clone.sum = self.counts.copy(), self.sum
        return clone

    def buckets(self) -> list[tuple[str, float]]:
        """Cumulative buckets as prometheus-client's HistogramMetricFamily takes them."""
        out, total = [], 0
        for bound, count in zip((*self.bounds, float("inf")), self.counts, strict=True):
            total += count
            out.append(("+Inf" if bound == float("inf") else repr(bound), float(total)))
        return out


class FunctionTotals:
    """What one function's invocations that ran add up to."""

    __slots__ = ("billed_gb_seconds", "cold_starts", "duration", "init")

    def __init__(self) -> None:
        self.duration = Histogram(DURATION_BUCKETS)
        self.init = Histogram(INIT_BUCKETS)
        self.cold_starts = 0
        self.billed_gb_seconds = 0.0

    def copy(self) -> FunctionTotals:
        clone = FunctionTotals()
        clone.duration, clone.init = self.duration.copy(), self.init.copy()
        clone.cold_starts, clone.billed_gb_seconds = self.cold_starts, self.billed_gb_seconds
        return clone


@dataclass(frozen=True)
class Snapshot:
    invocations: dict[InvocationKey, int]
    functions: dict[str, FunctionTotals]
    #: invocations recursive loop detection stopped, by function (squall.core.recursion)
    recursion_dropped: dict[str, int] = field(default_factory=dict)


_THROTTLED = Outcome.THROTTLED._value_


class Recorder:
    """Counts invocations; fed by the meter's flushes (`Meter.write`), read at scrape time."""

    def __init__(self) -> None:
        self._invocations: dict[InvocationKey, int] = {}
        self._functions: dict[str, FunctionTotals] = {}
        self._recursion_dropped: dict[str, int] = {}
        #: a flush of the loop's period and one a scrape asked for may count at once
        self._lock = threading.Lock()

    def count(self, records: Iterable[Mapping[str, Any]]) -> None:
        """Add metering records (`Invocation.record()`: durations in milliseconds)."""
        invocations, functions = self._invocations, self._functions
        with self._lock:
            for record in records:
                function, outcome = record["function"], record["outcome"]
                key = (function, record["trigger"], outcome)
                invocations[key] = invocations.get(key, 0) + 1
                if outcome == _THROTTLED:
                    continue
                totals = functions.get(function)
                if totals is None:
                    totals = functions[function] = FunctionTotals()
                totals.duration.observe(record["durationMs"] / 1000)
                totals.billed_gb_seconds += record["gbSeconds"]
                if record["cold"]:
                    totals.cold_starts += 1
                    if record["initMs"] is not None:
                        totals.init.observe(record["initMs"] / 1000)

    def recursion_dropped(self, function: str) -> None:
        """An invocation of `function` stopped as a recursive loop (it never ran): counted
        on the event loop, where the stop is made (a copy of a dict is one C call, which
        the GIL keeps whole, so `snapshot` needs no lock for it)."""
        self._recursion_dropped[function] = self._recursion_dropped.get(function, 0) + 1

    def snapshot(self) -> Snapshot:
        """A copy, safe to read from the scrape's thread while flushes go on."""
        with self._lock:
            return Snapshot(self._invocations.copy(),
                            {name: totals.copy() for name, totals in self._functions.items()},
                            self._recursion_dropped.copy())
