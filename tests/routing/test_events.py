"""The event bus end to end: rules, targets, retries, archives and replays on real nodes.

Events are put through `ctx.put_events` (an HTTP route) and `squall put-events`; rules
route them to functions (asynchronous invocations with EventBridge's retry policy), a
queue (with an input transformer), another bus and a function with an input path. On
SQLite with one node, on Redis with two sharing the bus; a node killed after the put
returned loses nothing and delivers nothing twice.
"""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime

import pytest
from aws_lambda_powertools.utilities.parser.models import EventBridgeModel

from squall.backends import open_backend
from tests.support import NodeProcess, squall, table, wait_until, write_app

APP = """
    import json
    from squall import App

    app = App("bus")
    app.bus("audit")

    @app.on_event({"source": ["shop"], "detail-type": ["order placed"]}, retry_attempts=2, max_event_age=60,
                  dlq="charge-dlq")
    def charge(event, ctx):
        key = event["id"]
        ctx.table("attempts").put(key, (ctx.table("attempts").get(key) or 0) + 1)
        if event["detail"].get("fail"):
            raise RuntimeError("card declined")
        ctx.table("charged").put(key, event)

    @app.on_event({"source": ["shop"]}, bus="audit")
    def audit(event, ctx):
        ctx.table("audited").put(event["id"], event)

    @app.function
    def record(event, ctx):
        ctx.table("recorded").put(event["id"], event)

    app.rule("big-orders", pattern={"source": ["shop"], "detail": {"total": [{"numeric": [">", 100]}]}}, targets=[
        {"queue": "big", "input_transformer": {
            "InputPathsMap": {"instance": "$.detail.instance-id", "state": "$.detail.state"},
            "InputTemplate": '{"instance" : <instance>, "state": [9, <state>, true], "Transformed" : "Yes", '
                             '"text": "<instance> is in state <state>", "rule": "<aws.events.rule-name>"}'}},
        {"bus": "audit"},
        {"function": "record", "input_path": "$.detail"},
    ])

    @app.on_queue("big", visibility_timeout=5)
    def big(event, ctx):
        for record in event["Records"]:
            ctx.table("big").put(record["messageId"], record["body"])

    app.archive("orders", pattern={"source": ["shop"]}, retention_days=7)

    @app.http("POST", "/put")
    def put(event, ctx):
        return ctx.put_events(json.loads(event["body"]))
"""


def order(order_id: str, total: float, **detail) -> dict:
    return {"Source": "shop", "DetailType": "order placed", "Resources": [f"arn:aws:shop:::order/{order_id}"],
            "Detail": json.dumps({"id": order_id, "total": total, "instance-id": "i-0123456789", "state": "RUNNING",
                                  **detail})}


def put(node: NodeProcess, entries: list[dict]) -> dict:
    with node.client() as client:
        response = client.post("/put", json=entries)
    assert response.status_code == 200, response.text
    return response.json()


@pytest.fixture
def sqlite_app(tmp_path):
    path = write_app(tmp_path, APP)
    url = f"sqlite:///{tmp_path}/.squall/state.db"
    return path, url


def test_rules_route_to_functions_a_queue_and_another_bus(sqlite_app):
    path, url = sqlite_app
    with NodeProcess(path) as node:
        answer = put(node, [
            order("o1", 150),
            order("o2", 50),
            {"DetailType": "order placed", "Detail": "{}"},                            # no Source
            {"Source": "shop", "DetailType": "order placed", "Detail": "[1, 2]"},      # not an object
            {**order("o3", 1), "EventBusName": "nowhere"},
            {**order("o4", 1), "Source": "aws.ec2"},
        ])
        assert answer["FailedEntryCount"] == 4
        entries = answer["Entries"]
        assert set(entries[0]) == set(entries[1]) == {"EventId"}
        assert entries[2:] == [
            {"ErrorCode": "InvalidArgument",
             "ErrorMessage": "Parameter Source is not valid. Reason: Source is a required argument."},
            {"ErrorCode": "MalformedDetail", "ErrorMessage": "Detail is malformed."},
            {"ErrorCode": "ResourceNotFoundException", "ErrorMessage": "Event bus nowhere does not exist."},
            {"ErrorCode": "NotAuthorizedForSourceException", "ErrorMessage": "Not authorized for the source."},
        ]
        first, second = entries[0]["EventId"], entries[1]["EventId"]

        # the function target: both orders, each in EventBridge's envelope
        wait_until(lambda: set(table(url, "charged")) == {first, second}, timeout=20, message="both orders charged")
        charged = EventBridgeModel(**table(url, "charged")[first])
        assert (charged.version, charged.id, charged.source, charged.detail_type) == ("0", first, "shop",
                                                                                        "order placed")
        assert charged.resources == ["arn:aws:shop:::order/o1"] and charged.detail["total"] == 150
        assert charged.account == "000000000000" and charged.region == "us-east-1"
        assert abs(charged.time.timestamp() - time.time()) < 60
        # the big-orders rule (total > 100): o1 only, to each of its three targets
        wait_until(lambda: len(table(url, "big")) == 1 and len(table(url, "recorded")) == 1
                   and len(table(url, "audited")) == 1, timeout=20, message="o1 at the big-orders targets")
        # the input transformer, as AWS's documented example renders it (plus a string and a predefined)
        [body] = table(url, "big").values()
        assert json.loads(body) == {"instance": "i-0123456789", "state": [9, "RUNNING", True], "Transformed": "Yes",
                                    "text": "i-0123456789 is in state RUNNING", "rule": "big-orders"}
        # the input path: the detail alone
        assert table(url, "recorded") == {"o1": json.loads(order("o1", 150)["Detail"])}
        # bus to bus: the same event, matched by the audit bus's own rule
        audited = EventBridgeModel(**table(url, "audited")[first])
        assert audited.id == first and audited.detail["id"] == "o1"
        assert table(url, "attempts") == {first: 1, second: 1}


def test_a_failing_target_is_retried_then_dead_lettered_while_the_others_deliver(sqlite_app):
    path, url = sqlite_app
    with NodeProcess(path) as node:
        [entry] = put(node, [order("o9", 500, fail=True)])["Entries"]
        event_id = entry["EventId"]
        # the other targets of the event were delivered at once
        wait_until(lambda: "o9" in table(url, "recorded") and event_id in table(url, "audited"), timeout=20,
                   message="the other targets")
        store = open_backend(url)
        try:
            wait_until(lambda: store.queue_stats("charge-dlq").total == 1, timeout=30, message="the dead letter")
            [dead] = store.peek("charge-dlq")
        finally:
            store.close()
        assert table(url, "attempts") == {event_id: 3}  # the first attempt and retry_attempts=2
        assert json.loads(dead.body)["id"] == event_id
        attributes = {name: value["stringValue"] for name, value in dead.attributes.items()
                      if not name.startswith("AWS.")}
        assert attributes == {"RULE_ARN": "arn:aws:events:us-east-1:000000000000:rule/charge",
                              "TARGET_ARN": "arn:aws:lambda:us-east-1:000000000000:function:charge",
                              "ERROR_CODE": "ERROR_FROM_TARGET", "ERROR_MESSAGE": "card declined"}


def iso(seconds: float) -> str:
    return datetime.fromtimestamp(seconds, UTC).isoformat()


def test_archive_and_replay_deliver_again_marked_with_the_replay_name(sqlite_app):
    path, url = sqlite_app
    with NodeProcess(path):
        started = time.time() - 1
        result = squall("put-events", "--backend", url, "--entries", json.dumps([order("a1", 5), order("a2", 6)]),
                        cwd=path.parent)
        assert result.returncode == 0, result.stderr
        ids = {entry["EventId"] for entry in json.loads(result.stdout)["Entries"]}
        wait_until(lambda: set(table(url, "charged")) == ids, timeout=20, message="the first delivery")
        store = open_backend(url)
        try:
            wait_until(lambda: len(store.stream_read("squall.archive.orders", 0, 0)) == 2, timeout=20,
                       message="both events archived")
        finally:
            store.close()
        result = squall("events", "replay", "--backend", url, "--archive", "orders", "--from", iso(started),
                        "--to", iso(time.time() + 1), "--name", "again", cwd=path.parent)
        assert result.returncode == 0, result.stderr
        assert "2 event(s)" in result.stdout
        wait_until(lambda: len(table(url, "charged")) == 4, timeout=20, message="the replayed events")
        replayed = [EventBridgeModel(**e) for e in table(url, "charged").values() if e.get("replay-name")]
        assert sorted(e.detail["id"] for e in replayed) == ["a1", "a2"]
        assert {e.replay_name for e in replayed} == {"again"} and not {e.id for e in replayed} & ids
        # replayed events are not archived again
        time.sleep(1)
        store = open_backend(url)
        try:
            assert len(store.stream_read("squall.archive.orders", 0, 0)) == 2
        finally:
            store.close()
        outside = squall("events", "replay", "--backend", url, "--archive", "orders", "--from",
                         iso(time.time() + 10), "--to", iso(time.time() + 20), cwd=path.parent)
        assert outside.returncode == 0 and "0 event(s)" in outside.stdout
        unknown = squall("events", "replay", "--backend", url, "--archive", "nope", "--from", iso(started),
                         "--to", iso(time.time()), cwd=path.parent)
        assert unknown.returncode == 1 and "unknown archive 'nope'" in unknown.stderr


def test_sigkill_after_the_put_and_restart_delivers_each_event_once(tmp_path):
    """The target function is throttled (reserved_concurrency=0) while the first node runs,
    so the put's deliveries wait, durably, when it is killed; the node restarted without
    the throttle delivers every one exactly once."""
    throttled = APP.replace("    def charge(event, ctx):", "    @app.function(reserved_concurrency=0)\n"
                                                          "    def charge(event, ctx):", 1)
    path = write_app(tmp_path, throttled)
    url = f"sqlite:///{tmp_path}/.squall/state.db"
    node = NodeProcess(path).start()
    try:
        entries = put(node, [order(f"k{i}", 10 + i) for i in range(10)])["Entries"]
    finally:
        node.kill()
    ids = {entry["EventId"] for entry in entries}
    write_app(tmp_path, APP)
    with NodeProcess(path):
        wait_until(lambda: set(table(url, "charged")) == ids, timeout=30, message="every event charged")
        time.sleep(1)
        assert table(url, "attempts") == dict.fromkeys(ids, 1)


def test_two_nodes_on_redis_route_each_event_once(tmp_path, redis_server):
    import redis

    url = f"redis://127.0.0.1:{redis_server.port}/13"
    redis.Redis.from_url(url).flushdb()
    path = write_app(tmp_path, APP)
    with NodeProcess(path, backend=url), NodeProcess(path, backend=url):
        result = squall("put-events", "--backend", url, "--entries",
                        json.dumps([order(f"r{i}", 200 + i) for i in range(10)]), cwd=tmp_path)
        assert result.returncode == 0, result.stderr
        ids = {entry["EventId"] for entry in json.loads(result.stdout)["Entries"]}
        wait_until(lambda: set(table(url, "charged")) == ids and len(table(url, "big")) == 10
                   and len(table(url, "audited")) == 10, timeout=30, message="every delivery")
        time.sleep(1)
        assert table(url, "attempts") == dict.fromkeys(ids, 1)
        assert len(table(url, "big")) == 10 and len(table(url, "recorded")) == 10


@pytest.mark.parametrize(("declaration", "error"), [
    ('app.rule("r", pattern={"source": [{"prefix": 1}]}, targets=[{"queue": "q"}])',
     "rule 'r': Event pattern is not valid"),
    ('app.rule("bad name!", pattern={"source": ["x"]}, targets=[{"queue": "q"}])', "invalid rule name 'bad name!'"),
    ('app.rule("r", pattern={"source": ["x"]}, targets=[{"queue": "q", "input_transformer": '
     '{"InputPathsMap": {"a": "$.detail.a"}, "InputTemplate": "{<a>: 1}"}}])',
     "rule 'r' target 0: InputTemplate placeholder <a> cannot be an object key"),
    ('app.rule("r", pattern={"source": ["x"]}, targets=[{"queue": "q", "input_transformer": '
     '{"InputPathsMap": {}, "InputTemplate": "\\"<who>\\""}}])',
     "InputTemplate placeholder <who> is neither in InputPathsMap nor a predefined variable"),
    ('app.rule("r", pattern={"source": ["x"]}, targets=[{"function": "nope"}])',
     "rule 'r' target 0: unknown function 'nope'"),
    ('app.rule("r", pattern={"source": ["x"]}, targets=[{"bus": "other"}])', "unknown event bus 'other'"),
    ('app.rule("r", pattern={"source": ["x"]}, targets=[{"topic": "bad name!"}])', "invalid topic name 'bad name!'"),
    ('app.rule("r", bus="custom", pattern={"source": ["x"]}, targets=[{"queue": "q"}])',
     "unknown event bus 'custom'"),
    ('app.rule("r", pattern={"source": ["x"]}, targets=[{"queue": "q", "retry_attempts": 186}])',
     "retry_attempts"),
    ('app.rule("r", pattern={"source": ["x"]}, targets=[{"queue": "q", "input_path": "$[\'a\']"}])',
     "invalid JSON path"),
    ('app.archive("a", pattern={"detail": {"n": [{"numeric": ["<", 1, ">", 2]}]}})', "archive 'a'"),
    ('app.bus("aws.thing")', "names starting with 'aws.' are AWS's"),
])
def test_bad_declarations_are_refused_at_load_naming_the_bad_part(tmp_path, declaration, error):
    path = write_app(tmp_path, f"from squall import App\napp = App('bad')\n{declaration}\n")
    result = squall("invoke", str(path), "anything", cwd=tmp_path)
    assert result.returncode != 0
    assert error in result.stderr, result.stderr


def test_test_event_pattern_on_the_command_line(tmp_path):
    event = json.dumps({"id": "1", "account": "1", "source": "shop", "time": "t", "region": "r", "resources": [],
                        "detail-type": "x", "detail": {"total": 120}})
    yes = squall("test-event-pattern", "--event-pattern", '{"detail": {"total": [{"numeric": [">", 100]}]}}',
                 "--event", event, cwd=tmp_path)
    no = squall("test-event-pattern", "--event-pattern", '{"source": ["other"]}', "--event", event, cwd=tmp_path)
    bad = squall("test-event-pattern", "--event-pattern", '{"source": "shop"}', "--event", event, cwd=tmp_path)
    assert (yes.returncode, yes.stdout) == (0, "true\n")
    assert (no.returncode, no.stdout) == (0, "false\n")
    assert bad.returncode == 2 and "Event pattern is not valid" in bad.stderr


TRACE, PARENT = "4bf92f3577b34da6a3ce929d0e0e4736", "00f067aa0ba902b7"


def spans_of(trace_id: str, cwd) -> list[dict]:
    result = squall("traces", "show", trace_id, "--json", cwd=cwd)
    return [json.loads(line) for line in result.stdout.splitlines()] if result.returncode == 0 else []


def test_a_put_is_a_producer_span_and_every_delivery_continues_its_trace(sqlite_app):
    path, url = sqlite_app
    with NodeProcess(path) as node:
        with node.client() as client:
            response = client.post("/put", json=[order("t1", 150)], headers={"traceparent": f"00-{TRACE}-{PARENT}-01"})
        assert response.status_code == 200

        def hops() -> dict[str, list[dict]] | None:
            found: dict[str, list[dict]] = {}
            for span in spans_of(TRACE, path.parent):
                found.setdefault(span["name"], []).append(span)
            wanted = {"POST /put", "PutEvents default", "process charge", "process audit", "process big"}
            return found if wanted <= set(found) and len(found.get("process big-orders", [])) == 1 else None

        spans = wait_until(hops, timeout=20, message="the spans of every hop")
    # named `{messaging.operation.name} {destination}`, as the messaging conventions name a span
    [http], [send] = spans["POST /put"], spans["PutEvents default"]
    assert send["kind"] == "PRODUCER" and send["parentSpanId"] == http["spanId"]
    assert {k: send["attributes"][k] for k in ("messaging.system", "messaging.operation.type",
                                               "messaging.operation.name", "messaging.destination.name",
                                               "rpc.system", "rpc.service", "rpc.method")} == {
        "messaging.system": "aws.eventbridge", "messaging.operation.type": "send",
        "messaging.operation.name": "PutEvents", "messaging.destination.name": "default",
        "rpc.system": "aws-api", "rpc.service": "EventBridge", "rpc.method": "PutEvents"}
    for name in ("process charge", "process big-orders", "process big"):
        [delivery] = spans[name]
        assert delivery["kind"] == "CONSUMER" and delivery["parentSpanId"] == send["spanId"], name
    [audit] = spans["process audit"]  # through the audit bus: still the producer's context
    assert audit["parentSpanId"] == send["spanId"]
    assert spans["process charge"][0]["attributes"]["messaging.destination.name"] == "default"
    assert {s["traceId"] for group in spans.values() for s in group} == {TRACE}


def test_the_harness_puts_routes_and_delivers():
    from squall import App
    from squall.testing import Harness

    app = App("harnessed")
    seen: list[dict] = []

    @app.on_event({"detail": {"n": [{"numeric": [">=", 2]}]}}, input_path="$.detail")
    def big(event, ctx):
        seen.append(event)

    with Harness(app) as harness:
        answer = harness.put_events([{"Source": "s", "DetailType": "d", "Detail": json.dumps({"n": n})}
                                     for n in range(4)])
        assert answer["FailedEntryCount"] == 0 and len(answer["Entries"]) == 4
        harness.drain()
    assert sorted(e["n"] for e in seen) == [2, 3]


TOPIC_APP = """
    from squall import App

    app = App("bus-to-topic")
    app.on_queue("from-topic", lambda event, ctx: None, name="hold", reserved_concurrency=0)
    app.subscribe_queue("order-events", "from-topic")
    app.rule("to-topic", pattern={"source": ["shop"]}, targets=[{"topic": "order-events"}])


    @app.http("POST", "/put")
    def put(event, ctx):
        import json
        return ctx.put_events(json.loads(event["body"]))
"""


def test_a_rule_delivers_to_a_topic_target(tmp_path):
    """A topic target publishes the event: a queue subscribed to the topic gets it as the
    `Message` of the SNS envelope."""
    path = write_app(tmp_path, TOPIC_APP)
    with NodeProcess(path) as node, node.client() as client:
        result = client.post("/put", json=[order("t9", 99)]).json()
        assert result["FailedEntryCount"] == 0
        store = open_backend(f"sqlite:///{tmp_path}/.squall/state.db")
        try:
            [message] = wait_until(lambda: store.peek("from-topic"), timeout=10, message="the topic's delivery")
        finally:
            store.close()
    envelope = json.loads(message.body)
    assert envelope["Type"] == "Notification" and envelope["TopicArn"].endswith(":order-events")
    event = json.loads(envelope["Message"])
    assert event["source"] == "shop" and event["id"] == result["Entries"][0]["EventId"]
    EventBridgeModel.model_validate(event)
