"""Topics (SNS) end to end on real nodes: a publish fans out to functions and queues.

One publish reaches every subscription its filter policy lets through, each on its own:
a failing subscriber is retried and dead-lettered while the others had theirs at once, a
slow one delays no other. Functions get the SNS event (checked with Powertools' SnsModel
and against AWS's sample event), queues the SNS envelope or, raw, the message itself.
Publishes are durable once they return (a node SIGKILLed right after, then restarted,
delivers each message once per subscription). `squall publish` and `squall topics`, and
an alarm whose target is a topic. On SQLite with one node, on Redis with two.
"""

from __future__ import annotations

import json
import time

import pytest
from aws_lambda_powertools.utilities.parser.models import SnsModel

from squall.backends import open_backend
from tests.support import NodeProcess, platform_tracebacks, squall, wait_until, write_app

APP = """
    import json, os, time, uuid
    from squall import App

    app = App("topics")
    PAUSED = os.environ.get("PAUSE_SUBSCRIBERS") == "1"

    def record(ctx, table, event):
        sns = event["Records"][0]["Sns"]
        ctx.table(table).put(f"{sns['MessageId']}/{uuid.uuid4().hex}", {
            "event": event, "traceparent": ctx.invocation_headers.get("traceparent"), "at": time.time()})

    @app.on_topic("orders", filter_policy={"kind": ["paid"]}, reserved_concurrency=0 if PAUSED else None)
    def billing(event, ctx):
        record(ctx, "billing", event)

    @app.on_topic("orders", filter_policy={"order": {"total": [{"numeric": [">=", 100]}]}},
                  filter_policy_scope="MessageBody", reserved_concurrency=0 if PAUSED else None)
    def big(event, ctx):
        record(ctx, "big", event)

    @app.on_topic("orders", dlq="orders-failed", timeout=10, reserved_concurrency=0 if PAUSED else None)
    def flaky(event, ctx):
        message = event["Records"][0]["Sns"]["Message"]
        ctx.table("attempts").put(f"{ctx.aws_request_id}/{uuid.uuid4().hex}", message)
        if "fail" in message:
            raise RuntimeError("flaky refuses " + message)
        if "slow" in message:
            time.sleep(3)
        record(ctx, "flaky", event)

    app.subscribe_queue("orders", "audit")
    app.subscribe_queue("orders", "audit-raw", raw_message_delivery=True, filter_policy={"kind": ["paid"]})

    @app.http("POST", "/publish")
    def publish(event, ctx):
        body = json.loads(event["body"])
        message_id = ctx.publish("orders", body["message"], body.get("attributes"), subject=body.get("subject"))
        return {"id": message_id, "traceparent": ctx.invocation_headers.get("traceparent")}

    @app.on_topic("alerts")
    def on_alert(event, ctx):
        record(ctx, "alerts", event)

    @app.http("GET", "/charge")
    def charge(event, ctx):
        return {"charged": True}

    app.alarm("charge-errors", metric="Errors", function="charge", threshold=3, period=10,
              treat_missing_data="notBreaching", target="topic:alerts")
"""

#: AWS's sample SNS event for Lambda (the Lambda developer guide's), the keys each level has
AWS_RECORD_KEYS = {"EventVersion", "EventSubscriptionArn", "EventSource", "Sns"}
AWS_SNS_KEYS = {"SignatureVersion", "Timestamp", "Signature", "SigningCertUrl", "MessageId", "Message",
                "MessageAttributes", "Type", "UnsubscribeUrl", "TopicArn", "Subject"}
#: AWS's example of what SNS writes into a subscribed queue ("Fanout to Amazon SQS queues")
AWS_ENVELOPE_KEYS = {"Type", "MessageId", "TopicArn", "Subject", "Message", "Timestamp", "SignatureVersion",
                     "Signature", "SigningCertURL", "UnsubscribeURL"}


def scan(url: str, table: str) -> list:
    store = open_backend(url)
    try:
        return [item for item in store.table_scan(table, limit=10000)]
    finally:
        store.close()


def by_message(url: str, table: str) -> dict[str, list[dict]]:
    found: dict[str, list[dict]] = {}
    for item in scan(url, table):
        found.setdefault(item.key.split("/")[0], []).append(item.value)
    return found


def publish(node: NodeProcess, message: str, attributes: dict | None = None, subject: str | None = None) -> dict:
    with node.client() as client:
        response = client.post("/publish", json={"message": message, "attributes": attributes, "subject": subject})
    assert response.status_code == 200, response.text
    return response.json()


def topics_table(url: str) -> dict[str, dict[str, str]]:
    result = squall("topics", "--backend", url)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    header = lines[0].split()
    rows = [dict(zip(header, line.split(), strict=True)) for line in lines[1:]]
    return {row["SUBSCRIPTION"]: row for row in rows if row["TOPIC"] == "orders"}


def check_fan_out(url: str, nodes: list[NodeProcess]) -> None:
    paid_big = json.dumps({"order": {"total": 150}})
    first = publish(nodes[0], paid_big, {"kind": "paid", "rank": 2}, subject="New order")
    refund = publish(nodes[-1], json.dumps({"order": {"total": 5}}), {"kind": "refund"})
    failing = publish(nodes[0], "please fail", {"kind": "paid"})
    slow = publish(nodes[-1], "slow one", {"kind": "paid"})
    published = time.time()

    # the others get the failing and the slow message at once, while flaky retries or sleeps
    wait_until(lambda: {failing["id"], slow["id"]} <= set(by_message(url, "billing")), timeout=10,
               message="billing to get every paid message")
    assert time.time() - published < 2.5
    assert slow["id"] not in by_message(url, "flaky")
    store = open_backend(url)
    try:
        assert store.queue_stats("orders-failed").total == 0  # still being retried
    finally:
        store.close()

    wait_until(lambda: set(by_message(url, "billing")) == {first["id"], failing["id"], slow["id"]}, timeout=10,
               message="billing's deliveries")
    wait_until(lambda: set(by_message(url, "flaky")) == {first["id"], refund["id"], slow["id"]}, timeout=10,
               message="flaky's deliveries")
    assert set(by_message(url, "big")) == {first["id"]}  # body scope; "please fail" is no JSON object

    # the failing one was tried three times (one request id, as an asynchronous event) and dead-lettered
    def dead_lettered():
        store = open_backend(url)
        try:
            return store.peek("orders-failed", 10)
        finally:
            store.close()

    [dead] = wait_until(dead_lettered, timeout=15, message="the failing delivery in the DLQ")
    assert json.loads(dead.body)["Records"][0]["Sns"]["MessageId"] == failing["id"]
    assert dead.attributes["ErrorMessage"]["stringValue"] == "flaky refuses please fail"
    attempts = [item for item in scan(url, "attempts") if item.value == "please fail"]
    assert len(attempts) == 3 and len({item.key.split("/")[0] for item in attempts}) == 1

    # the event, as Lambda delivers SNS's, in the publisher's trace
    [delivery] = by_message(url, "billing")[first["id"]]
    event = delivery["event"]
    parsed = SnsModel.model_validate(event)
    assert parsed.Records[0].Sns.Message == paid_big and parsed.Records[0].Sns.Subject == "New order"
    record = event["Records"][0]
    assert set(record) == AWS_RECORD_KEYS and set(record["Sns"]) == AWS_SNS_KEYS
    assert record["EventSource"] == "aws:sns" and record["EventVersion"] == "1.0"
    assert record["Sns"]["TopicArn"] == "arn:aws:sns:us-east-1:000000000000:orders"
    assert record["EventSubscriptionArn"].startswith("arn:aws:sns:us-east-1:000000000000:orders:")
    assert record["Sns"]["MessageAttributes"] == {"kind": {"Type": "String", "Value": "paid"},
                                                  "rank": {"Type": "Number", "Value": "2"}}
    assert delivery["traceparent"].split("-")[1] == first["traceparent"].split("-")[1]
    [refund_delivery] = by_message(url, "flaky")[refund["id"]]
    assert refund_delivery["event"]["Records"][0]["Sns"]["Subject"] is None

    # the queues: the envelope for every message; raw, the paid ones as they were published
    store = open_backend(url)
    try:
        audit = {json.loads(m.body)["MessageId"]: m for m in store.peek("audit", 100)}
        raw = store.peek("audit-raw", 100)
    finally:
        store.close()
    assert set(audit) == {first["id"], refund["id"], failing["id"], slow["id"]}
    envelope = json.loads(audit[first["id"]].body)
    assert set(envelope) == AWS_ENVELOPE_KEYS | {"MessageAttributes"}
    assert envelope["Message"] == paid_big and envelope["Subject"] == "New order"
    assert set(json.loads(audit[refund["id"]].body)) == AWS_ENVELOPE_KEYS - {"Subject"} | {"MessageAttributes"}
    assert SnsModel.model_validate({"Records": [{**record, "Sns": envelope}]})  # Powertools reads it as SNS's
    assert sorted(m.body for m in raw) == sorted([paid_big, "please fail", "slow one"])
    raw_first = next(m for m in raw if m.body == paid_big)
    assert {k: (v["dataType"], v["stringValue"]) for k, v in raw_first.attributes.items()
            if not k.startswith("AWS.")} == {"kind": ("String", "paid"), "rank": ("Number", "2")}

    rows = topics_table(url)
    assert {endpoint: (row["DELIVERED"], row["FILTERED"]) for endpoint, row in rows.items()} == {
        "function:billing": ("3", "1"), "function:big": ("1", "3"), "function:flaky": ("4", "0"),
        "queue:audit": ("4", "0"), "queue:audit-raw": ("3", "1")}
    assert rows["function:flaky"]["FAILED"] == "1" and rows["function:billing"]["PENDING"] == "0"
    assert {row["PUBLISHED"] for row in rows.values()} == {"4"}
    for node in nodes:
        assert platform_tracebacks(node.log()) == 0


def test_fan_out_on_sqlite(tmp_path):
    app = write_app(tmp_path, APP)
    url = f"sqlite:///{tmp_path}/state.db"
    with NodeProcess(app, backend=url) as node:
        check_fan_out(url, [node])


def test_fan_out_on_redis_with_two_nodes(tmp_path, redis_url):
    app = write_app(tmp_path, APP)
    with NodeProcess(app, backend=redis_url) as one, NodeProcess(app, backend=redis_url) as two:
        check_fan_out(redis_url, [one, two])


@pytest.mark.parametrize("kind", ["sqlite", "redis"])
def test_publishes_survive_a_sigkill_and_are_delivered_once_per_subscription(tmp_path, kind, request,
                                                                             monkeypatch):
    url = f"sqlite:///{tmp_path}/state.db" if kind == "sqlite" else request.getfixturevalue("redis_url")
    app = write_app(tmp_path, APP)
    # the first node's subscribers take nothing: every delivery waits in the backend when it dies
    monkeypatch.setenv("PAUSE_SUBSCRIBERS", "1")
    node = NodeProcess(app, backend=url).start()
    ids = [publish(node, json.dumps({"order": {"total": 100 + n}}), {"kind": "paid"})["id"] for n in range(10)]
    node.kill()
    monkeypatch.delenv("PAUSE_SUBSCRIBERS")
    assert topics_table(url)["function:billing"]["PENDING"] == "10"
    with NodeProcess(app, backend=url):
        for table in ("billing", "big", "flaky"):
            wait_until(lambda table=table: set(by_message(url, table)) == set(ids), timeout=10,
                       message=f"{table}'s deliveries after the restart")
        time.sleep(0.5)  # nothing more comes
        for table in ("billing", "big", "flaky"):
            assert all(len(deliveries) == 1 for deliveries in by_message(url, table).values())
    store = open_backend(url)
    try:
        assert store.queue_stats("audit").total == 10
    finally:
        store.close()


def test_squall_publish_and_topics_on_the_command_line(tmp_path):
    app = write_app(tmp_path, APP)
    url = f"sqlite:///{tmp_path}/state.db"
    with NodeProcess(app, backend=url):
        result = squall("publish", "orders", '{"order": {"total": 120}}', "-a", "kind=paid", "-a", "rank:Number=7",
                        "--subject", "From the CLI", "--backend", url)
        assert result.returncode == 0, result.stderr
        message_id = result.stdout.strip()
        wait_until(lambda: message_id in by_message(url, "big") and message_id in by_message(url, "billing"),
                   timeout=10, message="the CLI's message to be delivered")
        [delivery] = by_message(url, "billing")[message_id]
        sns = delivery["event"]["Records"][0]["Sns"]
        assert sns["Subject"] == "From the CLI" and sns["MessageAttributes"]["rank"] == {"Type": "Number",
                                                                                          "Value": "7"}
        assert topics_table(url)["function:billing"]["DELIVERED"] == "1"
        for args, reason in [(("nope", "m"), "topic 'nope' does not exist (topics: alerts, orders)"),
                             (("orders", "m", "-a", "rank:Number=seven"), "'seven' is not a Number"),
                             (("orders", "m", "--subject", "two\nlines"), "invalid subject"),
                             (("orders", "m", "-a", "AWS.x=1"), "are reserved"),
                             (("orders", "m", "--group-id", "g"), "group_id is only for FIFO topics")]:
            refused = squall("publish", *args, "--backend", url)
            assert refused.returncode == 1 and reason in refused.stderr, refused.stderr


def test_an_alarm_with_a_topic_target_delivers_its_state_change(tmp_path):
    app = write_app(tmp_path, APP)
    url = f"sqlite:///{tmp_path}/state.db"
    with NodeProcess(app, backend=url):
        # the first evaluation (at most a 10 s period and 2 s after it) finds no errors: OK
        [deliveries] = wait_until(lambda: list(by_message(url, "alerts").values()), timeout=15,
                                  message="the alarm's state change on the topic")
    [delivery] = deliveries
    sns = delivery["event"]["Records"][0]["Sns"]
    assert sns["TopicArn"] == "arn:aws:sns:us-east-1:000000000000:alerts"
    change = json.loads(sns["Message"])
    assert change["detail-type"] == "CloudWatch Alarm State Change"
    assert (change["detail"]["previousState"]["value"], change["detail"]["state"]["value"]) == (
        "INSUFFICIENT_DATA", "OK")


def test_a_topic_target_must_be_declared(tmp_path):
    app = write_app(tmp_path, APP.replace('target="topic:alerts"', 'target="topic:missing"'))
    result = squall("invoke", str(app), "charge", "--data", "{}", cwd=tmp_path)
    assert result.returncode != 0
    assert "alarm 'charge-errors': unknown topic 'missing' (topics: alerts, orders)" in result.stderr


def test_a_fifo_topic_feeding_a_fifo_queue_keeps_each_groups_order(tmp_path):
    app = write_app(tmp_path, """
        import json
        from squall import App

        app = App("fifo-topics")
        app.subscribe_queue("orders.fifo", "ledger.fifo")

        @app.on_queue("ledger.fifo", batch_size=10)
        def ledger(event, ctx):
            for record in event["Records"]:
                group = record["attributes"]["MessageGroupId"]
                ctx.table("ledger").put(f"{group}/{record['attributes']['SequenceNumber']}",
                                        json.loads(record["body"])["Message"])

        @app.http("POST", "/publish/{group}/{n}")
        def publish(event, ctx):
            group, n = event["pathParameters"]["group"], event["pathParameters"]["n"]
            return ctx.publish("orders.fifo", n, group_id=group, dedup_id=f"{group}-{n}")
    """)
    url = f"sqlite:///{tmp_path}/state.db"
    with NodeProcess(app, backend=url) as node, node.client() as client:
        for n in range(20):
            for group in ("a", "b", "c"):
                assert client.post(f"/publish/{group}/{n}").status_code == 200
        assert client.post("/publish/a/0").status_code == 200  # a duplicate: deduplicated by the queue
        wait_until(lambda: len(scan(url, "ledger")) == 60, timeout=10, message="every message in the ledger")
    for group in ("a", "b", "c"):
        values = [item.value for item in scan(url, "ledger") if item.key.startswith(f"{group}/")]
        assert values == [str(n) for n in range(20)]
