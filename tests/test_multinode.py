"""Distributed mode: several `squall run` nodes sharing a real redis-server."""

from __future__ import annotations

import os
import subprocess
import sys
import time

import pytest

from squall.backends import open_backend
from squall.observability.metering import read_records
from squall.services import Queue
from tests.conftest import RedisServer
from tests.support import NodeProcess, free_port, platform_tracebacks, squall, wait_until, write_app

APP = """
    import json, os, time
    from squall import App

    app = App("cluster")
    NODE = os.environ.get("TEST_NODE_NAME", "?")

    @app.http("POST", "/items")
    def put_item(event, ctx):
        item = json.loads(event["body"])
        ctx.table("items").put(item["id"], item)
        return {"statusCode": 201, "body": event["body"]}

    @app.http("GET", "/items/{id}")
    def get_item(event, ctx):
        item = ctx.table("items").get(event["pathParameters"]["id"])
        return item or {"statusCode": 404, "body": "{}"}

    @app.on_queue("work", batch_size=5, visibility_timeout=2, max_receive_count=10)
    def work(event, ctx):
        for record in event["Records"]:
            ctx.table("done").put(record["body"], {"node": NODE})
            time.sleep(0.01)

    @app.on_queue("capped", batch_size=1, visibility_timeout=10, max_concurrency=4, reserved_concurrency=2)
    def capped(event, ctx):
        start = time.time()
        time.sleep(0.3)
        ctx.table("spans").put(event["Records"][0]["body"], [start, time.time()])

    @app.http("POST", "/fanout/{n}")
    def fanout(event, ctx):
        count = int(event["pathParameters"]["n"])
        for i in range(count):
            ctx.invoke_async("record", {"i": i})
        return {"queued": count}

    @app.function()
    def record(event, ctx):
        time.sleep(0.05)
        ctx.table("async-done").put(str(event["i"]), {"node": NODE})

    # an S3 store builds a boto3 client at first use: seconds of CPU at 128 MB's share
    @app.http("PUT", "/objects/{key}", memory_mb=1024, timeout=30)
    def put_object(event, ctx):
        ctx.objects("shared").put(event["pathParameters"]["key"], event["body"])
        return {"stored": event["pathParameters"]["key"]}

    @app.http("GET", "/objects/{key}", memory_mb=1024, timeout=30)
    def get_object(event, ctx):
        return ctx.objects("shared").get(event["pathParameters"]["key"]).decode()
"""


@pytest.fixture
def cluster(tmp_path, redis_url):
    """Start `count` nodes of the test app on the shared Redis (and a shared object dir)."""
    app = write_app(tmp_path, APP)
    started: list[NodeProcess] = []

    def start(count: int, objects: str | None = None) -> list[NodeProcess]:
        for _ in range(count):
            node = NodeProcess(app, backend=redis_url,
                               extra=["--objects", objects or str(tmp_path / "objects"),
                                      "--node-id", f"node-{len(started)}"])
            os.environ["TEST_NODE_NAME"] = f"node-{len(started)}"  # inherited by the node's instances
            started.append(node.start())
        os.environ.pop("TEST_NODE_NAME", None)
        return started

    yield start
    for node in started:
        node.stop()


def done_count(url: str, table: str) -> int:
    store = open_backend(url)
    try:
        return len(store.table_scan(table, limit=100000))
    finally:
        store.close()


def test_every_node_serves_http_and_sees_shared_state(cluster, redis_url):
    a, b, c = cluster(3)
    with a.client() as client:
        assert client.post("/items", json={"id": "x1", "name": "shared"}).status_code == 201
    for node in (b, c):
        with node.client() as client:
            assert client.get("/items/x1").json() == {"id": "x1", "name": "shared"}
    listing = squall("nodes", "--backend", redis_url)
    assert listing.returncode == 0, listing.stderr
    assert all(f"node-{i}" in listing.stdout for i in range(3))
    with a.client() as client:
        assert client.put("/objects/greeting", content="hello from a").status_code == 200
    with c.client() as client:
        assert client.get("/objects/greeting").text == "hello from a"


def test_nodes_drain_one_queue_together(cluster, redis_url):
    cluster(3)
    store = open_backend(redis_url)
    bodies = [f"m{i}" for i in range(600)]
    for chunk in range(0, len(bodies), 100):
        Queue(store, "work").send_batch(bodies[chunk:chunk + 100])
    wait_until(lambda: done_count(redis_url, "done") == 600, timeout=60, message="600 messages processed")
    workers = {item.value["node"] for item in store.table_scan("done", limit=1000)}
    assert len(workers) >= 2, f"only {workers} did work"
    wait_until(lambda: store.queue_stats("work").total == 0, timeout=5, message="every message acknowledged")
    store.close()


def test_async_invocations_and_metering_span_nodes(cluster, redis_url):
    nodes = cluster(3)
    with nodes[0].client() as client:
        assert client.post("/fanout/60").json() == {"queued": 60}
    wait_until(lambda: done_count(redis_url, "async-done") == 60, timeout=60, message="60 async invocations")
    store = open_backend(redis_url)
    workers = {item.value["node"] for item in store.table_scan("async-done", limit=100)}
    assert len(workers) >= 2, f"only {workers} ran async invocations"

    def metered():
        records = list(read_records(store))
        return {r["node"] for r in records if r["function"] == "record"} if len(
            [r for r in records if r["function"] == "record"]) == 60 else None

    metered_nodes = wait_until(metered, timeout=10, message="metering records of all 60 invocations")
    assert metered_nodes == {f"node-{i}" for i in range(3)} & metered_nodes and len(metered_nodes) >= 2
    store.close()


def test_reserved_concurrency_is_cluster_wide(cluster, redis_url):
    cluster(3)
    store = open_backend(redis_url)
    Queue(store, "capped").send_batch([f"c{i}" for i in range(12)])
    wait_until(lambda: done_count(redis_url, "spans") == 12, timeout=60, message="12 capped invocations")
    spans = [item.value for item in store.table_scan("spans")]
    events = sorted([(s, 1) for s, _ in spans] + [(e, -1) for _, e in spans], key=lambda x: (x[0], x[1]))
    running = peak = 0
    for _, step in events:
        running += step
        peak = max(peak, running)
    assert peak <= 2, f"{peak} instances ran at once with reserved_concurrency=2 across 3 nodes"
    assert peak == 2  # and the cap is actually used
    store.close()


def test_killed_node_work_is_taken_over(cluster, redis_url):
    nodes = cluster(3)
    store = open_backend(redis_url)
    Queue(store, "work").send_batch([f"k{i}" for i in range(100)])
    for chunk in range(100, 1500, 100):
        Queue(store, "work").send_batch([f"k{i}" for i in range(chunk, chunk + 100)])
    wait_until(lambda: done_count(redis_url, "done") >= 100, timeout=30, message="work started")
    nodes[0].kill()  # SIGKILL while it holds claimed messages
    assert done_count(redis_url, "done") < 1500
    wait_until(lambda: done_count(redis_url, "done") == 1500, timeout=90, message="all 1500 processed")
    wait_until(lambda: store.queue_stats("work").total == 0, timeout=30, message="queue empty")
    store.close()


def test_nodes_survive_a_redis_restart(tmp_path):
    server = RedisServer(tmp_path)
    server.start()
    app = write_app(tmp_path, APP)
    node = NodeProcess(app, backend=server.url, extra=["--objects", str(tmp_path / "objects")]).start()
    try:
        with node.client() as client:
            assert client.post("/items", json={"id": "before"}).status_code == 201
        time.sleep(1.2)  # appendfsync everysec
        server.stop()
        time.sleep(1.5)
        with node.client() as client:
            assert client.get("/items/before").status_code >= 500  # down: an error, not a hang or crash
        server.start()
        with node.client() as client:
            wait_until(lambda: client.get("/items/before").status_code == 200, timeout=30,
                       message="node reconnected")
            assert client.post("/items", json={"id": "after"}).status_code == 201
        store = open_backend(server.url)
        Queue(store, "work").send("after-restart")
        wait_until(lambda: store.table_get("done", "after-restart"), timeout=30, message="queue consumed")
        store.close()
        assert node.process.poll() is None
        assert platform_tracebacks(node.log()) == 0
        assert "redis" in node.log().lower()
    finally:
        node.stop()
        server.stop()


def test_objects_on_an_s3_compatible_endpoint(cluster, tmp_path):
    port = free_port()
    moto = subprocess.Popen([sys.executable, "-m", "moto.server", "-p", str(port), "-H", "127.0.0.1"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    os.environ.update(AWS_ACCESS_KEY_ID="test", AWS_SECRET_ACCESS_KEY="test", AWS_DEFAULT_REGION="us-east-1")
    try:
        import boto3

        endpoint = f"http://127.0.0.1:{port}"
        s3 = boto3.client("s3", endpoint_url=endpoint)
        wait_until(lambda: _s3_up(s3), timeout=30, message="moto server")
        s3.create_bucket(Bucket="squall-objects")
        a, b = cluster(2, objects=f"s3://squall-objects/prod?endpoint_url={endpoint}")
        with a.client() as client:
            assert client.put("/objects/report.txt", content="stored in s3").status_code == 200
        with b.client() as client:
            assert client.get("/objects/report.txt").text == "stored in s3"
        keys = [o["Key"] for o in s3.list_objects_v2(Bucket="squall-objects")["Contents"]]
        assert keys == ["prod/shared/report.txt"]
    finally:
        moto.terminate()
        moto.wait(10)


def _s3_up(client) -> bool:
    try:
        client.list_buckets()
        return True
    except Exception:  # noqa: BLE001 - not listening yet
        return False
