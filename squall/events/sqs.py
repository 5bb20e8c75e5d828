"""The event Lambda delivers for a batch of SQS messages."""

from __future__ import annotations

import base64
import hashlib
from collections.abc import Iterable, Mapping
from enum import IntEnum
from typing import Any

from squall.aws import ACCOUNT, REGION, arn
from squall.backends import Message
from squall.observability.context import TRACE_ATTRIBUTE


class Transport(IntEnum):
    """The byte SQS writes before an attribute's value in the digest: which field carries it."""

    STRING = 1
    BINARY = 2
    STRING_LIST = 3
    BINARY_LIST = 4


def _length_prefixed(value: bytes) -> bytes:
    return len(value).to_bytes(4, "big") + value


def _value(attribute: Mapping[str, Any]) -> tuple[Transport, Iterable[bytes]]:
    """The transport and the bytes of an attribute's value, in the order SQS's SDKs test them.

    Values are as a Lambda record carries them: strings as text, binaries base64-encoded.
    """
    if attribute.get("stringValue") is not None:
        return Transport.STRING, [attribute["stringValue"].encode()]
    if attribute.get("binaryValue") is not None:
        return Transport.BINARY, [base64.b64decode(attribute["binaryValue"])]
    if attribute.get("stringListValues"):
        return Transport.STRING_LIST, [v.encode() for v in attribute["stringListValues"]]
    return Transport.BINARY_LIST, [base64.b64decode(v) for v in attribute.get("binaryListValues") or ()]


def md5_of_message_attributes(attributes: Mapping[str, Mapping[str, Any]]) -> str:
    """`MD5OfMessageAttributes` as SQS computes it, so a consumer can check it as SDKs do.

    For each attribute in name order: the name, the data type (each as a 4-byte big-endian
    length and UTF-8 bytes), one transport byte, then each value length-prefixed.
    """
    digest = hashlib.md5()
    for name in sorted(attributes):
        attribute = attributes[name]
        transport, values = _value(attribute)
        digest.update(_length_prefixed(name.encode()) + _length_prefixed(attribute["dataType"].encode())
                      + bytes([transport]) + b"".join(_length_prefixed(v) for v in values))
    return digest.hexdigest()


def sqs_event(messages: list[Message]) -> dict[str, Any]:
    """`{"Records": [...]}`, one record per message, as an SQS event source mapping sends it.

    One comprehension, not a function per record: this runs for every message delivered.
    `md5OfMessageAttributes` is present only when the message has attributes, as on SQS;
    it is added afterwards so that messages without attributes pay only the test. The
    trace context a message was sent with is the system attribute `AWSTraceHeader`, as on
    SQS, not one of its message attributes. A FIFO queue's records carry `MessageGroupId`,
    `MessageDeduplicationId` and `SequenceNumber` among their attributes, as Lambda's do.
    """
    records: list[dict[str, Any]] = [{
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
    } for m in messages]
    for record, m in zip(records, messages, strict=True):
        if m.group is not None:
            record["attributes"].update(SequenceNumber=m.sequence, MessageGroupId=m.group,
                                        MessageDeduplicationId=m.dedup_id)
        attributes = m.attributes
        if attributes:
            trace = attributes.get(TRACE_ATTRIBUTE)
            if trace is not None:
                attributes = {name: value for name, value in attributes.items() if name != TRACE_ATTRIBUTE}
                record["messageAttributes"] = attributes
                record["attributes"]["AWSTraceHeader"] = trace.get("stringValue", "")
            if attributes:
                record["md5OfMessageAttributes"] = md5_of_message_attributes(attributes)
    return {"Records": records}
