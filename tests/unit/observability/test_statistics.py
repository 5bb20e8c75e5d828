"""CloudWatch's Lambda metrics from metering records: definitions, statistics, periods."""

from __future__ import annotations

import pytest

from squall.errors import ConfigError, Outcome
from squall.observability.statistics import (
    Call,
    FunctionMetric,
    check_statistic,
    concurrency,
    datapoints,
    reduce,
    summarize,
)

T0 = 1_700_000_040.0  # a multiple of 60


def call(start: float, ms: float, outcome: Outcome = Outcome.SUCCESS, function: str = "f", cold: bool = False,
         gb: float = 0.0) -> Call:
    return Call(function, T0 + start, ms, outcome, cold, gb)


def test_percentiles_are_nearest_rank_and_the_other_statistics_are_plain():
    values = [float(v) for v in range(10, 110, 10)]  # 10 .. 100
    assert [reduce(values, p) for p in ("p50", "p90", "p99", "p100", "p0")] == [50.0, 90.0, 100.0, 100.0, 10.0]
    assert reduce(values, "Sum") == 550 and reduce(values, "Average") == 55
    assert (reduce(values, "Minimum"), reduce(values, "Maximum"), reduce(values, "SampleCount")) == (10, 100, 10)
    assert reduce([3.0], "p99.9") == 3.0


def test_statistics_are_checked_by_name():
    assert check_statistic("p99.9") == "p99.9"
    for bad in ("Median", "p101", "p", 99, None):
        with pytest.raises(ConfigError, match="invalid statistic"):
            check_statistic(bad)


def test_lambdas_definitions_throttles_are_neither_invocations_nor_errors_and_timeouts_are_errors():
    calls = [call(1, 10), call(2, 20, Outcome.ERROR), call(3, 3000, Outcome.TIMEOUT), call(4, 0, Outcome.THROTTLED),
             call(5, 30, Outcome.OOM), call(6, 5, Outcome.CRASH)]
    [summary] = summarize(calls, 60, T0, T0 + 60)
    assert (summary.invocations, summary.errors, summary.throttles) == (5, 4, 1)
    assert summary.duration_max == 3000 and summary.duration_p50 == 20
    errors = datapoints(calls, FunctionMetric.ERRORS, "Average", 60, T0, T0 + 60)
    assert errors == {T0: 0.8}  # Average of Errors: the error rate


def test_periods_are_aligned_to_the_clock_and_a_period_without_records_has_no_datapoint():
    calls = [call(0, 1), call(59.9, 1), call(60, 1), call(185, 1), call(185, 1, function="other")]
    assert datapoints(calls, FunctionMetric.INVOCATIONS, "Sum", 60, T0, T0 + 240, "f") == {
        T0: 2.0, T0 + 60: 1.0, T0 + 180: 1.0}
    assert [s.invocations for s in summarize(calls, 60, T0, T0 + 240)] == [2, 1, 2]


def test_concurrent_executions_is_the_most_overlapping_including_calls_from_an_earlier_period():
    calls = [call(0, 30_000), call(10, 1000), call(10.5, 1000), call(20, 500), call(65, 10)]
    assert concurrency(calls, [T0, T0 + 60], 60) == {T0: 3, T0 + 60: 1}
    assert concurrency([call(0, 90_000), call(70, 1)], [T0 + 60], 60) == {T0 + 60: 2}
    # one ending as another starts does not overlap
    assert concurrency([call(0, 1000), call(1, 1000)], [T0], 60) == {T0: 1}


def test_summary_cold_start_rate_and_gb_seconds():
    calls = [call(0, 100, cold=True, gb=0.0125), call(1, 100, gb=0.0125), call(2, 100, gb=0.0125),
             call(3, 0, Outcome.THROTTLED), call(4, 100, gb=0.0125)]
    [summary] = summarize(calls, 60, T0, T0 + 60)
    assert summary.cold_starts == 1 and summary.cold_start_rate == 0.25 and summary.gb_seconds == 0.05
    as_json = summary.to_json()
    assert as_json["Invocations"] == 4 and as_json["Throttles"] == 1 and as_json["Duration"]["p99"] == 100
