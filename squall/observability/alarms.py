"""How a CloudWatch alarm decides its state from its datapoints (pure).

An alarm looks at its last `evaluation_periods` (N) datapoints and goes to ALARM when
`datapoints_to_alarm` (M) of them breach the threshold, else to OK. Missing datapoints
(periods without data) are handled as CloudWatch documents it: the evaluator fetches a
wider *evaluation range* (N + 2 periods here); when it holds N real datapoints, the most
recent N are evaluated and missing ones do not matter; when it holds fewer, the gaps are
filled per `treat_missing_data` — `breaching`, `notBreaching`, `ignore` (keep the state
when it cannot be decided) or `missing` (INSUFFICIENT_DATA when it cannot be decided).
This reproduces every row of the tables in CloudWatch's "How alarm state is evaluated
when data is missing" but one: a lone breaching datapoint at the old end of the range
(`X - - - -`, M = N = 3) with `missing` gives INSUFFICIENT_DATA here, ALARM there.

The reason texts and `reasonData` are CloudWatch's.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum

#: periods fetched beyond the evaluation periods, to look past missing datapoints
EXTRA_PERIODS = 2


class AlarmState(StrEnum):
    OK = "OK"
    ALARM = "ALARM"
    INSUFFICIENT_DATA = "INSUFFICIENT_DATA"


class Comparison(StrEnum):
    GREATER_OR_EQUAL = "GreaterThanOrEqualToThreshold"
    GREATER = "GreaterThanThreshold"
    LESS = "LessThanThreshold"
    LESS_OR_EQUAL = "LessThanOrEqualToThreshold"

    def breaches(self, value: float, threshold: float) -> bool:
        if self is Comparison.GREATER_OR_EQUAL:
            return value >= threshold
        if self is Comparison.GREATER:
            return value > threshold
        if self is Comparison.LESS:
            return value < threshold
        return value <= threshold

    @property
    def words(self) -> str:
        """As the reason text says it ("was greater than the threshold")."""
        return {"GreaterThanOrEqualToThreshold": "greater than or equal to", "GreaterThanThreshold": "greater than",
                "LessThanThreshold": "less than", "LessThanOrEqualToThreshold": "less than or equal to"}[self]


class TreatMissingData(StrEnum):
    MISSING = "missing"
    NOT_BREACHING = "notBreaching"
    BREACHING = "breaching"
    IGNORE = "ignore"


@dataclass(frozen=True)
class Rule:
    """What an alarm compares: threshold, comparison, N, M and the missing-data rule."""

    threshold: float
    comparison: Comparison
    evaluation_periods: int
    datapoints_to_alarm: int
    treat_missing_data: TreatMissingData
    statistic: str
    period: int


@dataclass(frozen=True)
class Datapoint:
    start: float
    value: float


@dataclass(frozen=True)
class Decision:
    """The state an evaluation arrived at, with CloudWatch's reason and reasonData."""

    state: AlarmState
    reason: str
    reason_data: str


def decide(rule: Rule, points: Sequence[Datapoint | None], current: AlarmState, now: float) -> Decision:
    """The alarm's state after evaluating `points`, its evaluation range oldest first
    (None where a period has no datapoint), at time `now`."""
    n, m = rule.evaluation_periods, rule.datapoints_to_alarm
    real = [p for p in points if p is not None]
    evaluated = real[-n:]
    breaching = [p for p in evaluated if rule.comparison.breaches(p.value, rule.threshold)]
    fills = n - len(evaluated)
    if fills and rule.treat_missing_data is TreatMissingData.BREACHING:
        alarm = len(breaching) + fills >= m
    elif fills and rule.treat_missing_data is TreatMissingData.NOT_BREACHING:
        alarm = len(breaching) >= m
    elif fills:  # missing or ignore: decided only if the real datapoints decide it
        if len(breaching) >= m:
            alarm = True
        elif len(evaluated) > len(breaching):
            alarm = False
        elif rule.treat_missing_data is TreatMissingData.IGNORE:
            return Decision(current, "", "")
        else:
            unknown = len(points)
            return Decision(AlarmState.INSUFFICIENT_DATA,
                            f"Insufficient Data: {unknown} datapoint{'s were' if unknown != 1 else ' was'} unknown.",
                            _reason_data(rule, evaluated, now))
    else:
        alarm = len(breaching) >= m
    state = AlarmState.ALARM if alarm else AlarmState.OK
    return Decision(state, _reason(rule, evaluated, breaching, state, current), _reason_data(rule, evaluated, now))


def _reason(rule: Rule, evaluated: list[Datapoint], breaching: list[Datapoint], state: AlarmState,
            current: AlarmState) -> str:
    """CloudWatch's "Threshold Crossed: ..." text: the datapoints that decided, newest first."""
    n = rule.evaluation_periods
    if state is AlarmState.ALARM:
        shown, negation, minimum = breaching, "", rule.datapoints_to_alarm
    else:
        shown = [p for p in evaluated if p not in breaching]
        negation, minimum = "not ", n - rule.datapoints_to_alarm + 1
    listed = ", ".join(f"{p.value!r} ({_reason_time(p.start)})" for p in reversed(shown))
    verb = "was" if len(shown) == 1 else "were"
    return (f"Threshold Crossed: {len(shown)} out of the last {n} datapoint{'s' if n != 1 else ''} [{listed}] "
            f"{verb} {negation}{rule.comparison.words} the threshold ({float(rule.threshold)!r}) (minimum "
            f"{minimum} datapoint{'s' if minimum != 1 else ''} for {current} -> {state} transition).")


def _reason_data(rule: Rule, evaluated: list[Datapoint], now: float) -> str:
    data: dict[str, object] = {"version": "1.0", "queryDate": timestamp(now)}
    if evaluated:
        data["startDate"] = timestamp(evaluated[0].start)
    data["statistic" if rule.statistic[0] != "p" else "extendedStatistic"] = rule.statistic
    data["period"] = rule.period
    data["recentDatapoints"] = [p.value for p in evaluated]
    data["threshold"] = float(rule.threshold)
    data["evaluatedDatapoints"] = [{"timestamp": timestamp(p.start), "value": p.value} for p in reversed(evaluated)]
    return json.dumps(data, separators=(",", ":"))


def timestamp(t: float) -> str:
    """CloudWatch's alarm timestamps: `2019-10-02T17:04:40.989+0000`."""
    moment = datetime.fromtimestamp(t, UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}+0000"


def _reason_time(t: float) -> str:
    return datetime.fromtimestamp(t, UTC).strftime("%d/%m/%y %H:%M:%S")
