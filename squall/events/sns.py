"""What SNS delivers for a published message: the Lambda event, and what it puts in SQS.

One `Notification` (the message as SNS keeps it after Publish) and its three shapes:

- `sns_event`: the event a subscribed function receives (`Records[].Sns`, with
  `SigningCertUrl` / `UnsubscribeUrl`, `Subject` null when none was given and
  `MessageAttributes` always present);
- `sqs_envelope`: the JSON body SNS writes into a subscribed queue (`SigningCertURL` /
  `UnsubscribeURL`, no `Subject` key without one, `MessageAttributes` only when the
  message has some), as AWS's "Fanout to Amazon SQS queues" example shows it; from a FIFO
  topic with the publish's `SequenceNumber` after `MessageId` and no signature fields
  (`SignatureVersion`, `Signature`, `SigningCertURL`), as SNS FIFO writes it (the group
  and deduplication ids travel as the SQS message's own attributes, not in the body);
- `sqs_attributes`: with raw message delivery the queue gets the message itself, and its
  attributes become SQS message attributes.

Squall does not sign messages: `Signature` is a placeholder (AWS's sample events carry
"EXAMPLE" there too) and the certificate URL names no real certificate.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from squall.aws import REGION, arn

SIGNATURE_VERSION = "1"
SIGNATURE = "EXAMPLE"
SIGNING_CERT_URL = f"https://sns.{REGION}.amazonaws.com/SimpleNotificationService-squall.pem"


def topic_arn(topic: str) -> str:
    return arn("sns", topic)


def subscription_arn(topic: str, endpoint: str) -> str:
    """The subscription's ARN: the topic's, then an id that is the same on every node
    (derived from the topic and the endpoint, as `function:NAME` or `queue:NAME`)."""
    return f"{topic_arn(topic)}:{uuid.uuid5(uuid.NAMESPACE_URL, f'squall:{topic}:{endpoint}')}"


def unsubscribe_url(subscription: str) -> str:
    return f"https://sns.{REGION}.amazonaws.com/?Action=Unsubscribe&SubscriptionArn={subscription}"


def timestamp(seconds: float) -> str:
    """SNS's form: `2012-03-29T05:12:16.901Z`."""
    return datetime.fromtimestamp(seconds, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


@dataclass(frozen=True)
class Notification:
    """A published message. `attributes` are as Publish takes them, checked
    (`{"DataType": "String", "StringValue": "x"}`, a Binary's value base64 text)."""

    message_id: str
    topic: str
    message: str
    published: float
    subject: str | None = None
    attributes: Mapping[str, Mapping[str, str]] = field(default_factory=dict)


def _attribute_value(attribute: Mapping[str, str]) -> str:
    return attribute["BinaryValue"] if attribute["DataType"] == "Binary" else attribute["StringValue"]


def sns_attributes(notification: Notification) -> dict[str, dict[str, str]]:
    """The attributes as SNS shows them in a notification: `{"Type", "Value"}`."""
    return {name: {"Type": attribute["DataType"], "Value": _attribute_value(attribute)}
            for name, attribute in notification.attributes.items()}


def sns_event(notification: Notification, subscription: str) -> dict[str, Any]:
    """The event a function subscribed to the topic (`subscription`, its ARN) receives."""
    return {"Records": [{
        "EventSource": "aws:sns",
        "EventVersion": "1.0",
        "EventSubscriptionArn": subscription,
        "Sns": {
            "Type": "Notification",
            "MessageId": notification.message_id,
            "TopicArn": topic_arn(notification.topic),
            "Subject": notification.subject,
            "Message": notification.message,
            "Timestamp": timestamp(notification.published),
            "SignatureVersion": SIGNATURE_VERSION,
            "Signature": SIGNATURE,
            "SigningCertUrl": SIGNING_CERT_URL,
            "UnsubscribeUrl": unsubscribe_url(subscription),
            "MessageAttributes": sns_attributes(notification),
        },
    }]}


def sqs_envelope(notification: Notification, subscription: str, sequence: str | None = None) -> dict[str, Any]:
    """The body SNS writes into a subscribed queue without raw message delivery; with
    `sequence` (the publish's SequenceNumber), the body a FIFO topic writes."""
    envelope: dict[str, Any] = {"Type": "Notification", "MessageId": notification.message_id}
    if sequence is not None:
        envelope["SequenceNumber"] = sequence
    envelope["TopicArn"] = topic_arn(notification.topic)
    if notification.subject is not None:
        envelope["Subject"] = notification.subject
    envelope.update({"Message": notification.message, "Timestamp": timestamp(notification.published)})
    if sequence is None:
        envelope.update({"SignatureVersion": SIGNATURE_VERSION, "Signature": SIGNATURE,
                         "SigningCertURL": SIGNING_CERT_URL})
    envelope["UnsubscribeURL"] = unsubscribe_url(subscription)
    if notification.attributes:
        envelope["MessageAttributes"] = sns_attributes(notification)
    return envelope


def sqs_attributes(notification: Notification) -> dict[str, dict[str, Any]]:
    """With raw message delivery, the message's attributes as SQS message attributes
    (stored as a queue message's are: `squall.services.message_attribute`). SQS has no
    array type: a String.Array arrives as a String of that custom type, its JSON text."""
    converted: dict[str, dict[str, Any]] = {}
    for name, attribute in notification.attributes.items():
        entry: dict[str, Any] = {"stringListValues": [], "binaryListValues": [], "dataType": attribute["DataType"]}
        if attribute["DataType"] == "Binary":
            entry["binaryValue"] = attribute["BinaryValue"]
        else:
            entry["stringValue"] = attribute["StringValue"]
        converted[name] = entry
    return converted
