"""sqs_event: the event Lambda's SQS event source mapping sends, for messages claimed from a
real backend."""

from __future__ import annotations

import base64
import hashlib
import json
import sqlite3
import uuid

import pytest
from moto.sqs.models import Message as MotoMessage

from squall.aws import ACCOUNT, REGION
from squall.events.sqs import md5_of_message_attributes, sqs_event
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
    assert first.keys() == RECORD_KEYS | {"md5OfMessageAttributes"}  # only a message with attributes has it
    assert second.keys() == RECORD_KEYS
    for record, m in zip(event["Records"], messages, strict=True):
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


HELLO = base64.b64encode(b"Hello binary world!").decode()
#: (attributes, digest) pairs published with aws-md5-of-message-attributes, checked against SQS
PUBLISHED = [
    ({"attribName1": {"dataType": "String", "stringValue": "attribValue 1"}}, "19e27d4e946b072f3f58da80d94fd778"),
    ({"customNumberTypeAttrib": {"dataType": "Number.float", "stringValue": "4563442423554324324264524243.32543234"}},
     "9fe1b90bbd9965bdf77bac517c7d2495"),
    ({"binaryAttribute": {"dataType": "Binary", "binaryValue": HELLO}}, "31a92b15d92f8db860eda32aceb656c3"),
    ({"attribName1": {"dataType": "String", "stringValue": "attribValue 1"},
      "customNumberTypeAttrib": {"dataType": "Number.float", "stringValue": "4563442423554324324264524243.32543234"},
      "binaryAttribute": {"dataType": "Binary", "binaryValue": HELLO}}, "c932db14a896c663f83c260297d594ff"),
]


@pytest.mark.parametrize(("attributes", "digest"), PUBLISHED)
def test_md5_of_message_attributes_matches_published_digests(attributes, digest):
    assert md5_of_message_attributes(attributes) == digest


def _moto_md5(attributes: dict) -> str:
    """moto's own implementation of the digest, fed the SendMessage form of the attributes."""
    message = MotoMessage("id", "body")
    message.message_attributes = {
        name: {"DataType": a["dataType"], **({"StringValue": a["stringValue"]} if "stringValue" in a else
                                           {"BinaryValue": base64.b64decode(a["binaryValue"])})}
        for name, a in attributes.items()}
    return message.attribute_md5


def test_md5_of_message_attributes_agrees_with_moto_on_names_order_unicode_and_binary():
    attributes = {
        "b-name": {"dataType": "String", "stringValue": "héllo ☃"},
        "A.name": {"dataType": "Number", "stringValue": "-3.25"},
        "a_name": {"dataType": "String.custom", "stringValue": "x" * 300},
        "Z": {"dataType": "Binary.jpeg", "binaryValue": base64.b64encode(bytes(range(256))).decode()},
    }
    assert md5_of_message_attributes(attributes) == _moto_md5(attributes)
    # each part counts: a changed name, type or value changes the digest
    for changed in ({**attributes, "b-name": {**attributes["b-name"], "stringValue": "hello"}},
                    {**attributes, "A.name": {**attributes["A.name"], "dataType": "String"}},
                    {k.upper(): v for k, v in attributes.items()}):
        assert md5_of_message_attributes(changed) == _moto_md5(changed) != md5_of_message_attributes(attributes)


def test_md5_of_message_attributes_of_the_attributes_squall_stores(claimed):
    _, messages = claimed
    record = sqs_event(messages)["Records"][0]
    assert record["md5OfMessageAttributes"] == _moto_md5(record["messageAttributes"])


def test_message_ids_are_canonical_uuids_on_both_backends(backend):
    ids = backend.enqueue_batch("q", [("a", None, 0), ("b", None, 0)]) + [backend.enqueue("q", "c")]
    assert [str(uuid.UUID(i)) for i in ids] == ids and len(set(ids)) == 3
    assert [m.id for m in backend.claim("q", 3, 30)] == ids


def test_a_message_stored_with_an_old_hex_id_is_still_delivered_acked_and_dead_lettered(sqlite, tmp_path):
    old = uuid.uuid4().hex  # ids were 32 hex characters before they were UUIDs
    with sqlite3.connect(tmp_path / "s.db") as conn:
        conn.execute("INSERT INTO messages (id, queue, body, attributes, sent_at, visible_at) "
                     "VALUES (?, 'q', 'old', '{}', 0, 0)", (old,))
    [m] = sqlite.claim("q", 1, 0)
    assert sqs_event([m])["Records"][0]["messageId"] == old
    assert sqlite.dead_letter("q", m.receipt, "q-dlq") and sqlite.redrive("q-dlq", "q") == 1
    [again] = sqlite.claim("q", 1, 30)
    assert again.id == old and sqlite.ack("q", [again.receipt]) == 1
