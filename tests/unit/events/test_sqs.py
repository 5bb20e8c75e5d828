"""sqs_event: the event Lambda's SQS event source mapping sends, for messages claimed from a
real backend."""

from __future__ import annotations

import hashlib
import json

import pytest

from squall.aws import ACCOUNT, REGION
from squall.events.sqs import sqs_event
from squall.services import message_attribute

RECORD_KEYS = {"messageId", "receiptHandle", "body", "attributes", "messageAttributes", "md5OfBody", "eventSource",
               "eventSourceARN", "awsRegion"}
ATTRIBUTE_KEYS = {"ApproximateReceiveCount", "SentTimestamp", "SenderId", "ApproximateFirstReceiveTimestamp"}


@pytest.fixture
def claimed(sqlite, clock):
    """Two messages sent at t0 (one with attributes, one with a non-ASCII body), received at t0 + 1.5."""
    sent = clock.now
    sqlite.enqueue("orders", json.dumps({"n": 1}), {"kind": message_attribute("kind", "new"),
                                                     "count": message_attribute("count", 3)})
    sqlite.enqueue("orders", "héllo ☃")
    clock.advance(1.5)
    return sent, sqlite.claim("orders", 10, 30)


def test_sqs_event_has_every_key_of_a_lambda_record(claimed, clock):
    sent, messages = claimed
    event = sqs_event(messages)
    assert event.keys() == {"Records"}
    first, second = event["Records"]
    for record, m in zip(event["Records"], messages, strict=True):
        assert record.keys() == RECORD_KEYS
        assert record["attributes"].keys() == ATTRIBUTE_KEYS
        assert all(isinstance(v, str) for v in record["attributes"].values())  # strings, as Lambda sends them
        assert (record["messageId"], record["receiptHandle"], record["body"]) == (m.id, m.receipt, m.body)
        assert record["eventSource"] == "aws:sqs"
        assert record["eventSourceARN"] == f"arn:aws:sqs:{REGION}:{ACCOUNT}:orders"
        assert record["awsRegion"] == REGION
        assert record["attributes"]["SenderId"] == ACCOUNT
        assert record["attributes"]["ApproximateReceiveCount"] == "1"
        assert record["attributes"]["SentTimestamp"] == str(int(sent * 1000))
        assert record["attributes"]["ApproximateFirstReceiveTimestamp"] == str(int((sent + 1.5) * 1000))
        assert record["md5OfBody"] == hashlib.md5(m.body.encode("utf-8")).hexdigest()
    assert first["body"] == '{"n": 1}'
    assert first["messageAttributes"] == {
        "kind": {"stringValue": "new", "stringListValues": [], "binaryListValues": [], "dataType": "String"},
        "count": {"stringValue": "3", "stringListValues": [], "binaryListValues": [], "dataType": "Number"},
    }
    assert second["body"] == "héllo ☃" and second["messageAttributes"] == {}
    json.dumps(event)  # crosses the wire as JSON


def test_sqs_event_of_a_message_received_again(sqlite, clock, claimed):
    sent, [m, _] = claimed
    sqlite.release("orders", m.receipt, 0)
    clock.advance(2)
    again = sqlite.claim("orders", 1, 30)[0]
    [record] = sqs_event([again])["Records"]
    assert record["attributes"]["ApproximateReceiveCount"] == "2"
    assert record["attributes"]["ApproximateFirstReceiveTimestamp"] == str(int((sent + 1.5) * 1000))  # the first
    assert record["receiptHandle"] != m.receipt and record["messageId"] == m.id


def test_sqs_event_of_no_messages():
    assert sqs_event([]) == {"Records": []}


def test_sqs_event_parses_as_powertools_sqs_model(claimed):
    models = pytest.importorskip("aws_lambda_powertools.utilities.parser.models")
    sent, messages = claimed
    parsed = models.SqsModel.model_validate(sqs_event(messages))
    assert [r.messageId for r in parsed.Records] == [m.id for m in messages]
    first = parsed.Records[0]
    assert first.attributes.ApproximateReceiveCount == "1"
    assert int(first.attributes.SentTimestamp.timestamp()) == int(sent)
    assert first.messageAttributes["kind"].stringValue == "new"
    assert first.messageAttributes["count"].dataType == "Number"


def test_md5_of_body_is_the_hex_md5_of_the_utf8_body(sqlite):
    sqlite.enqueue("q", "hello")
    sqlite.enqueue("q", "☃")
    hello, snowman = sqs_event(sqlite.claim("q", 2, 30))["Records"]
    assert hello["md5OfBody"] == "5d41402abc4b2a76b9719d911017c592"
    assert snowman["md5OfBody"] == hashlib.md5(b"\xe2\x98\x83").hexdigest()
