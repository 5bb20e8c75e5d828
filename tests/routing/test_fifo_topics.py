"""FIFO topics (SNS FIFO) end to end on real nodes, SQLite and Redis: a publish with a
message group and a deduplication id reaches every subscribed queue in one commit; FIFO
queues keep each group in publish order through to their consumer; a deduplication id
seen in the last five minutes is accepted and delivered to nobody, with the original's
MessageId and SequenceNumber as the answer; content-based deduplication; the SNS FIFO
envelope, parsed with Powertools' models; `squall publish --group-id --dedup-id`; a node
SIGKILLed mid-run loses nothing and keeps each group's order.
"""

from __future__ import annotations

import json

import pytest
from aws_lambda_powertools.utilities.parser.models import SnsNotificationModel, SqsModel

from squall.backends import open_backend
from tests.routing.test_fifo import assert_in_order
from tests.support import NodeProcess, platform_tracebacks, squall, wait_until, write_app

APP = """
    import json, os, time
    from squall import App

    app = App("fifo-topics")
    app.topic("prices.fifo", content_based_deduplication=True)
    app.subscribe_queue("orders.fifo", "ledger.fifo")
    app.subscribe_queue("orders.fifo", "paid.fifo", raw_message_delivery=True, filter_policy={"kind": ["paid"]})
    app.subscribe_queue("orders.fifo", "audit")  # a standard queue: best-effort order, as SNS allows
    app.subscribe_queue("prices.fifo", "prices.fifo")
    PAUSE = float(os.environ.get("LEDGER_PAUSE", "0"))

    @app.on_queue("ledger.fifo", batch_size=5, max_concurrency=4, visibility_timeout=4)
    def ledger(event, ctx):
        \"\"\"Append each record's n to its group's log, with the queue's and the topic's
        sequence numbers; keep the first record of each n whole.\"\"\"
        log = ctx.table("ledger")
        for record in event["Records"]:
            envelope = json.loads(record["body"])
            n = json.loads(envelope["Message"])["n"]
            group = record["attributes"]["MessageGroupId"]
            entry = [n, record["attributes"]["SequenceNumber"], envelope["SequenceNumber"]]
            item = log.get_item(f"log:{group}")
            if item is None:
                log.put(f"log:{group}", [entry], if_absent=True)
            else:
                log.put(f"log:{group}", item.value + [entry], if_version=item.version)
            log.put(f"record:{group}:{n}", record)
            time.sleep(PAUSE)

    @app.http("POST", "/publish")
    def publish(event, ctx):
        body = json.loads(event["body"])
        result = ctx.publish(body["topic"], body["message"], body.get("attributes"), group_id=body.get("group"),
                             dedup_id=body.get("dedup"))
        return {"id": result, "sequence": result.sequence_number}
"""

GROUPS = ["a", "b", "c"]
#: what SNS FIFO writes into a subscribed queue (Powertools' captured snsSqsFifoEvent.json):
#: the publish's SequenceNumber, no signature fields
FIFO_ENVELOPE_KEYS = {"Type", "MessageId", "SequenceNumber", "TopicArn", "Message", "Timestamp", "UnsubscribeURL"}


def post(node: NodeProcess, topic: str, message: str, group: str | None, dedup: str | None = None,
         attributes: dict | None = None) -> dict:
    with node.client() as client:
        response = client.post("/publish", json={"topic": topic, "message": message, "group": group,
                                                 "dedup": dedup, "attributes": attributes})
    assert response.status_code == 200, response.text
    return response.json()


def publish_interleaved(node: NodeProcess, count: int) -> dict[tuple[str, int], dict]:
    """`count` messages to each group, the groups interleaved; every third one paid."""
    return {(group, n): post(node, "orders.fifo", json.dumps({"n": n}), group, f"{group}-{n}",
                             {"kind": "paid" if n % 3 == 0 else "other"})
            for n in range(count) for group in GROUPS}


def logs(store) -> dict[str, list]:
    return {item.key.removeprefix("log:"): item.value for item in store.table_scan("ledger", prefix="log:")}


def complete(store, count: int) -> dict[str, list] | None:
    found = logs(store)
    return found if all(len({n for n, _, _ in found.get(g, [])}) == count for g in GROUPS) else None


def check_each_group_in_order(found: dict[str, list], count: int) -> None:
    for group in GROUPS:
        assert_in_order(found[group], count)
        # the topic numbered the group's publishes in the same order as the queue
        first_deliveries = list({n: sns for n, _, sns in found[group]}.values())
        assert first_deliveries == sorted(first_deliveries) and len(set(first_deliveries)) == count


@pytest.fixture(params=["sqlite", "redis"])
def url(request, tmp_path) -> str:
    return f"sqlite:///{tmp_path}/state.db" if request.param == "sqlite" else request.getfixturevalue("redis_url")


def test_a_fifo_topic_delivers_each_group_in_order_once(tmp_path, url):
    app = write_app(tmp_path, APP)
    with NodeProcess(app, backend=url) as node:
        published = publish_interleaved(node, 10)
        first = published[("a", 0)]
        assert len(first["sequence"]) == 20 and first["sequence"].isdigit()
        # a duplicate within five minutes: accepted, delivered to nobody, the original's answer
        assert post(node, "orders.fifo", json.dumps({"n": 99}), "z", "a-0") == first
        # content-based: the message's SHA-256 is the deduplication id
        price = post(node, "prices.fifo", '{"tea": 4.5}', "tea")
        assert post(node, "prices.fifo", '{"tea": 4.5}', "other-group") == price
        assert post(node, "prices.fifo", '{"tea": 4.6}', "tea")["sequence"] > price["sequence"]
        store = open_backend(url)
        try:
            found = wait_until(lambda: complete(store, 10), timeout=30, message="every group in the ledger")
            check_each_group_in_order(found, 10)
            assert all(len(found[g]) == 10 for g in GROUPS)  # nothing twice, the duplicate nowhere

            # the record as Lambda's SQS event source gives it, the body SNS FIFO's envelope
            record = store.table_get("ledger", "record:a:0").value
            assert record["attributes"]["MessageGroupId"] == "a"
            assert record["attributes"]["MessageDeduplicationId"] == "a-0"  # the topic's, passed on
            parsed = SqsModel.model_validate({"Records": [record]}).Records[0]
            envelope = json.loads(parsed.body)
            assert set(envelope) == FIFO_ENVELOPE_KEYS | {"MessageAttributes"}
            assert (envelope["MessageId"], envelope["SequenceNumber"]) == (first["id"], first["sequence"])
            assert envelope["TopicArn"] == "arn:aws:sns:us-east-1:000000000000:orders.fifo"
            assert envelope["MessageAttributes"] == {"kind": {"Type": "String", "Value": "paid"}}
            sns = SnsNotificationModel.model_validate(envelope)
            assert sns.Signature is None and sns.Message == json.dumps({"n": 0})

            # raw delivery, filtered: the paid messages themselves, in their groups
            paid = store.peek("paid.fifo", 100)
            assert sorted((m.group, json.loads(m.body)["n"]) for m in paid) == [
                (g, n) for g in GROUPS for n in (0, 3, 6, 9)]
            assert {m.dedup_id for m in paid if m.group == "b"} == {"b-0", "b-3", "b-6", "b-9"}
            assert all(m.attributes["kind"]["stringValue"] == "paid" for m in paid)
            # the standard queue gets every message once, no group
            audit = store.peek("audit", 100)
            assert len(audit) == 30 and {m.group for m in audit} == {None}
            assert {json.loads(m.body)["SequenceNumber"] for m in audit} == {
                p["sequence"] for p in published.values()}
            assert [json.loads(m.body)["Message"] for m in store.peek("prices.fifo", 10)] == [
                '{"tea": 4.5}', '{"tea": 4.6}']
        finally:
            store.close()
        assert platform_tracebacks(node.log()) == 0

        # the command line: --group-id and --dedup-id; a duplicate answers the original
        again = squall("publish", "orders.fifo", '{"n": 0}', "--group-id", "a", "--dedup-id", "a-0", "--backend", url)
        assert again.returncode == 0, again.stderr
        assert again.stdout.split() == [first["id"], first["sequence"]]
        new = squall("publish", "orders.fifo", '{"n": 10}', "--group-id", "a", "--dedup-id", "a-10",
                     "-a", "kind=other", "--backend", url)
        assert new.returncode == 0 and new.stdout.split()[1] > max(p["sequence"] for p in published.values())
        for args, reason in [(("orders.fifo", "m", "--dedup-id", "x"), "group_id is required"),
                             (("orders.fifo", "m", "--group-id", "g"), "dedup_id is required (unless the topic "
                                                                       "has content_based_deduplication)"),
                             (("orders.fifo", "m", "--group-id", "a b", "--dedup-id", "x"), "invalid group_id"),
                             (("prices.fifo", "m"), "group_id is required")]:
            refused = squall("publish", *args, "--backend", url)
            assert refused.returncode == 1 and reason in refused.stderr, refused.stderr
        store = open_backend(url)
        try:
            wait_until(lambda: len(logs(store)["a"]) == 11, timeout=10, message="the CLI's message in the ledger")
        finally:
            store.close()
    rows = {line.split()[2]: line.split() for line in squall("topics", "--backend", url).stdout.splitlines()[1:]
            if line.startswith("orders.fifo")}
    assert {endpoint: row[1] for endpoint, row in rows.items()} == {endpoint: "31" for endpoint in rows}
    assert {endpoint: (row[5], row[6]) for endpoint, row in rows.items()} == {
        "queue:ledger.fifo": ("31", "0"), "queue:paid.fifo": ("12", "19"), "queue:audit": ("31", "0")}


def test_a_node_killed_mid_run_loses_nothing_and_keeps_each_groups_order(tmp_path, url, monkeypatch):
    app = write_app(tmp_path, APP)
    monkeypatch.setenv("LEDGER_PAUSE", "0.05")
    node = NodeProcess(app, backend=url).start()
    store = open_backend(url)
    try:
        publish_interleaved(node, 15)
        wait_until(lambda: sum(len(log) for log in logs(store).values()) >= 5, timeout=15, message="the ledger at work")
        node.kill()  # SIGKILL mid-batch: the batches in flight come back after the visibility timeout
        with NodeProcess(app, backend=url):
            found = wait_until(lambda: complete(store, 15), timeout=40, message="every group after the restart")
            check_each_group_in_order(found, 15)
            wait_until(lambda: store.queue_stats("ledger.fifo").total == 0, timeout=10, message="every message acked")
        assert store.queue_stats("ledger-dlq.fifo").total == 0
        assert store.queue_stats("audit").total == 45 and store.queue_stats("paid.fifo").total == 15
    finally:
        store.close()
