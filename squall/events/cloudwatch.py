"""The event CloudWatch sends EventBridge when an alarm changes state
("CloudWatch Alarm State Change", the single-metric alarm form of AWS's documented sample)."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from squall.aws import ACCOUNT, REGION, arn
from squall.observability.alarms import AlarmState, timestamp


@dataclass(frozen=True)
class StateRecord:
    """One state of an alarm, as the event and `squall alarms` show it."""

    value: AlarmState
    reason: str
    reason_data: str
    #: seconds since the epoch
    timestamp: float

    def to_event(self) -> dict[str, Any]:
        state: dict[str, Any] = {"reason": self.reason}
        if self.reason_data:
            state["reasonData"] = self.reason_data
        state["timestamp"] = timestamp(self.timestamp)
        state["value"] = str(self.value)
        return state


def alarm_arn(name: str) -> str:
    return arn("cloudwatch", f"alarm:{name}")


@dataclass(frozen=True)
class MetricStat:
    """The metric an alarm watches, as `configuration.metrics[0].metricStat` gives it."""

    namespace: str
    name: str
    dimensions: dict[str, str]
    period: int
    stat: str


def state_change_event(alarm: str, description: str, metric: MetricStat, previous: StateRecord,
                       state: StateRecord) -> dict[str, Any]:
    """The EventBridge event of a state change. Its id is derived from the alarm and the
    change, so a consumer can tell a redelivered event from a new change."""
    resource = alarm_arn(alarm)
    configuration: dict[str, Any] = {"description": description} if description else {}
    configuration["metrics"] = [{
        "id": str(uuid.uuid5(uuid.NAMESPACE_URL, resource)),
        "metricStat": {"metric": {"dimensions": metric.dimensions, "name": metric.name,
                                  "namespace": metric.namespace},
                       "period": metric.period, "stat": metric.stat},
        "returnData": True,
    }]
    return {
        "version": "0",
        "id": str(uuid.uuid5(uuid.NAMESPACE_URL, f"{resource}#{state.timestamp!r}#{state.value}")),
        "detail-type": "CloudWatch Alarm State Change",
        "source": "aws.cloudwatch",
        "account": ACCOUNT,
        "time": datetime.fromtimestamp(state.timestamp, UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "region": REGION,
        "resources": [resource],
        "detail": {"alarmName": alarm, "configuration": configuration,
                   "previousState": previous.to_event(), "state": state.to_event()},
    }
