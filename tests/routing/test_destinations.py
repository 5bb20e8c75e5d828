"""Asynchronous invocation with destinations and recursive loop detection, end to end.

Real nodes (SQLite with one, Redis with two sharing the queues), real HTTP, the CLI:
each destination receives Lambda's invocation record, compared key by key and value by
value with the records AWS documents and sends; `maximum_retry_attempts` shows in
`approximateInvokeCount`; an event older than `maximum_event_age` is not run; a chain
that would run a function a 17th time is stopped, logged in Lambda's words, counted on
/metrics and sent to the DLQ or on-failure destination.
"""

from __future__ import annotations

import json
import re
import time
from typing import Any

import httpx
import pytest
import redis
from aws_lambda_powertools.utilities.parser.models import EventBridgeModel

from squall import aws
from squall.backends import Message, open_backend
from squall.core.recursion import MESSAGE
from squall.observability.context import TRACE_ATTRIBUTE
from squall.observability.lineage import MAX_INVOCATIONS
from squall.sources.async_invoke import async_dlq, async_queue
from tests.support import NodeProcess, free_port, squall, wait_until, write_app

APP = """
    import json
    import time

    from squall import App

    app = App("destinations")


    @app.http("POST", "/work")
    def start(event, ctx):
        body = json.loads(event["body"])
        return {"id": ctx.invoke_async(body.pop("function"), body)}


    # the destinations' queues: nothing consumes them (reserved_concurrency=0), the test reads them
    for queue in ("records", "retries", "aged", "loops", "bus-records", "topic-records"):
        app.on_queue(queue, lambda event, ctx: None, name=f"hold-{queue}", reserved_concurrency=0)


    # the records a bus destination gets, routed by a rule as Lambda's results are
    app.rule("results", pattern={"source": ["lambda"],
                                 "detail-type": [{"prefix": "Lambda Function Invocation Result - "}]},
             targets=[{"queue": "bus-records"}])


    # the records a topic destination gets, as the SNS envelope in a subscribed queue
    app.subscribe_queue("results", "topic-records")


    @app.function(on_success="topic:results", maximum_retry_attempts=0)
    def announced(event, ctx):
        return {"announced": event["order"]}


    @app.function(on_success="bus:default", on_failure="bus:default", maximum_retry_attempts=0)
    def published(event, ctx):
        if event.get("fail"):
            raise ValueError("not this one")
        return "fine"


    @app.function(on_success="queue:records", on_failure="queue:records")
    def work(event, ctx):
        if event.get("fail"):
            raise ValueError(f"order {event['order']} failed")
        return {"order": event["order"], "done": True}


    @app.function(on_success="function:audit", on_failure="function:audit", maximum_retry_attempts=0)
    def audited(event, ctx):
        if event.get("fail"):
            raise RuntimeError("no luck")
        return ["ok", event["order"]]


    @app.function()
    def audit(event, ctx):
        ctx.table("audit").put(event["requestContext"]["condition"], event)


    def failing(event, ctx):
        ctx.table("attempts").put(f"{ctx.aws_request_id}-{time.time_ns()}", ctx.function_name)
        raise ValueError("always")


    for attempts in (0, 1, 2):
        app.function(failing, name=f"retry{attempts}", maximum_retry_attempts=attempts, on_failure="queue:retries")


    @app.function(maximum_event_age=60, on_failure="queue:aged")
    def perishable(event, ctx):
        ctx.table("perishable").put("ran", True)


    @app.on_queue("loop", batch_size=1)
    def loop(event, ctx):
        for record in event["Records"]:
            n = json.loads(record["body"])["n"]
            ctx.table("loop").put(str(n), n)
            ctx.queue("loop").send(json.dumps({"n": n + 1}))


    @app.function(on_failure="queue:loops")
    def spin(event, ctx):
        ctx.table("spin").put(str(event["n"]), event["n"])
        ctx.invoke_async("spin", {"n": event["n"] + 1})
"""

#: AWS's documented record of an event that failed three attempts (Lambda developer guide)
AWS_FAILURE_RECORD = {
    "version": "1.0",
    "timestamp": "2019-11-14T18:16:05.568Z",
    "requestContext": {
        "requestId": "e4b46cbf-b738-xmpl-8880-a18cdf61200e",
        "functionArn": "arn:aws:lambda:us-east-2:123456789012:function:my-function:$LATEST",
        "condition": "RetriesExhausted",
        "approximateInvokeCount": 3,
    },
    "requestPayload": {"ORDER_IDS": ["9e07af03-ce31-4ff3-xmpl-36dce652cb4f"]},
    "responseContext": {"statusCode": 200, "executedVersion": "$LATEST", "functionError": "Unhandled"},
    "responsePayload": {"errorMessage": "RequestId: e4b46cbf-b738-xmpl-8880-a18cdf61200e Process exited before "
                                        "completing request"},
}
#: the keys of a success record as AWS sends it: no functionError
AWS_SUCCESS_CONTEXT = {"statusCode": 200, "executedVersion": "$LATEST"}
TIMESTAMP = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$")


def shape(record: dict[str, Any]) -> dict[str, Any]:
    """The keys of a record and of its two contexts (the payloads are the event's and the function's)."""
    return {k: sorted(v) if k.endswith("Context") else None for k, v in record.items()}


def arn(function: str) -> str:
    return aws.arn("lambda", f"function:{function}:$LATEST")


class Cluster:
    """Nodes on one backend, and the test's view of it."""

    def __init__(self, directory, url: str, nodes: list[NodeProcess], admin: int):
        self.directory, self.url, self.nodes, self.admin = directory, url, nodes, admin

    def backend(self):
        return open_backend(self.url)

    def post(self, body: dict[str, Any]) -> str:
        response = httpx.post(f"{self.nodes[-1].url}/work", json=body, timeout=30)
        assert response.status_code == 200, response.text
        return response.json()["id"]

    def records(self, queue: str, count: int, timeout: float = 20) -> list[dict[str, Any]]:
        """`count` messages of `queue`, as records (claimed: the test reads each once)."""
        found: list[Message] = []
        store = self.backend()
        try:
            def enough() -> bool:
                found.extend(store.claim(queue, 10, 300))
                return len(found) >= count

            wait_until(enough, timeout=timeout, message=f"{count} record(s) in {queue}")
            assert len(found) == count
        finally:
            store.close()
        return [json.loads(m.body) for m in found]

    def table(self, name: str) -> dict[str, Any]:
        store = self.backend()
        try:
            return {item.key: item.value for item in store.table_scan(name)}
        finally:
            store.close()

    def log(self) -> str:
        return "\n".join(node.log() for node in self.nodes)


@pytest.fixture(scope="module", params=["sqlite", "redis"])
def cluster(request, tmp_path_factory):
    directory = tmp_path_factory.mktemp(f"destinations-{request.param}")
    app = write_app(directory, APP)
    admin = free_port()
    if request.param == "sqlite":
        url, count = f"sqlite:///{directory}/state.db", 1
    else:
        server = request.getfixturevalue("redis_server")
        url, count = f"redis://127.0.0.1:{server.port}/0", 2
        redis.Redis.from_url(url).flushdb()
    nodes = [NodeProcess(app, backend=url, extra=["--admin-port", str(admin)] if i == 0 else None).start()
             for i in range(count)]
    try:
        yield Cluster(directory, url, nodes, admin)
    finally:
        for node in nodes:
            node.stop()


def test_success_and_failure_records_reach_a_queue_as_aws_sends_them(cluster):
    ok = cluster.post({"function": "work", "order": 1})
    failed = cluster.post({"function": "work", "order": 2, "fail": True})
    records = {r["requestContext"]["requestId"]: r for r in cluster.records("records", 2)}
    success, failure = records[ok], records[failed]
    # the failure record: AWS's documented example, key for key
    assert shape(failure) == shape(AWS_FAILURE_RECORD)
    assert TIMESTAMP.match(failure["timestamp"])
    assert failure["requestContext"] == {"requestId": failed, "functionArn": arn("work"),
                                         "condition": "RetriesExhausted", "approximateInvokeCount": 3}
    assert failure["requestPayload"] == {"order": 2, "fail": True}
    assert failure["responseContext"] == AWS_FAILURE_RECORD["responseContext"]
    error = failure["responsePayload"]
    assert list(error) == ["errorMessage", "errorType", "requestId", "stackTrace"]  # as AWS sends a Python error
    assert (error["errorMessage"], error["errorType"], error["requestId"]) == ("order 2 failed", "ValueError", failed)
    assert any("raise ValueError" in line for line in error["stackTrace"])
    # the success record: no functionError, the result as the response
    assert success["version"] == "1.0" and TIMESTAMP.match(success["timestamp"])
    assert success["requestContext"] == {"requestId": ok, "functionArn": arn("work"), "condition": "Success",
                                         "approximateInvokeCount": 1}
    assert success["requestPayload"] == {"order": 1}
    assert success["responseContext"] == AWS_SUCCESS_CONTEXT
    assert success["responsePayload"] == {"order": 1, "done": True}
    # on failure the event also went to the function's dead-letter queue, as Lambda does with both
    store = cluster.backend()
    try:
        wait_until(lambda: store.queue_stats(async_dlq("work")).total == 1, timeout=10, message="the DLQ copy")
    finally:
        store.close()


def test_records_reach_a_function_destination(cluster):
    ok = cluster.post({"function": "audited", "order": 7})
    failed = cluster.post({"function": "audited", "order": 8, "fail": True})
    audit = wait_until(lambda: len(t := cluster.table("audit")) == 2 and t, timeout=20, message="both records audited")
    success, failure = audit["Success"], audit["RetriesExhausted"]
    assert success["requestContext"]["requestId"] == ok and success["responsePayload"] == ["ok", 7]
    assert failure["requestContext"] == {"requestId": failed, "functionArn": arn("audited"),
                                         "condition": "RetriesExhausted", "approximateInvokeCount": 1}
    assert failure["responsePayload"]["errorType"] == "RuntimeError"
    assert shape(failure) == shape(AWS_FAILURE_RECORD)


def test_maximum_retry_attempts_is_the_invoke_count_less_one(cluster):
    ids = {cluster.post({"function": f"retry{n}"}): n for n in (0, 1, 2)}
    records = cluster.records("retries", 3)
    counts = {ids[r["requestContext"]["requestId"]]: r["requestContext"]["approximateInvokeCount"] for r in records}
    assert counts == {0: 1, 1: 2, 2: 3}
    ran = list(cluster.table("attempts").values())
    assert {name: ran.count(name) for name in set(ran)} == {"retry0": 1, "retry1": 2, "retry2": 3}


def test_an_event_older_than_its_maximum_age_is_not_invoked(cluster):
    # a backlog: the event was queued two minutes ago (say, while every node was down)
    store = open_backend(cluster.url, clock=lambda: time.time() - 120)
    try:
        event_id = store.enqueue(async_queue("perishable"), json.dumps({"stale": True}), None)
    finally:
        store.close()
    [record] = cluster.records("aged", 1)
    assert record["requestContext"] == {"requestId": event_id, "functionArn": arn("perishable"),
                                        "condition": "EventAgeExceeded", "approximateInvokeCount": 0}
    assert record["requestPayload"] == {"stale": True}
    assert "responseContext" not in record and "responsePayload" not in record  # it never ran
    assert cluster.table("perishable") == {}
    assert "over its maximum_event_age of 60 s" in cluster.log()


def test_squall_invoke_async_queues_and_prints_the_request_id(cluster):
    result = squall("invoke", str(cluster.directory / "app.py"), "work", "--async", "--data", '{"order": 99}',
                    "--backend", cluster.url, cwd=cluster.directory)
    assert result.returncode == 0, result.stderr
    request_id = result.stdout.strip()
    assert re.fullmatch(r"[0-9a-f-]{36}", request_id)
    [record] = cluster.records("records", 1)
    assert record["requestContext"]["requestId"] == request_id
    assert record["responsePayload"] == {"order": 99, "done": True}
    refused = squall("invoke", str(cluster.directory / "app.py"), "nope", "--async", "--backend", cluster.url,
                     cwd=cluster.directory)
    assert refused.returncode == 1 and "unknown function 'nope'" in refused.stderr


def dropped_metric(cluster, function: str) -> float:
    text = httpx.get(f"http://127.0.0.1:{cluster.admin}/metrics", timeout=10).text
    match = re.search(rf'^squall_recursive_invocations_dropped_total{{function="{function}"}} (\S+)$', text, re.M)
    return float(match.group(1)) if match else 0.0


def test_a_function_queue_function_loop_stops_after_16_invocations(cluster):
    store = cluster.backend()
    try:
        store.enqueue("loop", json.dumps({"n": 1}), None)
        wait_until(lambda: store.queue_stats("loop-dlq").total == 1, timeout=30, message="the looping message")
        [stopped] = store.claim("loop-dlq", 1, 300)
    finally:
        store.close()
    assert json.loads(stopped.body) == {"n": MAX_INVOCATIONS + 1}
    assert "Lineage=" in stopped.attributes[TRACE_ATTRIBUTE]["stringValue"]
    assert sorted(map(int, cluster.table("loop"))) == list(range(1, MAX_INVOCATIONS + 1))
    log = cluster.log()
    assert f"function loop: {MESSAGE}" in log
    if len(cluster.nodes) == 1:  # the metric is the node's own: on Redis the stop may be on the other node
        assert dropped_metric(cluster, "loop") == 1.0


def test_an_async_loop_goes_to_the_on_failure_destination(cluster):
    result = squall("invoke", str(cluster.directory / "app.py"), "spin", "--async", "--data", '{"n": 1}',
                    "--backend", cluster.url, cwd=cluster.directory)
    assert result.returncode == 0, result.stderr
    [record] = cluster.records("loops", 1, timeout=30)
    assert record["requestContext"]["functionArn"] == arn("spin")
    assert record["requestContext"]["condition"] == "RetriesExhausted"
    assert record["requestContext"]["approximateInvokeCount"] == 0  # stopped before it ran
    assert record["requestPayload"] == {"n": MAX_INVOCATIONS + 1}
    assert "responseContext" not in record
    assert sorted(map(int, cluster.table("spin"))) == list(range(1, MAX_INVOCATIONS + 1))
    assert f"function spin: {MESSAGE}" in cluster.log()
    store = cluster.backend()
    try:
        wait_until(lambda: store.queue_stats(async_dlq("spin")).total == 1, timeout=10, message="the DLQ copy")
    finally:
        store.close()


def test_records_reach_a_topic_destination(cluster):
    """on_success="topic:results": a queue subscribed to the topic receives the record as the
    `Message` of the SNS envelope, as Lambda publishes it."""
    ok = cluster.post({"function": "announced", "order": 5})
    [envelope] = cluster.records("topic-records", 1)
    assert envelope["Type"] == "Notification"
    assert envelope["TopicArn"] == f"arn:aws:sns:{aws.REGION}:{aws.ACCOUNT}:results"
    record = json.loads(envelope["Message"])
    assert record["requestContext"] == {"requestId": ok, "functionArn": arn("announced"), "condition": "Success",
                                        "approximateInvokeCount": 1}
    assert record["responsePayload"] == {"announced": 5}


def test_records_reach_a_bus_destination(cluster):
    """on_success/on_failure="bus:default": a rule matching Lambda's result events receives
    the record as the event's `detail`, with `resources` [function ARN, bus ARN], as Lambda
    puts it."""
    ok = cluster.post({"function": "published", "order": 1})
    failed = cluster.post({"function": "published", "order": 2, "fail": True})
    events = {e["detail"]["requestContext"]["requestId"]: e for e in cluster.records("bus-records", 2)}
    success, failure = events[ok], events[failed]
    assert success["detail-type"] == "Lambda Function Invocation Result - Success"
    assert failure["detail-type"] == "Lambda Function Invocation Result - Failure"
    for event in (success, failure):
        EventBridgeModel.model_validate(event)
        assert event["source"] == "lambda" and event["version"] == "0"
        assert event["resources"] == [arn("published"), f"arn:aws:events:{aws.REGION}:{aws.ACCOUNT}:event-bus/default"]
    assert success["detail"]["responsePayload"] == "fine" and success["detail"]["requestPayload"] == {"order": 1}
    assert failure["detail"]["requestContext"]["condition"] == "RetriesExhausted"
    assert failure["detail"]["responsePayload"]["errorMessage"] == "not this one"


def test_a_destination_naming_an_undeclared_queue_stops_the_app_at_load(tmp_path):
    app = write_app(tmp_path, """
        from squall import App

        app = App("bad")

        @app.function(on_failure="queue:missing")
        def f(event, ctx):
            pass
    """)
    result = squall("invoke", str(app), "f", cwd=tmp_path)
    assert result.returncode == 1
    assert "on_failure of 'f': unknown queue 'missing' (queues: none)" in result.stderr
