"""`squall.testing.Harness`: a user's app tested in-process, inline, on a fake clock.

The app below is what a user would write; the tests are what their pytest suite would do
with it. Handlers run in this process, so module-level state and `unittest.mock.patch`
reach them.
"""

from __future__ import annotations

import json
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from unittest import mock

import pytest

from squall import App
from squall.errors import FunctionError, FunctionNotFound, FunctionTimeout, QueueNotFound
from squall.sources.async_invoke import async_queue
from squall.testing import Harness

app = App("harnessed")


def exchange_rate() -> float:
    """A dependency a test may want to replace (in real life: a call to another service)."""
    return 1.0


@app.http("GET", "/items/{id}")
def get_item(event, ctx):
    item = ctx.table("items").get(event["pathParameters"]["id"])
    return item if item else {"statusCode": 404, "body": json.dumps({"error": "not found"})}


@app.http("POST", "/items")
def put_item(event, ctx):
    item = json.loads(event["body"])
    ctx.table("items").put(item["id"], item)
    ctx.queue("audit").send(json.dumps(item), attributes={"kind": "item"})
    return {"statusCode": 201, "body": json.dumps(item)}


@app.on_queue("audit", batch_size=10, max_receive_count=3, visibility_timeout=30)
def audit(event, ctx):
    for record in event["Records"]:
        ctx.table("audit-log").put(record["messageId"], record)


@app.on_queue("fragile", max_receive_count=3, visibility_timeout=10)
def fragile(event, ctx):
    for record in event["Records"]:
        ctx.table("fragile-receives").put(record["attributes"]["ApproximateReceiveCount"], record["body"])
    raise RuntimeError("cannot process")


@app.function()
def add(event, ctx):
    return event["a"] + event["b"]


@app.function()
def add_twice(event, ctx):
    return ctx.invoke("add", {"a": ctx.invoke("add", event), "b": event["b"]})


@app.function()
def explode(event, ctx):
    raise ValueError(f"bad input {event!r}")


@app.function()
def convert(event, ctx):
    return event["amount"] * exchange_rate()


@app.function()
def start_job(event, ctx):
    return ctx.invoke_async("job", event)


@app.function()
def job(event, ctx):
    if event["n"] < 0:
        raise ValueError("negative")
    ctx.table("jobs").put(str(event["n"]), event["n"] * 2)


@app.function(timeout=0.1)
def sluggish(event, ctx):
    time.sleep(0.3)
    return "too late"


gate = threading.Event()
entered = threading.Event()


@app.http("GET", "/exclusive", reserved_concurrency=1)
def exclusive(event, ctx):
    """Holds its only instance until the test opens the gate."""
    entered.set()
    gate.wait(10)
    return {"done": True}


@pytest.fixture
def h():
    with Harness(app) as harness:
        yield harness


def test_http_routes_return_status_and_json(h):
    assert h.get("/items/1").status_code == 404
    created = h.post("/items", json={"id": "1", "name": "kettle"})
    assert created.status_code == 201
    assert created.json() == {"id": "1", "name": "kettle"}
    found = h.get("/items/1")
    assert (found.status_code, found.json()) == (200, {"id": "1", "name": "kettle"})
    assert h.table("items").get("1") == {"id": "1", "name": "kettle"}
    assert h.get("/nowhere").status_code == 404
    # the body passes through the gateway, as on an HTTP API: the handler's json.loads raises
    assert h.post("/items", content="{not json", headers={"content-type": "application/json"}).status_code == 500


def test_invoke_returns_the_result_and_the_invocation_record(h):
    assert h.invoke("add", {"a": 1, "b": 2}) == 3
    assert h.invoke("add_twice", {"a": 1, "b": 2}) == 5  # ctx.invoke runs inline too
    first, again = h.invocation("convert", {"amount": 1}), h.invocation("convert", {"amount": 1})
    assert (first.outcome, first.cold, again.cold) == ("success", True, False)


def test_a_raising_function_raises_function_error(h):
    with pytest.raises(FunctionError, match="bad input 7") as caught:
        h.invoke("explode", 7)
    assert caught.value.error_type == "ValueError"
    assert h.invocation("explode", 7).outcome == "error"


def test_queue_messages_are_delivered_when_drained(h):
    h.post("/items", json={"id": "2"})
    assert list(h.table("audit-log").scan()) == [] and h.queue_stats("audit").visible == 1
    result = h.drain("audit")
    assert (result.batches, result.succeeded, result.failed) == (1, 1, 0)
    [(_, record)] = list(h.table("audit-log").scan())
    assert json.loads(record["body"]) == {"id": "2"}
    assert record["eventSource"] == "aws:sqs"
    assert record["messageAttributes"]["kind"]["stringValue"] == "item"
    assert h.queue_stats("audit").total == 0


def test_delay_is_measured_on_the_fake_clock(h):
    h.send("audit", "later", delay_seconds=60)
    assert h.queue_stats("audit").delayed == 1
    h.advance(59)
    assert h.queue_stats("audit").visible == 0
    h.advance(1)
    assert h.queue_stats("audit").visible == 1
    h.drain("audit")
    [(_, record)] = list(h.table("audit-log").scan())
    waited = int(record["attributes"]["ApproximateFirstReceiveTimestamp"]) - int(record["attributes"]["SentTimestamp"])
    assert waited >= 60_000


def test_failing_message_is_retried_on_the_fake_clock_until_the_dlq(h):
    began, real_start = h.clock(), time.time()
    h.send("fragile", "doomed", attributes={"trace": "t-1"})
    result = h.drain("fragile")
    assert (result.succeeded, result.failed) == (0, 3)
    assert dict(h.table("fragile-receives").scan()) == {"1": "doomed", "2": "doomed", "3": "doomed"}
    [dead] = h.dead_letters("fragile")
    assert dead.body == "doomed" and dead.attributes["trace"]["stringValue"] == "t-1"
    assert h.queue_stats("fragile").total == 0
    assert h.clock() - began >= 10 + 20  # the backoff schedule passed on the fake clock...
    assert time.time() - real_start < 5  # ...not on the real one


def test_async_invocations_run_when_drained_and_are_retried_twice(h):
    h.invoke("start_job", {"n": 21})
    assert h.table("jobs").get("21") is None
    h.drain()
    assert h.table("jobs").get("21") == 42

    h.invoke("start_job", {"n": -1})
    result = h.drain()
    assert (result.succeeded, result.failed) == (0, 3)  # Lambda's one attempt plus two retries
    assert h.queue_stats(f"{async_queue('job')}-dlq").total == 1


def test_timeout_is_reported(h):
    with pytest.raises(FunctionTimeout):
        h.invoke("sluggish")
    assert h.invocation("sluggish").outcome == "timeout"


def test_reserved_concurrency_throttles_excess_requests(h):
    gate.clear()
    entered.clear()
    with ThreadPoolExecutor(1) as pool:
        first = pool.submit(h.get, "/exclusive")
        assert entered.wait(5)
        assert h.get("/exclusive").status_code == 429  # after the harness's 0.5 s throttle wait
        gate.set()
        assert first.result(5).status_code == 200


def test_patching_a_module_level_function_reaches_the_handler(h):
    assert h.invoke("convert", {"amount": 10}) == 10.0
    with mock.patch(f"{__name__}.exchange_rate", return_value=2.5):
        assert h.invoke("convert", {"amount": 10}) == 25.0
    assert h.invoke("convert", {"amount": 10}) == 10.0


def test_unknown_names_are_clear_errors(h):
    with pytest.raises(QueueNotFound):
        h.send("nowhere", "x")
    with pytest.raises(QueueNotFound):
        h.drain("nowhere")
    with pytest.raises(FunctionNotFound, match="unknown function 'nowhere'"):
        h.invoke("nowhere")
