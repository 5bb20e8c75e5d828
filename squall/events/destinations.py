"""The invocation record Lambda sends an asynchronous invocation's destination.

Field for field as Lambda documents it and sends it (its documented example, and records
AWS delivered for a Python function):

```
{"version": "1.0", "timestamp": "2019-11-14T18:16:05.568Z",
 "requestContext": {"requestId": "...", "functionArn": "arn:aws:lambda:...:function:f:$LATEST",
                    "condition": "RetriesExhausted", "approximateInvokeCount": 3},
 "requestPayload": {...},
 "responseContext": {"statusCode": 200, "executedVersion": "$LATEST", "functionError": "Unhandled"},
 "responsePayload": {"errorMessage": "...", "errorType": "...", "requestId": "...", "stackTrace": [...]}}
```

A success has no `functionError` and the function's result as `responsePayload`. An event
the function never ran (it expired in the queue, or recursive loop detection stopped it)
has neither `responseContext` nor `responsePayload`: there was no response.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

from squall import aws
from squall.events.eventbridge import bus_arn, event_time

VERSION = "$LATEST"


class Condition(StrEnum):
    """Why the record was sent (`requestContext.condition`)."""

    SUCCESS = "Success"
    RETRIES_EXHAUSTED = "RetriesExhausted"
    EVENT_AGE_EXCEEDED = "EventAgeExceeded"


@dataclass(frozen=True, slots=True)
class Response:
    """What the function's last attempt returned: its result, or its error payload."""

    payload: Any
    #: Lambda's `functionError`: "Unhandled" for an exception; None for a result
    function_error: str | None = None


def timestamp(seconds: float) -> str:
    """`2019-11-14T18:16:05.568Z`: UTC with milliseconds, as the record has it."""
    return datetime.fromtimestamp(seconds, UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


def invocation_record(function: str, request_id: str, condition: Condition, invoke_count: int,
                      request_payload: Any, response: Response | None, now: float) -> dict[str, Any]:
    """The record of one asynchronous invocation (`response` None: the function never ran)."""
    record: dict[str, Any] = {
        "version": "1.0",
        "timestamp": timestamp(now),
        "requestContext": {"requestId": request_id, "functionArn": aws.arn("lambda", f"function:{function}:{VERSION}"),
                           "condition": str(condition), "approximateInvokeCount": invoke_count},
        "requestPayload": request_payload,
    }
    if response is not None:
        context: dict[str, Any] = {"statusCode": 200, "executedVersion": VERSION}
        if response.function_error is not None:
            context["functionError"] = response.function_error
        record["responseContext"] = context
        record["responsePayload"] = response.payload
    return record


def bus_event(record: dict[str, Any], function: str, bus: str, seconds: float) -> dict[str, Any]:
    """A record sent to an event bus destination, as Lambda puts it there: the `detail` of
    an event from `lambda`, its resources the function's and the bus's ARNs."""
    outcome = "Success" if record["requestContext"]["condition"] == Condition.SUCCESS else "Failure"
    return {"version": "0", "id": aws.request_id(), "detail-type": f"Lambda Function Invocation Result - {outcome}",
            "source": "lambda", "account": aws.ACCOUNT, "time": event_time(seconds), "region": aws.REGION,
            "resources": [aws.arn("lambda", f"function:{function}:{VERSION}"), bus_arn(bus)], "detail": record}
