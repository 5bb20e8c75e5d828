"""Topic declarations and Publish's checks, as SNS refuses them; the harness's publish."""

from __future__ import annotations

import json

import pytest

from squall import App
from squall.errors import ConfigError, InvalidFilterPolicy, PayloadTooLarge
from squall.sources.publishing import check_attributes, check_fifo_ids, check_message, check_subject
from squall.sources.topics import TopicAttributes, TopicRecord, TopicSubscription, check_topic_name
from squall.testing import Harness


@pytest.mark.parametrize("name", ["a", "A-b_9", "x" * 256, "orders.fifo", "x" * 251 + ".fifo"])
def test_topic_names_sns_allows(name):
    assert check_topic_name(name) == name


@pytest.mark.parametrize("name", ["", "x" * 257, "a.b", "a b", "x" * 252 + ".fifo", ".fifo", 3, None])
def test_topic_names_sns_refuses(name):
    with pytest.raises(ConfigError, match="invalid topic name"):
        check_topic_name(name)


@pytest.mark.parametrize(("declaration", "reason"), [
    (dict(topic="t", queue="q", dlq="d"), "dlq= is for function subscriptions"),
    (dict(topic="t", raw_message_delivery=True), "raw_message_delivery is for queue subscriptions"),
    (dict(topic="t.fifo"), "FIFO topics deliver to SQS queues only"),
    (dict(topic="t", queue="q.fifo"), "can only subscribe to a FIFO topic"),
    (dict(topic="t", queue="bad queue"), "invalid queue name"),
    (dict(topic="t", raw_message_delivery="yes", queue="q"), "must be True or False"),
])
def test_bad_subscriptions_fail_at_declaration(declaration, reason):
    with pytest.raises(ConfigError, match=reason):
        TopicSubscription(**declaration)


def test_policies_are_checked_and_kept_as_compact_json():
    assert TopicSubscription(topic="t", filter_policy={"b": ["x"], "a": [1]}).filter_policy == '{"b":["x"],"a":[1]}'
    with pytest.raises(InvalidFilterPolicy, match="FilterPolicyScope"):
        TopicSubscription(topic="t", filter_policy_scope="Body")
    with pytest.raises(InvalidFilterPolicy, match="FilterPolicy"):
        TopicSubscription(topic="t", filter_policy={"a": {"b": ["nested needs MessageBody"]}})


def test_a_queue_subscribes_once():
    app = App("t")
    app.subscribe_queue("t", "q")
    with pytest.raises(ConfigError, match="queue 'q' is already subscribed to topic 't'"):
        app.subscribe_queue("t", "q")


@pytest.mark.parametrize(("attributes", "reason"), [
    ({f"a{i}": "v" for i in range(11)}, "at most 10 attributes"),
    ({".a": "v"}, "invalid message attribute name"),
    ({"a.": "v"}, "invalid message attribute name"),
    ({"a..b": "v"}, "invalid message attribute name"),
    ({"x" * 257: "v"}, "invalid message attribute name"),
    ({"AWS.x": "v"}, "are reserved"),
    ({"amazon.x": "v"}, "are reserved"),
    ({"a": {"DataType": "Float", "StringValue": "1"}}, "DataType must be one of"),
    ({"a": {"DataType": "Number", "StringValue": "one"}}, "'one' is not a Number"),
    ({"a": {"DataType": "String", "StringValue": ""}}, "non-empty StringValue"),
    ({"a": {"DataType": "String.Array", "StringValue": "[{}]"}}, "String.Array must be a JSON array"),
    ({"a": {"DataType": "Binary", "BinaryValue": "not base64!"}}, "bytes or base64"),
    ({"a": ""}, "must be a non-empty string"),
    ({"a": True}, "must be a non-empty string"),
])
def test_attributes_publish_refuses(attributes, reason):
    with pytest.raises(ConfigError, match=reason):
        check_attributes(attributes)


def test_attributes_in_publishs_form_and_plain():
    assert check_attributes({"s": "x", "n": 2.5, "l": ["a", 1], "b": {"DataType": "Binary", "BinaryValue": b"\x00"},
                             "p": {"DataType": "String", "StringValue": "y"}}) == {
        "s": {"DataType": "String", "StringValue": "x"}, "n": {"DataType": "Number", "StringValue": "2.5"},
        "l": {"DataType": "String.Array", "StringValue": '["a", 1]'},
        "b": {"DataType": "Binary", "BinaryValue": "AA=="}, "p": {"DataType": "String", "StringValue": "y"}}


def test_message_size_counts_the_attributes():
    attributes = check_attributes({"k": "v" * 10})
    check_message("m" * (256 * 1024 - 17), attributes)  # k + String + v * 10
    with pytest.raises(PayloadTooLarge, match="SNS's limit is 262144 bytes"):
        check_message("m" * (256 * 1024 - 16), attributes)
    with pytest.raises(ConfigError, match="must not be empty"):
        check_message("", {})
    with pytest.raises(ConfigError, match="must be a string"):
        check_message({"a": 1}, {})


@pytest.mark.parametrize("subject", ["", " leading space", "two\nlines", "x" * 101, "caf\u00e9", 5])
def test_subjects_sns_refuses(subject):
    with pytest.raises(ConfigError, match="invalid subject"):
        check_subject(subject)


def test_fifo_ids_required_on_fifo_topics_and_refused_on_standard_ones():
    fifo, standard = TopicRecord("t.fifo", ()), TopicRecord("t", ())
    content = TopicRecord("t.fifo", (), content_based_deduplication=True)
    assert check_fifo_ids(fifo, "m", "g", "d") == ("g", "d")
    assert check_fifo_ids(standard, "m", None, None) is None
    with pytest.raises(ConfigError, match="group_id is required"):
        check_fifo_ids(fifo, "m", None, "d")
    with pytest.raises(ConfigError, match="group_id is required"):
        check_fifo_ids(content, "m", None, None)
    with pytest.raises(ConfigError, match=r"dedup_id is required \(unless the topic has content_based_dedup"):
        check_fifo_ids(fifo, "m", "g", None)
    with pytest.raises(ConfigError, match="invalid dedup_id 'xxx"):
        check_fifo_ids(fifo, "m", "g", "x" * 129)
    with pytest.raises(ConfigError, match="invalid group_id 'a b'"):
        check_fifo_ids(fifo, "m", "a b", "d")
    with pytest.raises(ConfigError, match="dedup_id is only for FIFO topics"):
        check_fifo_ids(standard, "m", None, "d")
    # content-based: the SHA-256 of the message, not of its attributes; an explicit id wins
    assert check_fifo_ids(content, "hello", "g", None) == (
        "g", "2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824")
    assert check_fifo_ids(content, "hello", "g", "mine") == ("g", "mine")


@pytest.mark.parametrize(("declare", "reason"), [
    (dict(topic="t", content_based_deduplication=True), "content_based_deduplication is only for FIFO topics"),
    (dict(topic="t.fifo", content_based_deduplication="yes"), "must be True or False, not 'yes'"),
    (dict(topic="bad name.fifo"), "invalid topic name"),
])
def test_topic_attributes_sns_refuses(declare, reason):
    with pytest.raises(ConfigError, match=reason):
        TopicAttributes(**declare)


def test_a_topic_is_declared_once():
    app = App("twice")
    app.topic("t.fifo", content_based_deduplication=True)
    with pytest.raises(ConfigError, match="topic 't.fifo' is declared twice"):
        app.topic("t.fifo")


def test_the_harness_publishes_and_shows_each_subscriptions_deliveries():
    app = App("harnessed")
    got: list[str] = []

    @app.on_topic("orders", filter_policy={"kind": ["paid"]})
    def paid(event, ctx):
        got.append(event["Records"][0]["Sns"]["Message"])

    @app.on_topic("orders")
    def broken(event, ctx):
        raise RuntimeError("no")

    app.subscribe_queue("orders", "audit")
    with Harness(app) as h:
        h.publish("orders", "one", {"kind": "paid"})
        h.publish("orders", "two", {"kind": "refund"})
        h.drain()
        deliveries = h.deliveries("orders")
    assert got == ["one"]
    assert (deliveries["function:paid"].delivered, deliveries["function:paid"].filtered) == (1, 1)
    assert (deliveries["function:broken"].delivered, deliveries["function:broken"].failed) == (2, 2)
    assert deliveries["queue:audit"].delivered == 2


def test_the_harness_publishes_to_a_fifo_topic_and_its_fifo_queue_keeps_each_group_in_order():
    app = App("fifo-harnessed")
    got: list[tuple[str, str, str]] = []
    app.subscribe_queue("orders.fifo", "ledger.fifo")

    @app.on_queue("ledger.fifo", batch_size=4)
    def ledger(event, ctx):
        for record in event["Records"]:
            envelope = json.loads(record["body"])
            got.append((record["attributes"]["MessageGroupId"], envelope["Message"], envelope["SequenceNumber"]))

    with Harness(app) as h:
        answers = [h.publish("orders.fifo", f"{group}{n}", group_id=group, dedup_id=f"{group}{n}")
                   for n in range(5) for group in "xy"]
        duplicate = h.publish("orders.fifo", "changed", group_id="x", dedup_id="x0")
        assert (duplicate, duplicate.sequence_number) == (answers[0], answers[0].sequence_number)
        h.drain("ledger.fifo")
        assert h.deliveries("orders.fifo")["queue:ledger.fifo"].delivered == 10
    for offset, group in enumerate("xy"):  # the answers alternate x, y
        mine = [(message, sequence) for g, message, sequence in got if g == group]
        assert [message for message, _ in mine] == [f"{group}{n}" for n in range(5)]
        sequences = [a.sequence_number for a in answers[offset::2]]
        assert [sequence for _, sequence in mine] == sequences == sorted(sequences)
