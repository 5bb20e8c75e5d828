"""The alarm state-change event has the shape of AWS's documented single-metric sample."""

from __future__ import annotations

import json

from aws_lambda_powertools.utilities.data_classes.cloud_watch_alarm_event import CloudWatchAlarmData

from squall.events.cloudwatch import MetricStat, StateRecord, state_change_event
from squall.observability.alarms import AlarmState

# the keys of the sample in CloudWatch's "Alarm events and EventBridge"
SAMPLE_KEYS = ["version", "id", "detail-type", "source", "account", "time", "region", "resources", "detail"]


def test_state_change_event_shape():
    previous = StateRecord(AlarmState.OK, "Threshold Crossed: ...", '{"version":"1.0"}', 1_569_937_000.987)
    state = StateRecord(AlarmState.ALARM, "Threshold Crossed: 1 out of ...", '{"version":"1.0"}', 1_570_035_880.989)
    metric = MetricStat("AWS/Lambda", "Errors", {"FunctionName": "charge"}, 60, "Sum")
    event = state_change_event("charge-errors", "too many errors", metric, previous, state)
    assert list(event) == SAMPLE_KEYS
    assert event["detail-type"] == "CloudWatch Alarm State Change" and event["source"] == "aws.cloudwatch"
    assert event["version"] == "0" and event["time"] == "2019-10-02T17:04:40Z"
    assert event["resources"] == ["arn:aws:cloudwatch:us-east-1:000000000000:alarm:charge-errors"]
    detail = CloudWatchAlarmData(event["detail"])
    assert detail.alarm_name == "charge-errors" and detail.state.value == "ALARM"
    assert detail.previous_state.value == "OK" and detail.state.timestamp == "2019-10-02T17:04:40.989+0000"
    assert detail.state.reason_data_decoded == {"version": "1.0"}
    [watched] = detail.configuration.metrics
    assert watched.return_data is True and watched.metric_stat.period == 60 and watched.metric_stat.stat == "Sum"
    assert watched.metric_stat.metric == {"dimensions": {"FunctionName": "charge"}, "name": "Errors",
                                          "namespace": "AWS/Lambda"}
    assert detail.configuration.description == "too many errors"
    # the same change has the same id (a redelivery), another change another
    assert state_change_event("charge-errors", "", metric, previous, state)["id"] == event["id"]
    assert state_change_event("charge-errors", "", metric, state, previous)["id"] != event["id"]
    json.dumps(event)
