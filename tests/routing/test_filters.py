"""Filters on event sources, end to end: `on_queue(..., filters=[...])` on real nodes.

Only the messages a filter matches reach the function; the others are deleted from the
queue without an invocation and counted (`squall queues`' FILTERED column). On SQLite
with one node, on Redis with two sharing the queue.
"""

from __future__ import annotations

import json

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from squall.backends import open_backend
from squall.services import Queue
from tests.support import NodeProcess, free_port, squall, wait_until, write_app

APP = """
    from squall import App

    app = App("filters")

    @app.on_queue("orders", batch_size=10, visibility_timeout=5, filters=[
        {"body": {"kind": ["paid"], "total": [{"numeric": [">=", 10]}]}},
        {"body": [{"prefix": "ping"}]},
        {"messageAttributes": {"priority": {"stringValue": ["high"]}}},
    ])
    def orders(event, ctx):
        for record in event["Records"]:
            ctx.table("seen").put(record["messageId"], record["body"])
"""

#: (body, attributes, delivered?)
MESSAGES = [
    (json.dumps({"kind": "paid", "total": 12}), None, True),
    (json.dumps({"kind": "paid", "total": 3}), None, False),       # total too small
    (json.dumps({"kind": "refund", "total": 50}), None, False),
    ("ping 1", None, True),                                          # a plain string body
    ("pong", None, False),
    (json.dumps({"kind": "paid"}), None, False),                     # no total
    ('{"kind": "paid", "total": 10', None, False),                   # not JSON: a plain string
    ("anything", {"priority": "high"}, True),
    ("anything", {"priority": "low"}, False),
    (json.dumps({"kind": "paid", "total": 10.0}), None, True),
]


def send_all(url: str) -> dict[str, bool]:
    store = open_backend(url)
    try:
        queue = Queue(store, "orders")
        return {queue.send(body, attributes=attributes): delivered for body, attributes, delivered in MESSAGES}
    finally:
        store.close()


def seen(url: str) -> set[str]:
    store = open_backend(url)
    try:
        return {item.key for item in store.table_scan("seen")}
    finally:
        store.close()


def queue_row(app_dir, url: str) -> dict[str, str]:
    result = squall("queues", "--backend", url, cwd=app_dir)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    header = lines[0].split()
    return next(dict(zip(header, line.split(), strict=True)) for line in lines[1:] if line.startswith("orders "))


def check_filtered_delivery(app_dir, url: str, nodes: list[NodeProcess]) -> None:
    sent = send_all(url)
    wanted = {message_id for message_id, delivered in sent.items() if delivered}
    wait_until(lambda: seen(url) == wanted, timeout=20, message="the matching messages to be handled")
    dropped = len(sent) - len(wanted)
    # the dropped ones are gone from the queue (not in flight, not waiting) and counted
    wait_until(lambda: queue_row(app_dir, url)["FILTERED"] == str(dropped), timeout=10,
               message=f"FILTERED to reach {dropped}")
    row = queue_row(app_dir, url)
    assert (row["DEPTH"], row["IN_FLIGHT"], row["DLQ_DEPTH"]) == ("0", "0", "0")
    assert seen(url) == wanted  # and never invoked with them
    for node in nodes:
        assert "Traceback" not in node.log()


def test_filters_on_sqlite(tmp_path):
    app = write_app(tmp_path, APP)
    url = f"sqlite:///{tmp_path}/state.db"
    admin = free_port()
    node = NodeProcess(app, backend=url, extra=["--admin-port", str(admin)]).start()
    try:
        check_filtered_delivery(tmp_path, url, [node])
        # and the same count on /metrics
        text = httpx.get(f"http://127.0.0.1:{admin}/metrics", timeout=10).text
        [count] = [sample.value for family in text_string_to_metric_families(text) for sample in family.samples
                   if sample.name == "squall_queue_filtered_messages_total" and sample.labels == {"queue": "orders"}]
        assert str(int(count)) == queue_row(tmp_path, url)["FILTERED"]
    finally:
        node.stop()


def test_filters_on_redis_with_two_nodes(tmp_path, redis_url):
    app = write_app(tmp_path, APP)
    nodes = [NodeProcess(app, backend=redis_url).start(), NodeProcess(app, backend=redis_url).start()]
    try:
        check_filtered_delivery(tmp_path, redis_url, nodes)
    finally:
        for node in nodes:
            node.stop()


def test_a_bad_filter_stops_the_app_at_load(tmp_path):
    app = write_app(tmp_path, """
        from squall import App

        app = App("bad")

        @app.on_queue("orders", filters=[{"body": {"kind": ["paid"]}}, {"body": {"total": [{"numeric": [">", "10"]}]}}])
        def orders(event, ctx):
            pass
    """)
    result = squall("invoke", str(app), "orders", "--data", "{}", cwd=tmp_path)
    assert result.returncode != 0
    assert "filter 1 of queue 'orders'" in result.stderr
    assert "Value of > must be numeric (at body.total[0].numeric)" in result.stderr
    node = NodeProcess(app, backend=f"sqlite:///{tmp_path}/state.db")
    with pytest.raises(RuntimeError, match="Value of > must be numeric"):
        node.start()
