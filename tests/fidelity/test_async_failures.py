"""A failed asynchronous invocation, as Lambda runs and records it: every attempt has the
request id `ctx.invoke_async` returned, and after the two retries the event goes to the
function's dead-letter queue as it was sent, with `RequestID`, `ErrorCode` and
`ErrorMessage` attributes (the first kilobyte of the error message)."""

from __future__ import annotations

import json

from squall.backends import open_backend
from squall.sources.async_invoke import async_dlq
from tests.support import NodeProcess, wait_until, write_app

APP = """
    from squall import App

    app = App("async-failures")


    @app.http("POST", "/orders")
    def place(event, ctx):
        return {"id": ctx.invoke_async("charge", {"order": 42, "note": event["body"]})}


    @app.function()
    def charge(event, ctx):
        raise ValueError(f"card declined for order {event['order']}: " + "x" * 2000)
"""


def test_an_exhausted_event_reaches_the_dlq_with_lambdas_attributes(tmp_path):
    app = write_app(tmp_path, APP)
    with NodeProcess(app) as node, node.client() as client:
        response = client.post("/orders", content="ünïcode")
        assert response.status_code == 200
        backend = open_backend(f"sqlite:///{tmp_path / '.squall' / 'state.db'}")
        try:
            wait_until(lambda: backend.queue_stats(async_dlq("charge")).visible == 1, timeout=20,
                       message="the event in the DLQ")
            [dead] = backend.claim(async_dlq("charge"), 1, 30)
        finally:
            backend.close()
        log = node.log()
    assert json.loads(dead.body) == {"order": 42, "note": "ünïcode"}
    attributes = {name: (value["dataType"], value["stringValue"]) for name, value in dead.attributes.items()}
    request_ids = [line.split()[2] for line in log.splitlines() if line.startswith("START RequestId:")]
    event_id = response.json()["id"]
    assert request_ids[1:] == [event_id] * 3  # after the route's call, the event's three attempts
    assert attributes["RequestID"] == ("String", event_id)
    assert attributes["ErrorCode"] == ("Number", "200")
    data_type, message = attributes["ErrorMessage"]
    assert data_type == "String" and message.startswith("card declined for order 42: xxx")
    assert len(message.encode()) == 1024
