"""FIFO queues' pure parts: the declaration's checks, Lambda's batchItemFailures rule on a
FIFO queue, the records' FIFO attributes (checked with Powertools' parser models), and the
send-side rules of SQS FIFO (on a real SQLite backend)."""

from __future__ import annotations

import hashlib

import pytest
from aws_lambda_powertools.utilities.parser.models import SqsModel

from squall.backends import QueueConfig
from squall.errors import ConfigError
from squall.events.sqs import sqs_event
from squall.services import Queue, SendEntry
from squall.sources.queues import QueueTrigger, fifo_batch_failures
from tests.unit.support import invocation, message


def fifo_message(id: str, group: str):
    return message(id, queue="q.fifo")._replace(group=group, dedup_id=f"d-{id}", sequence=f"{int(id[1:]):020d}")


def failures(*ids: str) -> dict[str, object]:
    return {"batchItemFailures": [{"itemIdentifier": i} for i in ids]}


# ---- the declaration ------------------------------------------------------------------


@pytest.mark.parametrize("options, complaint", [
    ({"queue": "q.fifo", "dlq": "q-dlq"}, r"invalid dlq 'q-dlq' for queue 'q.fifo': the dead-letter queue of a "
                                          r"FIFO queue must be a FIFO queue too"),
    ({"queue": "q", "dlq": "q-dlq.fifo"}, r"dead-letter queue of a standard queue must be a standard queue too"),
    ({"queue": "q", "content_based_deduplication": True}, r"content_based_deduplication is only valid for FIFO"),
    ({"queue": "q.fifo", "content_based_deduplication": "yes"}, r"invalid content_based_deduplication 'yes'"),
    ({"queue": "q" * 76 + ".fifo"}, r"at most 80 characters, '.fifo' included"),
    ({"queue": "q.fifo", "batch_size": 11}, r"invalid batch_size for FIFO queue 'q.fifo' 11: must be an integer "
                                            r"from 1 to 10"),
])
def test_bad_fifo_declarations_name_the_problem(options, complaint):
    with pytest.raises(ConfigError, match=complaint):
        QueueTrigger(**options)


def test_a_fifo_queues_default_dlq_is_fifo():
    assert QueueTrigger(queue="orders.fifo").dlq == "orders-dlq.fifo"
    assert QueueTrigger(queue="orders.fifo", dlq="failed.fifo").dlq == "failed.fifo"


# ---- batchItemFailures ----------------------------------------------------------------


BATCH = [fifo_message("m1", "a"), fifo_message("m2", "b"), fifo_message("m3", "a"), fifo_message("m4", "b"),
         fifo_message("m5", "c")]


@pytest.mark.parametrize("reported, retried", [
    ((), set()),
    (("m3",), {"m3"}),  # the last of its group: nothing behind it
    (("m1",), {"m1", "m3"}),  # and the later message of group a
    (("m2", "m5"), {"m2", "m4", "m5"}),
    (("m4", "m2"), {"m2", "m4"}),
])
def test_a_failure_fails_the_rest_of_its_group_in_the_batch(reported, retried):
    assert fifo_batch_failures(invocation(failures(*reported)), BATCH) == retried


def test_whole_batch_failures_stay_whole():
    assert fifo_batch_failures(invocation(failures("nope")), BATCH) == {m.id for m in BATCH}


# ---- the records ----------------------------------------------------------------------


def test_fifo_records_carry_lambdas_fifo_attributes_and_parse_with_powertools():
    event = sqs_event([fifo_message("m7", "orders-1")])
    attributes = event["Records"][0]["attributes"]
    assert attributes["MessageGroupId"] == "orders-1"
    assert attributes["MessageDeduplicationId"] == "d-m7"
    assert attributes["SequenceNumber"] == "00000000000000000007"
    assert event["Records"][0]["eventSourceARN"].endswith(":q.fifo")
    parsed = SqsModel.model_validate(event).Records[0].attributes
    assert (parsed.MessageGroupId, parsed.MessageDeduplicationId, parsed.SequenceNumber) == (
        "orders-1", "d-m7", "00000000000000000007")


def test_standard_records_have_no_fifo_attributes():
    assert "MessageGroupId" not in sqs_event([message("m1")])["Records"][0]["attributes"]


# ---- sending ---------------------------------------------------------------------------


@pytest.fixture
def queues(sqlite):
    sqlite.queue_declare("plain", QueueConfig())
    sqlite.queue_declare("explicit.fifo", QueueConfig())
    sqlite.queue_declare("content.fifo", QueueConfig(content_based_deduplication=True))
    return sqlite


@pytest.mark.parametrize("queue, kwargs, complaint", [
    ("explicit.fifo", {}, r"FIFO queue 'explicit.fifo' needs a group_id \(MessageGroupId\)"),
    ("explicit.fifo", {"group_id": "g"}, r"needs a dedup_id \(MessageDeduplicationId\) unless it is declared with "
                                         r"content_based_deduplication=True"),
    ("explicit.fifo", {"group_id": "g", "dedup_id": "d", "delay_seconds": 5},
     r"delay_seconds 5 is not valid for FIFO queue"),
    ("explicit.fifo", {"group_id": "has space", "dedup_id": "d"}, r"invalid group_id 'has space': must be 1 to 128"),
    ("explicit.fifo", {"group_id": "g" * 129, "dedup_id": "d"}, r"invalid group_id"),
    ("explicit.fifo", {"group_id": "", "dedup_id": "d"}, r"invalid group_id ''"),
    ("explicit.fifo", {"group_id": "g", "dedup_id": "é"}, r"invalid dedup_id 'é'"),
    ("plain", {"group_id": "g"}, r"group_id 'g' is not valid for standard queue 'plain'"),
    ("plain", {"dedup_id": "d"}, r"dedup_id 'd' is not valid for standard queue 'plain'"),
])
def test_sqs_fifo_send_rules(queues, queue, kwargs, complaint):
    with pytest.raises(ConfigError, match=complaint):
        Queue(queues, queue).send("body", **kwargs)
    assert queues.queue_stats(queue).total == 0


def test_punctuation_is_allowed_in_ids(queues):
    punctuation = "!\"#$%&'()*+,-./:;<=>?@[\\]^_`{|}~"
    Queue(queues, "explicit.fifo").send("x", group_id=punctuation, dedup_id="a" * 128)
    [m] = queues.claim("explicit.fifo", 10, 30)
    assert (m.group, m.dedup_id) == (punctuation, "a" * 128)


def test_content_based_deduplication_is_the_bodys_sha256(queues):
    queue = Queue(queues, "content.fifo")
    first = queue.send('{"n": 1}', group_id="g")
    assert queue.send('{"n": 1}', group_id="other") == first  # the body alone decides
    assert queue.send('{"n": 1}', group_id="g", dedup_id="explicit") != first  # an explicit id wins
    [m, _] = queues.claim("content.fifo", 10, 30)
    assert m.dedup_id == hashlib.sha256(b'{"n": 1}').hexdigest()


def test_send_batch_takes_entries_with_groups(queues):
    ids = Queue(queues, "explicit.fifo").send_batch([SendEntry("a1", "a", "1"), SendEntry("b1", "b", "2"),
                                                     SendEntry("again", "a", "1")])
    assert ids[0] == ids[2]
    assert [(m.body, m.group) for m in queues.claim("explicit.fifo", 10, 30)] == [("a1", "a"), ("b1", "b")]
    with pytest.raises(ConfigError, match="needs a group_id"):
        Queue(queues, "explicit.fifo").send_batch(["bare body"])


# ---- the test harness ------------------------------------------------------------------


def test_the_harness_delivers_a_fifo_queue_group_by_group_and_holds_a_failing_group():
    from squall import App
    from squall.testing import Harness

    app = App("fifo-harness")
    delivered: list[tuple[str, str]] = []

    @app.on_queue("steps.fifo", batch_size=2, max_receive_count=2, visibility_timeout=5)
    def steps(event, ctx):
        for record in event["Records"]:
            if record["body"] == "boom":
                raise ValueError("boom")
            delivered.append((record["attributes"]["MessageGroupId"], record["body"]))

    with Harness(app) as harness:
        ids = [harness.send("steps.fifo", body, group_id=group, dedup_id=f"{group}-{body}")
               for group, body in [("a", "boom"), ("b", "b1"), ("a", "a1"), ("b", "b2"), ("b", "b3")]]
        assert harness.send("steps.fifo", "again", group_id="b", dedup_id="b-b1") == ids[1]  # a duplicate
        harness.drain("steps.fifo")
        assert [body for group, body in delivered if group == "b"] == ["b1", "b2", "b3"]
        # "a1" came with "boom" in each of its two receives, so it went to the DLQ with it, as on SQS
        assert [m.body for m in harness.dead_letters("steps.fifo")] == ["boom", "a1"]
        assert ("a", "a1") not in delivered


def test_fifo_batches_never_split_a_group():
    from squall.dispatch.consumer import ConsumerConfig, QueueConsumer

    config = ConsumerConfig("q.fifo", "f", 3, 5, 30, "q-dlq.fifo", 4, retry_base=30)
    consumer = QueueConsumer(None, None, config, None)  # type: ignore[arg-type] - only _batches runs
    # two claims of at most 3: [a a b] then [c c]; a claim never holds a group another holds
    claimed = [fifo_message("m1", "a"), fifo_message("m2", "a"), fifo_message("m3", "b"), fifo_message("m4", "c"),
               fifo_message("m5", "c")]
    assert [[m.id for m in batch] for batch in consumer._batches(claimed)] == [["m1", "m2", "m3"], ["m4", "m5"]]
    assert [[m.id for m in batch] for batch in consumer._batches(claimed[1:])] == [["m2", "m3"], ["m4", "m5"]]
