"""`app.alarm(...)`: CloudWatch's settings checked at declaration, and kept through the manifest."""

from __future__ import annotations

import json

import pytest

from squall import App
from squall.dispatch.targets import TargetKind
from squall.errors import ConfigError
from squall.manifest import describe, restore
from squall.observability.alarms import Comparison, TreatMissingData
from squall.observability.statistics import FunctionMetric, QueueMetric
from squall.sources.alarms import AlarmTrigger


def handler(event, ctx):
    return None


@pytest.fixture
def app() -> App:
    app = App("shop")
    app.function(handler, name="charge")
    app.function(handler, name="notify")
    app.on_queue("orders", handler, name="consume")
    return app


def test_an_alarm_survives_the_manifest_with_its_defaults_filled_in(app):
    app.alarm("charge-errors", metric="Errors", function="charge", threshold=5, period=10, evaluation_periods=3,
              target="function:notify", treat_missing_data="notBreaching")
    app.alarm("dlq", metric="ApproximateNumberOfMessagesVisible", queue="orders-dlq", threshold=1,
              target="queue:orders", comparison="GreaterThanThreshold", statistic="p90")
    restored = restore(json.loads(json.dumps(describe(app)))).triggers
    alarms = [t for t in restored if isinstance(t, AlarmTrigger)]
    assert alarms == [t for t in app.triggers if isinstance(t, AlarmTrigger)]
    errors, dlq = alarms
    assert errors.watched is FunctionMetric.ERRORS and errors.statistic == "Sum" and errors.datapoints_to_alarm == 3
    assert errors.rule.treat_missing_data is TreatMissingData.NOT_BREACHING and errors.function == "notify"
    assert errors.destination is not None and errors.destination.kind is TargetKind.FUNCTION
    assert dlq.watched is QueueMetric.VISIBLE and dlq.rule.comparison is Comparison.GREATER and dlq.function == ""
    assert dlq.metric_stat.dimensions == {"QueueName": "orders-dlq"} and dlq.metric_stat.namespace == "AWS/SQS"
    assert errors.describe() == "alarm charge-errors: Errors of charge >= 5 (Sum, 3 of 3 x 10 s) -> function:notify"


@pytest.mark.parametrize(("options", "message"), [
    (dict(metric="Latency"), "unknown metric 'Latency'"),
    (dict(threshold="5"), "invalid threshold '5'"),
    (dict(threshold=float("inf")), "invalid threshold inf"),
    (dict(period=45), "invalid period 45 for alarm 'a': CloudWatch allows 10, 30 or a multiple of 60"),
    (dict(period=90), "invalid period 90"),
    (dict(period=60, evaluation_periods=1441), "invalid evaluation_periods for alarm 'a' 1441"),
    (dict(evaluation_periods=2, datapoints_to_alarm=3), "invalid datapoints_to_alarm for alarm 'a' 3"),
    (dict(comparison="LessThanLowerThreshold"), "invalid comparison for alarm 'a' 'LessThanLowerThreshold'"),
    (dict(statistic="Median"), "invalid statistic for alarm 'a' 'Median'"),
    (dict(treat_missing_data="zero"), "invalid treat_missing_data for alarm 'a' 'zero'"),
    (dict(function="nobody"), "alarm 'a': unknown function 'nobody' \\(functions: charge, consume, notify\\)"),
    (dict(target="function:nobody"), "unknown function 'nobody'"),
    (dict(target="queue:nowhere"), "unknown queue 'nowhere' \\(queues: orders, orders-dlq\\)"),
    (dict(target="topic:alerts"), "unknown topic 'alerts' \\(topics: none\\); declare it before the alarm"),
    (dict(target="topic:bad.name"), "invalid topic name 'bad.name'"),
    (dict(target="sns:alerts"), "invalid target 'sns:alerts'"),
    (dict(metric="ApproximateAgeOfOldestMessage"), "is a queue metric: give queue="),
    (dict(queue="orders"), "Errors is a function metric: give function=, not queue="),
])
def test_bad_settings_are_refused_naming_the_value(app, options, message):
    settings = dict(metric="Errors", function="charge", threshold=5, period=60)
    settings.update(options)
    if settings["metric"].startswith("Approximate"):
        settings.pop("function")
    with pytest.raises(ConfigError, match=message):
        app.alarm("a", **settings)


def test_names_are_cloudwatchs_and_unique(app):
    with pytest.raises(ConfigError, match="invalid alarm name"):
        app.alarm("é", metric="Errors", threshold=1)
    app.alarm("all errors", metric="Errors", threshold=1)  # every function: no FunctionName dimension
    with pytest.raises(ConfigError, match="alarm 'all errors' is declared twice"):
        app.alarm("all errors", metric="Invocations", threshold=1)
