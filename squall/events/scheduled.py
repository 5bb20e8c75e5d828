"""The event a scheduled EventBridge rule delivers to a Lambda function: a `Scheduled Event`.

Squall declares schedules as EventBridge Scheduler does (time zones, one-time `at()`,
flexible windows, start and end dates) but delivers the event of a scheduled rule, the
shape unmodified handlers written for `aws.events` schedules parse (powertools'
`EventBridgeModel`): `source` "aws.events", `detail-type` "Scheduled Event", `time` the
scheduled time (not when it was delivered), `resources` the schedule's ARN, `detail` the
schedule's payload (`{}` without one).
"""

from __future__ import annotations

import uuid
from typing import Any

from squall.aws import ACCOUNT, REGION, arn
from squall.sources.schedule_expressions import utc_iso

DETAIL_TYPE = "Scheduled Event"
SOURCE = "aws.events"


def schedule_arn(schedule: str) -> str:
    """The ARN of a schedule, as a scheduled rule's: arn:aws:events:<region>:<account>:rule/<name>."""
    return arn("events", f"rule/{schedule}")


def scheduled_event(schedule: str, scheduled: float, detail: Any = None) -> dict[str, Any]:
    """The event of one firing. Its `id` is derived from the schedule and the scheduled time,
    so every delivery of the same firing carries the same id (a handler can deduplicate)."""
    resource = schedule_arn(schedule)
    time = utc_iso(scheduled)
    return {"version": "0", "id": str(uuid.uuid5(uuid.NAMESPACE_URL, f"{resource}@{time}")),
            "detail-type": DETAIL_TYPE, "source": SOURCE, "account": ACCOUNT, "time": time, "region": REGION,
            "resources": [resource], "detail": {} if detail is None else detail}
