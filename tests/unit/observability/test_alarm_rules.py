"""How an alarm decides its state: CloudWatch's tables for missing data, M out of N, and
its reason texts."""

from __future__ import annotations

import json

import pytest

from squall.observability.alarms import AlarmState, Comparison, Datapoint, Rule, TreatMissingData, decide

OK, ALARM, INSUFFICIENT = AlarmState.OK, AlarmState.ALARM, AlarmState.INSUFFICIENT_DATA
RETAIN = "retain"
T0 = 1_570_035_540.0  # 2019-10-02 16:59:00 UTC


def points(pattern: str) -> list[Datapoint | None]:
    """'0 - X' -> a non-breaching datapoint, a missing one, a breaching one (threshold 5)."""
    values = {"0": 1.0, "X": 9.0}
    return [None if c == "-" else Datapoint(T0 + 60 * i, values[c]) for i, c in enumerate(pattern.split())]


def rule(n: int, m: int, missing: TreatMissingData) -> Rule:
    return Rule(5.0, Comparison.GREATER, n, m, missing, "Sum", 60)


# CloudWatch's "How alarm state is evaluated when data is missing", columns MISSING,
# IGNORE, BREACHING, NOT BREACHING; the row it documents as ALARM for `missing`
# (X - - - -, 3 of 3) is the one difference, stated in the module docstring
# (M, datapoints, then the state under each treatment), N = 3: the first table's rows, 3 of 3,
# then the second's, 2 of 3
TABLES = [
    (3, "0 - X - X", OK, OK, OK, OK),
    (3, "0 - - - -", OK, OK, OK, OK),
    (3, "- - - - -", INSUFFICIENT, RETAIN, ALARM, OK),
    (3, "0 X X - X", ALARM, ALARM, ALARM, ALARM),
    (3, "- - - - X", INSUFFICIENT, RETAIN, ALARM, OK),
    (3, "X - - - -", INSUFFICIENT, RETAIN, ALARM, OK),
    (2, "0 - X - X", ALARM, ALARM, ALARM, ALARM),
    (2, "0 0 X 0 X", ALARM, ALARM, ALARM, ALARM),
    (2, "0 - X - -", OK, OK, ALARM, OK),
    (2, "- - - - 0", OK, OK, ALARM, OK),
    (2, "- - - - X", INSUFFICIENT, RETAIN, ALARM, OK),
]
TREATMENTS = [TreatMissingData.MISSING, TreatMissingData.IGNORE, TreatMissingData.BREACHING,
              TreatMissingData.NOT_BREACHING]


@pytest.mark.parametrize("row", TABLES)
@pytest.mark.parametrize("current", [OK, ALARM])
def test_cloudwatch_missing_data_tables(row, current):
    m, pattern, *expected = row
    for treatment, want in zip(TREATMENTS, expected, strict=True):
        got = decide(rule(3, m, treatment), points(pattern), current, T0 + 300).state
        assert got == (current if want == RETAIN else want), (pattern, treatment)


def test_the_reason_is_cloudwatchs_text_with_the_deciding_datapoints_newest_first():
    alarm = decide(rule(3, 2, TreatMissingData.MISSING), points("0 X 0 X -"), OK, T0 + 300)
    assert alarm.state is ALARM
    assert alarm.reason == ("Threshold Crossed: 2 out of the last 3 datapoints [9.0 (02/10/19 17:02:00), 9.0 "
                            "(02/10/19 17:00:00)] were greater than the threshold (5.0) (minimum 2 datapoints "
                            "for OK -> ALARM transition).")
    data = json.loads(alarm.reason_data)
    assert data["version"] == "1.0" and data["statistic"] == "Sum" and data["period"] == 60
    assert data["recentDatapoints"] == [9.0, 1.0, 9.0] and data["threshold"] == 5.0
    assert data["startDate"] == "2019-10-02T17:00:00.000+0000" and data["queryDate"] == "2019-10-02T17:04:00.000+0000"

    ok = decide(Rule(5.0, Comparison.GREATER_OR_EQUAL, 1, 1, TreatMissingData.MISSING, "p99", 10),
                [Datapoint(T0, 4.5)], ALARM, T0 + 12)
    assert ok.reason == ("Threshold Crossed: 1 out of the last 1 datapoint [4.5 (02/10/19 16:59:00)] was not greater "
                         "than or equal to the threshold (5.0) (minimum 1 datapoint for ALARM -> OK transition).")
    assert json.loads(ok.reason_data)["extendedStatistic"] == "p99"


def test_all_missing_is_insufficient_data_with_cloudwatchs_reason():
    decision = decide(rule(1, 1, TreatMissingData.MISSING), [None, None, None], OK, T0)
    assert decision.state is INSUFFICIENT
    assert decision.reason == "Insufficient Data: 3 datapoints were unknown."


@pytest.mark.parametrize(("comparison", "breaching"), [
    (Comparison.GREATER_OR_EQUAL, [5, 6]), (Comparison.GREATER, [6]), (Comparison.LESS, [4]),
    (Comparison.LESS_OR_EQUAL, [4, 5])])
def test_comparisons(comparison, breaching):
    assert [v for v in (4, 5, 6) if comparison.breaches(v, 5)] == breaching
