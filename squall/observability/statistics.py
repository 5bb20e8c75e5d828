"""CloudWatch's Lambda metrics, computed from metering records: one implementation for
`squall metrics` and for alarms.

Pure functions over `Call`s (one metering record each), with Lambda's definitions:

- `Invocations` counts the invocations of function code, successful or failed; a
  throttled request is not an invocation (nor an error);
- `Errors` counts invocations that ended in a function error: the handler raised, or the
  runtime failed it (timeout, out of memory, crash);
- `Throttles` counts requests refused for want of concurrency;
- `Duration` is each invocation's duration in milliseconds;
- `ConcurrentExecutions` is the most invocations running at one moment of the period
  (from each one's start and duration).

Each metric is a set of samples per period (one per invocation: 1 or 0 for the counts,
so `Average` of `Errors` is the error rate), reduced by a CloudWatch statistic: `Sum`,
`Average`, `Minimum`, `Maximum`, `SampleCount`, or a percentile `pNN` (nearest rank).
A period with no record of the function has no datapoint: it is *missing*, as on
CloudWatch, where Lambda publishes nothing for a function nobody called.
"""

from __future__ import annotations

import math
import re
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import TYPE_CHECKING, Any

from squall.errors import ConfigError, Outcome

if TYPE_CHECKING:
    from squall.observability.emf import Datapoint


class FunctionMetric(StrEnum):
    """The `AWS/Lambda` metrics an alarm may watch (dimension `FunctionName`)."""

    INVOCATIONS = "Invocations"
    ERRORS = "Errors"
    THROTTLES = "Throttles"
    DURATION = "Duration"
    CONCURRENT_EXECUTIONS = "ConcurrentExecutions"


class QueueMetric(StrEnum):
    """The `AWS/SQS` metrics an alarm may watch (dimension `QueueName`; a DLQ's depth is
    `ApproximateNumberOfMessagesVisible` of the DLQ)."""

    VISIBLE = "ApproximateNumberOfMessagesVisible"
    NOT_VISIBLE = "ApproximateNumberOfMessagesNotVisible"
    DELAYED = "ApproximateNumberOfMessagesDelayed"
    AGE_OF_OLDEST = "ApproximateAgeOfOldestMessage"


class Statistic(StrEnum):
    SUM = "Sum"
    AVERAGE = "Average"
    MINIMUM = "Minimum"
    MAXIMUM = "Maximum"
    SAMPLE_COUNT = "SampleCount"


#: a percentile as CloudWatch names it: p0 to p100, up to two decimals (p99.9)
PERCENTILE = re.compile(r"p(100|\d{1,2}(\.\d{1,2})?)")

_STATISTICS = frozenset(s.value for s in Statistic)

#: outcomes that count in `Errors`
ERROR_OUTCOMES = frozenset({Outcome.ERROR, Outcome.TIMEOUT, Outcome.OOM, Outcome.CRASH})


def check_statistic(value: Any, what: str = "statistic") -> str:
    """`value` if it is a statistic CloudWatch knows (ConfigError otherwise)."""
    if isinstance(value, str) and (value in _STATISTICS or PERCENTILE.fullmatch(value)):
        return str(value)
    raise ConfigError(f"invalid {what} {value!r}: expected one of {', '.join(Statistic)} or a percentile "
                      f"p0 to p100 (such as p99)")


def reduce(samples: Sequence[float], statistic: str) -> float:
    """One statistic of a non-empty list of samples. Percentiles are by nearest rank: the
    smallest sample with at least p% of the samples at or below it."""
    if statistic == Statistic.SUM:
        return float(sum(samples))
    if statistic == Statistic.AVERAGE:
        return sum(samples) / len(samples)
    if statistic == Statistic.MINIMUM:
        return float(min(samples))
    if statistic == Statistic.MAXIMUM:
        return float(max(samples))
    if statistic == Statistic.SAMPLE_COUNT:
        return float(len(samples))
    ordered = sorted(samples)
    rank = math.ceil(float(statistic[1:]) / 100 * len(ordered))
    return float(ordered[max(rank, 1) - 1])


@dataclass(frozen=True, slots=True)
class Call:
    """One metering record, as the statistics read it."""

    function: str
    start: float
    duration_ms: float
    outcome: Outcome
    cold: bool
    gb_seconds: float

    @classmethod
    def of(cls, record: dict[str, Any]) -> Call:
        return cls(record["function"], record["start"], record["durationMs"], Outcome(record["outcome"]),
                   bool(record["cold"]), record["gbSeconds"])

    @property
    def invoked(self) -> bool:
        """An invocation of the function's code (a throttled request is not)."""
        return self.outcome is not Outcome.THROTTLED

    @property
    def end(self) -> float:
        return self.start + self.duration_ms / 1000


def period_start(t: float, period: int) -> float:
    """The start of the period holding `t`: periods are aligned to the clock, as CloudWatch's."""
    return math.floor(t / period) * period


def by_period(calls: Iterable[Call], period: int, since: float, until: float,
              function: str | None = None) -> dict[float, list[Call]]:
    """Calls started in [since, until), of `function` (or of every function), by period start."""
    periods: dict[float, list[Call]] = defaultdict(list)
    for call in calls:
        if since <= call.start < until and (function is None or call.function == function):
            periods[period_start(call.start, period)].append(call)
    return dict(periods)


def concurrency(calls: Sequence[Call], starts: Iterable[float], period: int) -> dict[float, int]:
    """For each period start, the most calls running at one moment of [start, start + period)."""
    events = sorted([(c.start, 1) for c in calls] + [(c.end, -1) for c in calls])  # an end before a start
    result: dict[float, int] = {}
    running, i = 0, 0
    for start in sorted(starts):
        while i < len(events) and events[i][0] < start:
            running += events[i][1]
            i += 1
        most = running
        while i < len(events) and events[i][0] < start + period:
            running += events[i][1]
            most = max(most, running)
            i += 1
        result[start] = most
    return result


def samples(metric: FunctionMetric, calls: Sequence[Call]) -> list[float]:
    """A period's samples of a metric that has one per call (all but ConcurrentExecutions)."""
    if metric is FunctionMetric.INVOCATIONS:
        return [1.0 for c in calls if c.invoked]
    if metric is FunctionMetric.ERRORS:
        return [1.0 if c.outcome in ERROR_OUTCOMES else 0.0 for c in calls if c.invoked]
    if metric is FunctionMetric.THROTTLES:
        return [0.0 if c.invoked else 1.0 for c in calls]
    if metric is FunctionMetric.DURATION:
        return [c.duration_ms for c in calls if c.invoked]
    raise ValueError(f"{metric} has one sample per period, not per call")


def datapoints(calls: Sequence[Call], metric: FunctionMetric, statistic: str, period: int, since: float,
               until: float, function: str | None = None) -> dict[float, float]:
    """The datapoint of each period in [since, until) that has one, by period start."""
    periods = by_period(calls, period, since, until, function)
    if metric is FunctionMetric.CONCURRENT_EXECUTIONS:
        mine = [c for c in calls if c.invoked and (function is None or c.function == function)]
        return {start: float(n) for start, n in concurrency(mine, periods, period).items()}
    found = {start: samples(metric, members) for start, members in periods.items()}
    return {start: reduce(values, statistic) for start, values in found.items() if values}


@dataclass(frozen=True)
class PeriodSummary:
    """What CloudWatch's Lambda console shows for one period."""

    start: float
    invocations: int
    errors: int
    throttles: int
    #: milliseconds, None when nothing was invoked
    duration_avg: float | None
    duration_p50: float | None
    duration_p90: float | None
    duration_p99: float | None
    duration_max: float | None
    concurrent_executions: int
    cold_starts: int
    #: cold starts per invocation, 0 to 1
    cold_start_rate: float | None
    gb_seconds: float

    def to_json(self) -> dict[str, Any]:
        return {"start": self.start, "Invocations": self.invocations, "Errors": self.errors,
                "Throttles": self.throttles,
                "Duration": {"Average": self.duration_avg, "p50": self.duration_p50, "p90": self.duration_p90,
                             "p99": self.duration_p99, "Maximum": self.duration_max},
                "ConcurrentExecutions": self.concurrent_executions, "ColdStarts": self.cold_starts,
                "ColdStartRate": self.cold_start_rate, "GBSeconds": self.gb_seconds}


def summarize(calls: Sequence[Call], period: int, since: float, until: float,
              function: str | None = None) -> list[PeriodSummary]:
    """Every period in [since, until) with a record of `function` (or of any), oldest first."""
    periods = by_period(calls, period, since, until, function)
    mine = [c for c in calls if c.invoked and (function is None or c.function == function)]
    running = concurrency(mine, periods, period)
    summaries = []
    for start in sorted(periods):
        members = periods[start]
        durations = samples(FunctionMetric.DURATION, members)
        invoked = len(durations)
        cold = sum(1 for c in members if c.invoked and c.cold)

        def stat(statistic: str, durations: list[float] = durations) -> float | None:
            return round(reduce(durations, statistic), 3) if durations else None

        summaries.append(PeriodSummary(
            start=start, invocations=invoked, errors=int(sum(samples(FunctionMetric.ERRORS, members))),
            throttles=len(members) - invoked, duration_avg=stat(Statistic.AVERAGE), duration_p50=stat("p50"),
            duration_p90=stat("p90"), duration_p99=stat("p99"), duration_max=stat(Statistic.MAXIMUM),
            concurrent_executions=running[start], cold_starts=cold,
            cold_start_rate=round(cold / invoked, 4) if invoked else None,
            gb_seconds=round(sum(c.gb_seconds for c in members), 9)))
    return summaries


@dataclass(frozen=True)
class CustomSummary:
    """One custom metric (EMF) of one dimension set in one period, as CloudWatch's console
    shows it: SampleCount, Sum, Average, Minimum and Maximum of its values."""

    start: float
    namespace: str
    name: str
    unit: str
    dimensions: tuple[tuple[str, str], ...]
    count: int
    sum: float
    minimum: float
    maximum: float

    @property
    def average(self) -> float:
        return self.sum / self.count

    def to_json(self) -> dict[str, Any]:
        return {"start": self.start, "Namespace": self.namespace, "MetricName": self.name, "Unit": self.unit,
                "Dimensions": dict(self.dimensions), "SampleCount": self.count, "Sum": self.sum,
                "Average": self.average, "Minimum": self.minimum, "Maximum": self.maximum}


def summarize_custom(points: Iterable[Datapoint], period: int, since: float, until: float,
                     function: str | None = None) -> list[CustomSummary]:
    """The custom metrics `function` (or any) emitted in [since, until), per period, oldest
    first, then by namespace, name and dimensions."""
    groups: dict[tuple[float, str, str, str, tuple[tuple[str, str], ...]], list[float]] = {}
    for point in points:
        if since <= point.time < until and point.values and (function is None or point.function == function):
            key = (period_start(point.time, period), point.namespace, point.name, point.unit, point.dimensions)
            groups.setdefault(key, []).extend(point.values)
    return [CustomSummary(start, namespace, name, unit, dimensions, len(values), sum(values), min(values),
                          max(values))
            for (start, namespace, name, unit, dimensions), values in sorted(groups.items())]
