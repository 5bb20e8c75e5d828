"""What both backends share about FIFO queues: which queues are FIFO, a FIFO send entry,
the deduplication window and the form of sequence numbers; and what a FIFO topic's
publish asks of a fan-out (`PublishOnce`: deduplicated and numbered at the topic).

As on SQS, a queue is FIFO by its name (it ends in `.fifo`), so every caller, node and
version agrees on it without reading the registry.
"""

from __future__ import annotations

import hashlib
import re
from typing import Any, NamedTuple

from squall.errors import ConfigError

FIFO_SUFFIX = ".fifo"
#: SQS's deduplication interval: a deduplication id seen within it is not stored again
DEDUP_WINDOW = 300.0


#: MessageGroupId and MessageDeduplicationId, on SQS and SNS: 1 to 128 alphanumeric or
#: punctuation characters (ASCII 33-126)
FIFO_ID = re.compile(r"[!-~]{1,128}")


def is_fifo(queue: str) -> bool:
    return queue.endswith(FIFO_SUFFIX)


def check_fifo_id(parameter: str, value: Any) -> str:
    """A group or deduplication id as SQS and SNS take it; ConfigError naming it otherwise."""
    if not isinstance(value, str) or not FIFO_ID.fullmatch(value):
        raise ConfigError(f"invalid {parameter} {value!r}: must be 1 to 128 alphanumeric or punctuation characters "
                          "(ASCII 33-126), as SQS and SNS require")
    return value


def content_dedup_id(body: str) -> str:
    """The deduplication id content-based deduplication gives a message, on SQS and SNS: the
    SHA-256 of its body (not its attributes), in hex."""
    return hashlib.sha256(body.encode()).hexdigest()


class FifoEntry(NamedTuple):
    """One message sent to a FIFO queue."""

    body: str
    attributes: dict[str, Any] | None
    #: MessageGroupId: messages of one group are delivered in send order, one receive at a time
    group: str
    #: MessageDeduplicationId (the body's SHA-256 with content-based deduplication)
    dedup_id: str


#: a sequence number's width, and what a fan-out entry's body holds where the publish's
#: sequence number is to be written (`FanOutEntry.sequence_at`)
SEQUENCE_WIDTH = 20
SEQUENCE_PLACEHOLDER = "0" * SEQUENCE_WIDTH


def sequence_number(seq: int) -> str:
    """SequenceNumber as SQS gives it: a 20-digit decimal string, increasing with the send."""
    return f"{seq:0{SEQUENCE_WIDTH}d}"


class PublishOnce(NamedTuple):
    """A fan-out that is one publish to an SNS FIFO topic: accepted once per `dedup_id`
    within `DEDUP_WINDOW` in `scope` (the topic), and numbered in it."""

    scope: str
    dedup_id: str
    #: the publish's MessageId, which a duplicate within the window is answered with
    message_id: str
