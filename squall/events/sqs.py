"""The event Lambda delivers for a batch of SQS messages."""

from __future__ import annotations

import hashlib
from typing import Any

from squall.aws import ACCOUNT, REGION, arn
from squall.backends import Message


def sqs_event(messages: list[Message]) -> dict[str, Any]:
    """`{"Records": [...]}`, one record per message, as an SQS event source mapping sends it.

    One comprehension, not a function per record: this runs for every message delivered.
    """
    return {"Records": [{
        "messageId": m.id,
        "receiptHandle": m.receipt,
        "body": m.body,
        "attributes": {
            "ApproximateReceiveCount": str(m.receive_count),
            "SentTimestamp": str(int(m.sent_at * 1000)),
            "SenderId": ACCOUNT,
            "ApproximateFirstReceiveTimestamp": str(int(m.first_received_at * 1000)),
        },
        "messageAttributes": m.attributes,
        "md5OfBody": hashlib.md5(m.body.encode()).hexdigest(),
        "eventSource": "aws:sqs",
        "eventSourceARN": arn("sqs", m.queue),
        "awsRegion": REGION,
    } for m in messages]}
