"""Publishing to a topic: SNS's Publish checks, the filter policies, one commit.

`Publisher.publish` is what `ctx.publish`, `squall publish`, the harness and `topic:`
targets call. It checks the message as SNS's Publish does (the errors name the part),
matches every subscription's filter policy, and writes every delivery plus the topic's
tallies in one `Queues.fan_out`: once it returns the publish is durable for every
subscription, or nothing was written. Within an invocation (`trace`) the publish is a
PRODUCER span whose context every delivery carries, so each subscriber's invocation
continues the publisher's trace.

A publish to a FIFO topic carries a message group id and a deduplication id (or, with the
topic's content-based deduplication, the SHA-256 of the message): the fan-out is then a
`PublishOnce`, so a deduplication id the topic accepted in the last five minutes is
accepted again but delivered to nobody (the answer is the original's MessageId and
SequenceNumber), and every delivery to a FIFO queue carries the group and deduplication
id, so each queue keeps each group in publish order.

The tallies (table `squall.topic_counts`, read by `squall topics`) count per topic the
messages published and, per subscription, the messages delivered to it and those its
filter policy turned away (a duplicate counts nowhere: it was not delivered).
"""

from __future__ import annotations

import base64
import binascii
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import TYPE_CHECKING, Any

from squall import aws
from squall.backends import Backend
from squall.backends.fifo import SEQUENCE_PLACEHOLDER, PublishOnce, check_fifo_id, content_dedup_id, is_fifo
from squall.backends.protocol import FanOutEntry, Tables
from squall.errors import ConfigError, PayloadTooLarge
from squall.events.sns import Notification, sns_event, sqs_attributes, sqs_envelope, topic_arn
from squall.observability.context import TRACE_ATTRIBUTE, trace_attribute
from squall.routing.policies import attribute_document
from squall.sources.topics import TopicRecord

if TYPE_CHECKING:
    from squall.runtime.tracing import InvocationTrace

#: SNS's Publish limits: 256 KiB for the message and its attributes, 10 attributes (what a
#: raw delivery to SQS can carry), a subject of up to 100 printable ASCII characters
MAX_MESSAGE_BYTES = 256 * 1024
MAX_ATTRIBUTES = 10
MAX_SUBJECT = 100
DATA_TYPES = ("String", "String.Array", "Number", "Binary")
#: attribute names: letters, digits, '_', '-', '.', not starting or ending with '.', no '..'
ATTRIBUTE_NAME = re.compile(r"(?!\.)(?!.*\.\.)[A-Za-z0-9_.-]{1,256}(?<!\.)")
RESERVED_PREFIXES = ("aws.", "amazon.")
COUNTS_TABLE = "squall.topic_counts"


class Tally(StrEnum):
    PUBLISHED = "published"
    DELIVERED = "delivered"
    FILTERED = "filtered"


def tally_key(topic: str, tally: Tally, endpoint: str = "") -> str:
    """The counter's key: the topic, the subscription's endpoint (none for PUBLISHED), the tally."""
    return f"{topic} {endpoint} {tally}" if endpoint else f"{topic} {tally}"


@dataclass(frozen=True)
class SubscriptionTally:
    """What became of a subscription's messages: delivered (written for it), filtered
    (turned away by its policy) and, for a function, pending (waiting, or being retried)
    and failed (in its dead-letter queue)."""

    endpoint: str
    delivered: int
    filtered: int
    pending: int
    failed: int


def published(backend: Tables, topic: str) -> int:
    item = backend.table_get(COUNTS_TABLE, tally_key(topic, Tally.PUBLISHED))
    return 0 if item is None else item.value


def tallies(backend: Backend, topic: TopicRecord) -> list[SubscriptionTally]:
    """Each subscription's tally, in declaration order."""
    counts = {item.key: item.value for item in backend.table_scan(COUNTS_TABLE, prefix=f"{topic.name} ")}
    found = []
    for s in topic.subscriptions:
        pending = failed = 0
        if s.to_function:
            config = backend.queue_config(s.queue)
            pending = backend.queue_stats(s.queue).total
            failed = backend.queue_stats(config.dlq).total if config and config.dlq else 0
        found.append(SubscriptionTally(s.endpoint, counts.get(tally_key(topic.name, Tally.DELIVERED, s.endpoint), 0),
                                       counts.get(tally_key(topic.name, Tally.FILTERED, s.endpoint), 0),
                                       pending, failed))
    return found


def check_attributes(attributes: Mapping[str, Any] | None) -> dict[str, dict[str, str]]:
    """Message attributes as Publish takes them (`{"DataType": ..., "StringValue" or
    "BinaryValue": ...}`) or as plain values (a string, a number, a list of them: String,
    Number, String.Array); returned in Publish's form, a Binary's value as base64 text.
    ConfigError naming the attribute SNS would refuse."""
    if attributes is None:
        return {}
    if not isinstance(attributes, Mapping):
        raise ConfigError(f"message attributes must be a dict of name -> value, not {type(attributes).__name__}")
    if len(attributes) > MAX_ATTRIBUTES:
        raise ConfigError(f"a message has at most {MAX_ATTRIBUTES} attributes, not {len(attributes)}")
    checked = {}
    for name, value in attributes.items():
        if not isinstance(name, str) or not ATTRIBUTE_NAME.fullmatch(name):
            raise ConfigError(f"invalid message attribute name {name!r}: 1 to 256 letters, digits, '_', '-' or '.', "
                              f"not starting or ending with '.' nor with '..' inside")
        if name.lower().startswith(RESERVED_PREFIXES):
            raise ConfigError(f"invalid message attribute name {name!r}: names starting with 'AWS.' or 'Amazon.' "
                              f"are reserved")
        checked[name] = _attribute(name, value)
    attribute_document(checked)  # a Number that is not one, a String.Array that is no JSON array
    return checked


def _attribute(name: str, value: Any) -> dict[str, str]:
    if isinstance(value, Mapping):
        data_type = value.get("DataType")
        if data_type not in DATA_TYPES:
            raise ConfigError(f"message attribute {name!r}: DataType must be one of {', '.join(DATA_TYPES)}, "
                              f"not {data_type!r}")
        if data_type == "Binary":
            return {"DataType": "Binary", "BinaryValue": _binary(name, value.get("BinaryValue"))}
        text = value.get("StringValue")
        if not isinstance(text, str) or not text:
            raise ConfigError(f"message attribute {name!r} of type {data_type} needs a non-empty StringValue")
        return {"DataType": data_type, "StringValue": text}
    if isinstance(value, str) and value:
        return {"DataType": "String", "StringValue": value}
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return {"DataType": "Number", "StringValue": str(value)}
    if isinstance(value, (list, tuple)):
        return {"DataType": "String.Array", "StringValue": json.dumps(list(value))}
    raise ConfigError(f"message attribute {name!r} must be a non-empty string, a number, a list or Publish's "
                      f"{{'DataType': ..., 'StringValue': ...}}, not {value!r}")


def _binary(name: str, value: Any) -> str:
    if isinstance(value, (bytes, bytearray)) and value:
        return base64.b64encode(value).decode()
    if isinstance(value, str) and value:
        try:
            base64.b64decode(value, validate=True)
        except binascii.Error:
            raise ConfigError(f"message attribute {name!r}: a Binary's BinaryValue must be bytes or base64 text"
                              ) from None
        return value
    raise ConfigError(f"message attribute {name!r}: a Binary needs a non-empty BinaryValue")


def check_subject(subject: Any) -> str | None:
    if subject is None:
        return None
    if (not isinstance(subject, str) or not 0 < len(subject) <= MAX_SUBJECT
            or any(not " " <= c <= "~" for c in subject) or subject[0] == " "):
        raise ConfigError(f"invalid subject {subject!r}: 1 to {MAX_SUBJECT} printable ASCII characters, starting "
                          f"with a letter, digit or punctuation mark, no line breaks")
    return subject


def check_fifo_ids(topic: TopicRecord, message: str, group_id: Any, dedup_id: Any) -> tuple[str, str] | None:
    """SNS's rules: a FIFO topic needs a message group id and a deduplication id (the
    message's SHA-256 when the topic has content-based deduplication and none is given);
    a standard topic takes neither. The FIFO topic's (group, deduplication id)."""
    if not topic.fifo:
        for what, value in (("group_id", group_id), ("dedup_id", dedup_id)):
            if value is not None:
                raise ConfigError(f"topic {topic.name!r}: {what} is only for FIFO topics (names ending in '.fifo')")
        return None
    if dedup_id is None and topic.content_based_deduplication:
        dedup_id = content_dedup_id(message)
    for what, value in (("group_id", group_id), ("dedup_id", dedup_id)):
        if value is None:
            unless = "" if what == "group_id" else " (unless the topic has content_based_deduplication)"
            raise ConfigError(f"topic {topic.name!r} is a FIFO topic: {what} is required{unless}")
        check_fifo_id(what, value)
    return group_id, dedup_id


def check_message(message: Any, attributes: Mapping[str, Mapping[str, str]]) -> str:
    if not isinstance(message, str):
        raise ConfigError(f"the message must be a string, not {type(message).__name__} (use json.dumps)")
    if not message:
        raise ConfigError("the message must not be empty")
    size = len(message.encode()) + sum(len(name.encode()) + sum(len(part.encode()) for part in attribute.values())
                                       for name, attribute in attributes.items())
    if size > MAX_MESSAGE_BYTES:
        raise PayloadTooLarge(f"the message and its attributes are {size} bytes; SNS's limit is {MAX_MESSAGE_BYTES} "
                              f"bytes (256 KiB)")
    return message


class PublishResult(str):
    """What a publish answers: the MessageId (a str, as ever) and, from a FIFO topic, the
    SequenceNumber (`sequence_number`; None from a standard topic), as SNS's Publish does."""

    sequence_number: str | None

    def __new__(cls, message_id: str, sequence_number: str | None = None) -> PublishResult:
        result = super().__new__(cls, message_id)
        result.sequence_number = sequence_number
        return result

    @property
    def message_id(self) -> str:
        return str(self)


class Publisher:
    """Publishes to topics on one backend (the clock comes from it)."""

    def __init__(self, backend: Backend, trace: InvocationTrace | None = None):
        self.backend = backend
        self.trace = trace

    def publish(self, topic: TopicRecord, message: Any, attributes: Mapping[str, Any] | None = None,
                subject: str | None = None, group_id: str | None = None, dedup_id: str | None = None,
                system: Mapping[str, Any] | None = None) -> PublishResult:
        """Publish `message`; its MessageId once every delivery is committed (and a FIFO
        topic's SequenceNumber). `system`: system attributes every delivery carries (a
        trace context from elsewhere)."""
        checked = check_attributes(attributes)
        notification = Notification(aws.request_id(), topic.name, check_message(message, checked),
                                    self.backend.clock(), check_subject(subject), checked)
        fifo = check_fifo_ids(topic, notification.message, group_id, dedup_id)
        if self.trace is None:
            return self._commit(topic, notification, fifo, dict(system or {}))
        with self.trace.producer(topic.name, 1, system="aws.sns", operation="publish") as span:
            span.attributes["aws.sns.topic.arn"] = topic_arn(topic.name)
            span.attributes["messaging.message.id"] = notification.message_id
            context = {**(system or {}), TRACE_ATTRIBUTE: trace_attribute(span.context(self.trace.context.sampled))}
            return self._commit(topic, notification, fifo, context)

    def _commit(self, topic: TopicRecord, notification: Notification, fifo: tuple[str, str] | None,
                system: dict[str, Any]) -> PublishResult:
        entries: list[FanOutEntry] = []
        counts = {tally_key(topic.name, Tally.PUBLISHED): 1}
        for subscription in topic.subscriptions:
            policy = subscription.compiled
            if policy is not None and not policy.matches(notification.attributes, notification.message):
                counts[tally_key(topic.name, Tally.FILTERED, subscription.endpoint)] = 1
                continue
            counts[tally_key(topic.name, Tally.DELIVERED, subscription.endpoint)] = 1
            group, dedup = fifo if fifo and is_fifo(subscription.queue) else (None, None)
            if subscription.to_function:
                body = json.dumps(sns_event(notification, subscription.arn))
                entries.append(FanOutEntry(subscription.queue, body, system or None))
            elif subscription.raw:
                entries.append(FanOutEntry(subscription.queue, notification.message,
                                           {**sqs_attributes(notification), **system} or None, group, dedup))
            else:
                envelope = sqs_envelope(notification, subscription.arn, SEQUENCE_PLACEHOLDER if fifo else None)
                body = json.dumps(envelope)
                at = body.index(f'"SequenceNumber": "{SEQUENCE_PLACEHOLDER}"') + len('"SequenceNumber": "') \
                    if fifo else None
                entries.append(FanOutEntry(subscription.queue, body, system or None, group, dedup, at))
        once = PublishOnce(topic.name, fifo[1], notification.message_id) if fifo else None
        done = self.backend.fan_out(entries, COUNTS_TABLE, counts, once)
        return PublishResult(done.original or notification.message_id, done.sequence)
