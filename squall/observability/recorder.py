"""Per-invocation metrics, counted the cheap way.

`Recorder.record` runs on every invocation, so it is a few dict and list operations and
nothing else: counters keyed by label tuples, and histogram buckets found by bisection.
prometheus-client's own metric objects take a lock and a label lookup per call (a few
microseconds each, several per invocation); here that work happens once per scrape, in
`squall.observability.prometheus`, which reads `snapshot()`.

Throttled invocations are counted (outcome "throttled") but, as on Lambda, neither
timed nor billed: they never ran.
"""

from __future__ import annotations

from bisect import bisect_left
from dataclasses import dataclass, field

from squall.errors import Outcome
from squall.runtime.invocation import Invocation

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


class Recorder:
    """Counts invocations; fed by the `Metering` interceptor, read at scrape time."""

    def __init__(self) -> None:
        self._invocations: dict[InvocationKey, int] = {}
        self._functions: dict[str, FunctionTotals] = {}
        self._recursion_dropped: dict[str, int] = {}

    def record(self, invocation: Invocation) -> None:
        outcome = invocation.outcome
        key = (invocation.function, invocation.trigger, outcome._value_)
        self._invocations[key] = self._invocations.get(key, 0) + 1
        if outcome is Outcome.THROTTLED:
            return
        totals = self._functions.get(invocation.function)
        if totals is None:
            totals = self._functions[invocation.function] = FunctionTotals()
        totals.duration.observe(invocation.duration_ms / 1000)
        totals.billed_gb_seconds += invocation.gb_seconds
        if invocation.cold:
            totals.cold_starts += 1
            if invocation.init_ms is not None:
                totals.init.observe(invocation.init_ms / 1000)

    def recursion_dropped(self, function: str) -> None:
        """An invocation of `function` stopped as a recursive loop (it never ran)."""
        self._recursion_dropped[function] = self._recursion_dropped.get(function, 0) + 1

    def snapshot(self) -> Snapshot:
        """A copy, safe to read from the scrape's thread while invocations go on: each copy
        of a dict or list is one C call, which the GIL keeps whole."""
        return Snapshot(self._invocations.copy(),
                        {name: totals.copy() for name, totals in list(self._functions.items())},
                        self._recursion_dropped.copy())
