"""FIFO queues and topics as targets of bus rules and asynchronous destinations, as AWS has them.

- A rule's FIFO queue target takes EventBridge's SqsParameters.MessageGroupId
  (`message_group_id`), and the queue must deduplicate by content (EventBridge sends no
  deduplication id): the events arrive in that group, an identical body within five minutes
  stored once. On a real node, on SQLite and on Redis.
- A rule's FIFO topic target takes SnsParameters.MessageGroupId the same way (the topic
  deduplicating by content), and the topic's FIFO queue subscription gets the events in
  that group.
- EventBridge's dead-letter queues are standard queues; Lambda's destinations are standard
  queues and topics only. Each is refused at declaration, naming the option.
"""

from __future__ import annotations

import json

import pytest
from aws_lambda_powertools.utilities.parser.models import SqsModel

from squall import App
from squall.backends import QueueConfig, open_backend
from squall.backends.fifo import content_dedup_id
from squall.dispatch.targets import Target, TargetKind, deliver
from squall.errors import ConfigError
from tests.support import NodeProcess, squall, table, wait_until, write_app

APP = """
    import json
    from squall import App

    app = App("fifo-targets")

    @app.on_queue("orders.fifo", content_based_deduplication=True)
    def orders(event, ctx):
        ctx.table("events").put(event["Records"][0]["messageId"], event)
        for record in event["Records"]:
            ctx.table("got").put(record["messageId"], record)

    app.rule("to-fifo", pattern={"source": ["shop"]},
             targets=[{"queue": "orders.fifo", "message_group_id": "orders", "input_path": "$.detail"}])
"""


@pytest.mark.parametrize("kind", ["sqlite", "redis"])
def test_a_rule_sends_to_a_fifo_queue_in_its_group_deduplicated_by_content(tmp_path, kind, request):
    if kind == "redis":
        import redis

        url = f"redis://127.0.0.1:{request.getfixturevalue('redis_server').port}/12"
        redis.Redis.from_url(url).flushdb()
    else:
        url = f"sqlite:///{tmp_path}/.squall/state.db"
    path = write_app(tmp_path, APP)
    entries = [{"Source": "shop", "DetailType": "order", "Detail": json.dumps({"n": n})} for n in (1, 2, 1)]
    with NodeProcess(path, backend=None if kind == "sqlite" else url):
        result = squall("put-events", "--backend", url, "--entries", json.dumps(entries), cwd=tmp_path)
        assert result.returncode == 0, result.stderr
        assert json.loads(result.stdout)["FailedEntryCount"] == 0
        got = wait_until(lambda: len(table(url, "got")) == 2 and table(url, "got"), timeout=30,
                         message="both distinct events in the FIFO queue")
    records = sorted(got.values(), key=lambda r: r["attributes"]["SequenceNumber"])
    assert sorted(r["body"] for r in records) == ['{"n":1}', '{"n":2}']  # the third was a duplicate of the first
    for record in records:
        attributes = record["attributes"]
        assert attributes["MessageGroupId"] == "orders"
        assert attributes["MessageDeduplicationId"] == content_dedup_id(record["body"])
        assert attributes["SequenceNumber"].isdigit()
    for event in table(url, "events").values():
        SqsModel.model_validate(event)


def test_a_fifo_queue_that_stopped_deduplicating_by_content_fails_the_delivery(tmp_path):
    """Checked at delivery as well, since the registry is shared: the delivery fails (and is
    retried, then dead-lettered) as SendMessage fails on AWS."""
    store = open_backend(f"sqlite:///{tmp_path}/state.db")
    try:
        store.queue_declare("plain.fifo", QueueConfig())
        with pytest.raises(ConfigError, match="needs content_based_deduplication=True"):
            deliver(store, Target(TargetKind.QUEUE, "plain.fifo"), "{}", None, "g")
        with pytest.raises(ConfigError, match="needs a message group id"):
            deliver(store, Target(TargetKind.QUEUE, "plain.fifo"), "{}")
        with pytest.raises(ConfigError, match="a message group is only for a FIFO queue"):
            deliver(store, Target(TargetKind.QUEUE, "plain"), "{}", None, "g")
        assert store.queue_stats("plain.fifo").total == store.queue_stats("plain").total == 0
    finally:
        store.close()


TOPIC_APP = """
    from squall import App

    app = App("fifo-topic-target")
    app.topic("ledger.fifo", content_based_deduplication=True)

    @app.on_queue("entries.fifo")
    def entries(event, ctx):
        for record in event["Records"]:
            ctx.table("got").put(record["messageId"], record)

    app.subscribe_queue("ledger.fifo", "entries.fifo", raw_message_delivery=True)
    app.rule("to-topic", pattern={"source": ["bank"]},
             targets=[{"topic": "ledger.fifo", "message_group_id": "acct", "input_path": "$.detail"}])
"""


def test_a_rule_publishes_to_a_fifo_topic_in_its_group(tmp_path):
    """SnsParameters.MessageGroupId: the events reach the topic's FIFO queue in that group,
    an identical event within five minutes published once (the topic deduplicates by content)."""
    url = f"sqlite:///{tmp_path}/.squall/state.db"
    path = write_app(tmp_path, TOPIC_APP)
    entries = [{"Source": "bank", "DetailType": "tx", "Detail": json.dumps({"n": n})} for n in (1, 2, 1)]
    with NodeProcess(path):
        result = squall("put-events", "--backend", url, "--entries", json.dumps(entries), cwd=tmp_path)
        assert result.returncode == 0, result.stderr
        got = wait_until(lambda: len(table(url, "got")) == 2 and table(url, "got"), timeout=30,
                         message="both distinct events through the FIFO topic")
    assert sorted(r["body"] for r in got.values()) == ['{"n":1}', '{"n":2}']
    for record in got.values():
        SqsModel.model_validate({"Records": [record]})
        assert record["attributes"]["MessageGroupId"] == "acct"


DEDUP_QUEUE = 'app.on_queue("q.fifo", lambda e, c: None, name="consume", content_based_deduplication=True)\n'


@pytest.mark.parametrize(("declaration", "error"), [
    (DEDUP_QUEUE + 'app.rule("r", pattern={"source": ["x"]}, targets=[{"queue": "q.fifo"}])',
     "rule 'r' target 0: queue 'q.fifo' is FIFO: give the target a message_group_id "
     "(EventBridge's SqsParameters.MessageGroupId)"),
    ('app.rule("r", pattern={"source": ["x"]}, targets=[{"queue": "q", "message_group_id": "g"}])',
     "rule 'r' target 0: message_group_id is only for a FIFO queue or FIFO topic target"),
    ('app.rule("r", pattern={"source": ["x"]}, targets=[{"topic": "t", "message_group_id": "g"}])',
     "message_group_id is only for a FIFO queue or FIFO topic target (EventBridge's SqsParameters and "
     "SnsParameters), not topic:t"),
    (DEDUP_QUEUE + 'app.rule("r", pattern={"source": ["x"]}, targets=[{"queue": "q.fifo", '
     '"message_group_id": "g" * 101}])', "message_group_id is 101 characters; EventBridge allows 100"),
    (DEDUP_QUEUE + 'app.rule("r", pattern={"source": ["x"]}, targets=[{"queue": "q.fifo", '
     '"message_group_id": "with space"}])', "invalid rule 'r' target 0: message_group_id 'with space'"),
    ('app.rule("r", pattern={"source": ["x"]}, targets=[{"queue": "other.fifo", "message_group_id": "g"}])',
     "FIFO queue 'other.fifo' must be declared before the rule with content_based_deduplication=True"),
    ('app.on_queue("plain.fifo", lambda e, c: None, name="consume")\n'
     'app.rule("r", pattern={"source": ["x"]}, targets=[{"queue": "plain.fifo", "message_group_id": "g"}])',
     "FIFO queue 'plain.fifo' must be declared before the rule with content_based_deduplication=True"),
    ('app.topic("t.fifo", content_based_deduplication=True)\n'
     'app.rule("r", pattern={"source": ["x"]}, targets=[{"topic": "t.fifo"}])',
     "topic 't.fifo' is FIFO: give the target a message_group_id (EventBridge's SnsParameters.MessageGroupId)"),
    ('app.rule("r", pattern={"source": ["x"]}, targets=[{"topic": "t.fifo", "message_group_id": "g"}])',
     "FIFO topic 't.fifo' must be declared before the rule with content_based_deduplication=True (app.topic)"),
    ('app.rule("r", pattern={"source": ["x"]}, targets=[{"queue": "q", "dlq": "d.fifo"}])',
     "dlq 'd.fifo' is a FIFO queue; EventBridge's dead-letter queues are standard SQS queues"),
    ('@app.on_event({"source": ["x"]}, dlq="d.fifo")\ndef f(event, ctx): pass',
     "dlq 'd.fifo' is a FIFO queue"),
    ('@app.function(on_failure="topic:alerts.fifo")\ndef f(event, ctx): pass',
     "on_failure of 'f': topic:alerts.fifo is a FIFO topic; Lambda sends invocation records to standard SQS "
     "queues and SNS topics only"),
    ('@app.function(on_success="queue:done.fifo")\ndef f(event, ctx): pass',
     "on_success of 'f': queue:done.fifo is a FIFO queue"),
])
def test_fifo_targets_aws_refuses_are_refused_at_declaration(tmp_path, declaration, error):
    path = write_app(tmp_path, f"from squall import App\napp = App('bad')\n{declaration}\n")
    result = squall("invoke", str(path), "anything", cwd=tmp_path)
    assert result.returncode != 0
    assert error in result.stderr, result.stderr


def test_the_harness_delivers_a_rule_to_a_fifo_queue_in_put_order():
    """In the harness every delivery is stepped in turn, so the group keeps the put order."""
    from squall.testing import Harness

    app = App("harnessed-fifo")
    seen: list[tuple[str, str]] = []

    @app.on_queue("ledger.fifo", content_based_deduplication=True)
    def ledger(event, ctx):
        seen.extend((r["attributes"]["MessageGroupId"], json.loads(r["body"])["detail"]["n"]) for r in event["Records"])

    app.rule("ledger", pattern={"source": ["bank"]}, targets=[{"queue": "ledger.fifo", "message_group_id": "acct"}])
    with Harness(app) as harness:
        answer = harness.put_events([{"Source": "bank", "DetailType": "tx", "Detail": json.dumps({"n": n})}
                                     for n in range(5)])
        assert answer["FailedEntryCount"] == 0
        harness.drain()
    assert seen == [("acct", n) for n in range(5)]
