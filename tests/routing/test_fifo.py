"""FIFO queues end to end: real `squall run` nodes on SQLite, and two on Redis.

Handlers append each record's `n` to a per-group log in a table (a conditional write, so a
lost update fails loudly) and, where asked, flag two batches of one group running at once
(a `busy:<group>` item taken with if_absent). Tests read the logs back from the backend.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import pytest
import redis

from squall.backends import open_backend
from squall.services import Queue, SendEntry
from tests.support import NodeProcess, squall, wait_until, write_app

APP = """
    import json, os, time, uuid

    from squall import App
    from squall.errors import ConditionFailed, SquallError

    app = App("fifo")
    NODE = os.environ.get("TEST_NODE_NAME", "solo")


    def consume(event, ctx, table, pause=0.0, exclusive=True, poison=()):
        \"\"\"Log each record's n in its group's log; with `exclusive`, flag a group whose
        batches overlap. A body in `poison` fails the invocation.\"\"\"
        seen = ctx.table(table)
        groups = sorted({r["attributes"]["MessageGroupId"] for r in event["Records"]})
        start = time.time()
        for group in groups if exclusive else ():
            try:
                seen.put(f"busy:{group}", ctx.aws_request_id, if_absent=True)
            except ConditionFailed:
                seen.put(f"overlap:{uuid.uuid4()}", group)
        for r in event["Records"]:
            if r["body"] in poison:
                raise ValueError(f"poison {r['body']}")
            group, attributes = r["attributes"]["MessageGroupId"], r["attributes"]
            entry = [json.loads(r["body"])["n"], attributes["SequenceNumber"], NODE]
            item = seen.get_item(f"log:{group}")
            if item is None:
                seen.put(f"log:{group}", [entry], if_absent=True)
            else:
                seen.put(f"log:{group}", item.value + [entry], if_version=item.version)
            time.sleep(pause)
        for group in groups if exclusive else ():
            seen.delete(f"busy:{group}")
        seen.put(f"batch:{ctx.aws_request_id}", [start, time.time(), groups])


    @app.on_queue("orders.fifo", batch_size=3, max_concurrency=2, visibility_timeout=10)
    def orders(event, ctx):
        consume(event, ctx, "orders", pause=0.01)


    @app.on_queue("jobs.fifo", batch_size=1, max_receive_count=2, visibility_timeout=1)
    def jobs(event, ctx):
        consume(event, ctx, "jobs", poison=('{"n": -1}',))


    @app.on_queue("durable.fifo", batch_size=5, visibility_timeout=2, max_concurrency=2)
    def durable(event, ctx):
        consume(event, ctx, "durable", pause=0.1, exclusive=False)


    app.on_queue("pt.fifo", handler="pt_fifo.handler", name="pt", batch_size=10, visibility_timeout=1)


    @app.on_queue("content.fifo", content_based_deduplication=True)
    def content(event, ctx):
        for r in event["Records"]:
            ctx.table("content").put(r["messageId"], r)


    @app.on_queue("explicit.fifo")
    def explicit(event, ctx):
        for r in event["Records"]:
            ctx.table("explicit").put(r["messageId"], r)


    @app.http("POST", "/send/{queue}")
    def send(event, ctx):
        request = json.loads(event["body"])
        try:
            message_id = ctx.queue(event["pathParameters"]["queue"]).send(
                request["body"], group_id=request.get("group_id"), dedup_id=request.get("dedup_id"))
        except SquallError as exc:
            return {"statusCode": 400, "body": json.dumps({"error": type(exc).__name__, "message": str(exc)})}
        return {"messageId": message_id}
"""

#: an unmodified Powertools handler: stops at the first failure, reports it and the rest
PT_FIFO = """
    import json

    from aws_lambda_powertools.utilities.batch import SqsFifoPartialProcessor, process_partial_response
    from aws_lambda_powertools.utilities.parser.models import SqsModel

    processor = SqsFifoPartialProcessor()


    def handler(event, context):
        SqsModel.model_validate(event)  # Lambda's FIFO records, as Powertools' parser reads them
        log = context.table("powertools")

        def record_handler(record):
            n = json.loads(record.body)["n"]
            if n == 2 and record.attributes.approximate_receive_count == "1":
                raise ValueError("the first receive of 2 fails")
            item = log.get_item("log")
            log.put("log", (item.value if item else []) + [n], if_version=item.version if item else None,
                    if_absent=item is None)

        response = process_partial_response(event, record_handler, processor, context)
        log.put(f"response:{context.aws_request_id}", [response, [r["messageId"] for r in event["Records"]]])
        return response
"""


def group_logs(state, table: str) -> dict[str, list]:
    return {item.key.removeprefix("log:"): item.value for item in state.table_scan(table, prefix="log:")}


def send_interleaved(state, queue: str, groups: list[str], count: int) -> None:
    """`count` messages to each group, the groups' messages interleaved, in batches of 10."""
    entries = [SendEntry(json.dumps({"n": n}), group, f"{group}-{n}") for n in range(count) for group in groups]
    for start in range(0, len(entries), 10):
        Queue(state, queue).send_batch(entries[start:start + 10])


def complete(state, table: str, groups: list[str], count: int):
    logs = group_logs(state, table)
    return logs if all(len({n for n, _, _ in logs.get(g, [])}) == count for g in groups) else None


def assert_in_order(log: list, count: int) -> None:
    """Every n once or more, in send order with sequence numbers increasing; a redelivery
    may only go back (to the start of the batch that was cut off), never skip ahead."""
    ns = [n for n, _, _ in log]
    assert list(dict.fromkeys(ns)) == list(range(count)), ns
    for (n, sequence, _), (later, later_sequence, _) in zip(log, log[1:], strict=False):
        assert later == n + 1 or later <= n, ns
        assert (later_sequence > sequence) == (later > n), log


# ---- one node on SQLite ---------------------------------------------------------------


@pytest.fixture(scope="module")
def url(tmp_path_factory) -> str:
    """The module's node state (`state`, from tests/conftest.py, opens it beside the node)."""
    return f"sqlite:///{tmp_path_factory.mktemp('fifo')}/state.db"


@pytest.fixture(scope="module")
def node(url):
    directory = Path(url.removeprefix("sqlite:///")).parent
    write_app(directory, PT_FIFO, "pt_fifo.py")
    with NodeProcess(write_app(directory, APP), backend=url) as running:
        yield running


def test_each_group_is_delivered_in_order_one_batch_at_a_time(node, state):
    groups = ["a", "b", "c", "d"]
    send_interleaved(state, "orders.fifo", groups, 15)
    logs = wait_until(lambda: complete(state, "orders", groups, 15), timeout=20, message="every group delivered")
    for group in groups:
        assert [n for n, _, _ in logs[group]] == list(range(15))  # no failure: each exactly once, in order
        assert_in_order(logs[group], 15)
    assert state.table_scan("orders", prefix="overlap:") == []
    batches = [item.value for item in state.table_scan("orders", prefix="batch:")]
    assert any(s1 < e2 and s2 < e1 and not set(g1) & set(g2)  # other groups did run alongside
               for i, (s1, e1, g1) in enumerate(batches) for s2, e2, g2 in batches[i + 1:])
    wait_until(lambda: state.queue_stats("orders.fifo").total == 0, timeout=5, message="every message acked")


def test_a_poison_message_blocks_only_its_group_then_goes_to_the_dlq(node, state):
    Queue(state, "jobs.fifo").send_batch([SendEntry('{"n": -1}', "bad", "p"), SendEntry('{"n": 0}', "bad", "b0"),
                                          SendEntry('{"n": 1}', "bad", "b1")]
                                         + [SendEntry(json.dumps({"n": n}), "good", f"g{n}") for n in range(5)])
    logs = wait_until(lambda: complete(state, "jobs", ["good"], 5), timeout=10, message="the good group")
    assert "bad" not in logs  # held behind its failing head, which is waiting for its retry
    logs = wait_until(lambda: complete(state, "jobs", ["bad"], 2), timeout=15, message="the bad group after the DLQ")
    assert [n for n, _, _ in logs["bad"]] == [0, 1]
    [dead] = state.peek("jobs-dlq.fifo")
    assert (dead.body, dead.group, dead.dedup_id) == ('{"n": -1}', "bad", "p")
    wait_until(lambda: state.queue_stats("jobs.fifo").total == 0, timeout=5, message="every message acked")


def test_powertools_fifo_processor_runs_unmodified(node, state):
    ids = Queue(state, "pt.fifo").send_batch([SendEntry(json.dumps({"n": n}), "g", str(n)) for n in range(5)])
    log = wait_until(lambda: (item := state.table_get("powertools", "log")) and len(item.value) == 5 and item.value,
                     timeout=15, message="all five processed")
    assert log == [0, 1, 2, 3, 4]  # 3 and 4 waited for 2: once each, in order
    responses = sorted((item.value for item in state.table_scan("powertools", prefix="response:")), key=len)
    first = next(response for response, records in responses if records == ids)
    assert first == {"batchItemFailures": [{"itemIdentifier": i} for i in ids[2:]]}  # it stopped at 2
    wait_until(lambda: state.queue_stats("pt.fifo").total == 0, timeout=5, message="every message acked")
    assert state.queue_stats("pt-dlq.fifo").total == 0


def test_duplicates_are_dropped_through_ctx_and_the_cli(node, state, url):
    def send(queue: str, **request) -> dict:
        with node.client() as client:
            return client.post(f"/send/{queue}", json=request).json()

    first = send("content.fifo", body="same", group_id="g")["messageId"]
    assert send("content.fifo", body="same", group_id="other")["messageId"] == first  # by the body's SHA-256
    other = send("content.fifo", body="different", group_id="g")["messageId"]
    explicit = send("explicit.fifo", body="a", group_id="g", dedup_id="d1")["messageId"]
    assert send("explicit.fifo", body="b", group_id="g", dedup_id="d1")["messageId"] == explicit
    assert send("explicit.fifo", body="c", group_id="g") == {
        "error": "ConfigError", "message": "FIFO queue 'explicit.fifo' needs a dedup_id (MessageDeduplicationId) "
                                           "unless it is declared with content_based_deduplication=True"}

    sent = [squall("send", "explicit.fifo", "cli", "--group-id", "g", "--dedup-id", "d2", "--backend", url)
            for _ in range(2)]
    assert [r.returncode for r in sent] == [0, 0], sent[0].stderr
    assert sent[0].stdout == sent[1].stdout
    refused = squall("send", "explicit.fifo", "no group", "--backend", url)
    assert refused.returncode != 0 and "needs a group_id" in refused.stderr

    content = wait_until(lambda: {i.key: i.value for i in state.table_scan("content")} if len(
        state.table_scan("content")) == 2 else None, timeout=10, message="two content messages")
    assert set(content) == {first, other}
    assert content[first]["attributes"]["MessageDeduplicationId"] == hashlib.sha256(b"same").hexdigest()
    assert content[first]["attributes"]["AWSTraceHeader"].startswith("Root=1-")  # the sender's trace goes on
    records = wait_until(lambda: [i.value for i in state.table_scan("explicit")] if len(
        state.table_scan("explicit")) == 2 else None, timeout=10, message="two explicit messages")
    assert sorted((r["body"], r["attributes"]["MessageDeduplicationId"]) for r in records) == [("a", "d1"),
                                                                                              ("cli", "d2")]
    wait_until(lambda: state.queue_stats("explicit.fifo").total == 0, timeout=5, message="acked")
    assert len(state.table_scan("explicit")) == 2  # and nothing more came


# ---- two nodes on Redis ---------------------------------------------------------------


@pytest.fixture
def cluster(tmp_path, redis_server):
    url = f"redis://127.0.0.1:{redis_server.port}/0"
    redis.Redis.from_url(url).flushdb()
    write_app(tmp_path, PT_FIFO, "pt_fifo.py")
    app = write_app(tmp_path, APP)
    nodes = []
    for name in ("node-0", "node-1"):
        os.environ["TEST_NODE_NAME"] = name  # inherited by the node's instances
        try:
            nodes.append(NodeProcess(app, backend=url, extra=["--objects", str(tmp_path / "objects"),
                                                              "--node-id", name]).start())
        finally:
            os.environ.pop("TEST_NODE_NAME", None)
    store = open_backend(url)
    yield nodes, store
    store.close()
    for node in nodes:
        node.stop()


def test_two_nodes_never_run_two_batches_of_a_group_at_once(cluster):
    nodes, store = cluster
    groups = ["a", "b", "c", "d", "e"]
    send_interleaved(store, "orders.fifo", groups, 20)
    logs = wait_until(lambda: complete(store, "orders", groups, 20), timeout=30, message="every group delivered")
    for group in groups:
        assert [n for n, _, _ in logs[group]] == list(range(20))
        assert_in_order(logs[group], 20)
    assert store.table_scan("orders", prefix="overlap:") == []
    workers = {node for log in logs.values() for _, _, node in log}
    assert workers == {"node-0", "node-1"}, f"only {workers} did work"


def test_a_node_killed_mid_batch_loses_nothing_and_keeps_order(cluster):
    nodes, store = cluster
    groups = ["a", "b", "c", "d"]
    send_interleaved(store, "durable.fifo", groups, 20)
    # two batches in flight per node (max_concurrency=2): node-0 holds two of the four groups
    wait_until(lambda: sum(node == "node-0" for log in group_logs(store, "durable").values() for _, _, node in log)
               >= 3, timeout=15, message="node-0 at work")
    nodes[0].kill()  # SIGKILL mid-batch: its batches come back after the visibility timeout
    logs = wait_until(lambda: complete(store, "durable", groups, 20), timeout=30, message="every group delivered")
    for group in groups:
        assert_in_order(logs[group], 20)
    # a group node-0 worked on and node-1 finished (which group's batch node-0 held when it
    # was killed varies: groups move between nodes from batch to batch)
    taken_over = [g for g, log in logs.items() if any(node == "node-0" for _, _, node in log)
                  and log[-1][2] == "node-1"]
    assert taken_over, "no group of the killed node was finished by the other"
    wait_until(lambda: store.queue_stats("durable.fifo").total == 0, timeout=10, message="every message acked")
    assert store.queue_stats("durable-dlq.fifo").total == 0
