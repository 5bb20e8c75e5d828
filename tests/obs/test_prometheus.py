"""GET /metrics on real nodes: the exposition parses, and its counters, histograms and
gauges match the invocations made and the messages in the queues."""

from __future__ import annotations

import time
import uuid
from concurrent.futures import ThreadPoolExecutor

import httpx
import redis
from prometheus_client.parser import text_string_to_metric_families

from squall.backends import QueueConfig, open_backend
from tests.support import NodeProcess, free_port, wait_until, write_app

APP = """
    import json
    import time

    from squall import App

    app = App("metered")


    @app.http("GET", "/ok")
    def ok(event, ctx):
        return {"ok": True}


    @app.http("GET", "/fail")
    def fail(event, ctx):
        raise ValueError("failed on purpose")


    @app.http("GET", "/slow", reserved_concurrency=1, timeout=10)
    def slow(event, ctx):
        time.sleep(float(event["queryStringParameters"]["s"]))
        return {"slept": True}


    @app.on_queue("jobs", batch_size=1, max_receive_count=1)
    def work(event, ctx):
        for record in event["Records"]:
            if record["body"] == "bad":
                raise ValueError("bad job")
"""

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


def scrape(admin: int) -> Samples:
    """Every sample of the node's /metrics, parsed by prometheus-client's own parser."""
    response = httpx.get(f"http://127.0.0.1:{admin}/metrics", timeout=10)
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain; version=0.0.4")
    return {(sample.name, frozenset(sample.labels.items())): sample.value
            for family in text_string_to_metric_families(response.text) for sample in family.samples}


def value(samples: Samples, name: str, **labels: str) -> float | None:
    return samples.get((name, frozenset(labels.items())))


def test_counters_histograms_and_queue_gauges_match_what_was_done(tmp_path):
    url = f"sqlite:///{tmp_path}/.squall/state.db"
    admin = free_port()
    app = write_app(tmp_path, APP)
    with NodeProcess(app, backend=url, extra=["--admin-port", str(admin)]) as node, node.client() as client:
        backend = open_backend(url)
        try:
            assert [client.get("/ok").status_code for _ in range(5)] == [200] * 5
            assert [client.get("/fail").status_code for _ in range(3)] == [500] * 3

            # one slow invocation holds the only instance `slow` may have: the others are throttled
            with ThreadPoolExecutor(4) as pool:
                holder = pool.submit(client.get, "/slow", params={"s": "3"})
                time.sleep(0.5)
                busy = scrape(admin)
                refused = [pool.submit(client.get, "/slow", params={"s": "0"}) for _ in range(3)]
                statuses = [future.result().status_code for future in refused]
                assert holder.result().status_code == 200
            assert value(busy, "squall_concurrent_executions", function="slow") == 1
            throttled = statuses.count(429)
            assert throttled >= 1 and statuses.count(200) == 3 - throttled

            for body in ("one", "bad", "two"):
                backend.enqueue("jobs", body)
            backend.queue_declare("parked", QueueConfig())  # no consumer: its messages stay
            backend.enqueue_batch("parked", [("a", None, 0.0), ("b", None, 0.0), ("later", None, 600.0)])
            sent = time.time()
            wait_until(lambda: value(scrape(admin), "squall_invocations_total", function="work", trigger="queue",
                                     outcome="success") == 2, timeout=10, message="both good jobs metered")

            samples = scrape(admin)
            count = lambda function, trigger, outcome: value(  # noqa: E731
                samples, "squall_invocations_total", function=function, trigger=trigger, outcome=outcome)
            assert count("ok", "http", "success") == 5
            assert count("fail", "http", "error") == 3
            assert count("slow", "http", "success") == 1 + (3 - throttled)
            assert count("slow", "http", "throttled") == throttled
            assert value(samples, "squall_throttles_total", function="slow") == throttled
            assert count("work", "queue", "error") == 1
            assert value(samples, "squall_throttles_total", function="ok") is None

            # histograms: one observation per invocation that ran, one init per cold start
            assert value(samples, "squall_invocation_duration_seconds_count", function="ok") == 5
            assert value(samples, "squall_invocation_duration_seconds_bucket", function="ok", le="+Inf") == 5
            assert value(samples, "squall_invocation_duration_seconds_count", function="slow") == 1 + 3 - throttled
            assert value(samples, "squall_invocation_duration_seconds_bucket", function="slow", le="2.5") == (
                3 - throttled)  # the 3-second one is above that bucket
            assert value(samples, "squall_invocation_duration_seconds_sum", function="slow") >= 3
            cold = value(samples, "squall_cold_starts_total", function="ok")
            assert cold == 1  # sequential requests reuse the one instance
            assert value(samples, "squall_init_duration_seconds_count", function="ok") == cold
            assert value(samples, "squall_billed_gb_seconds_total", function="slow") >= 3 * 128 / 1024
            assert value(samples, "squall_instances", function="ok") == 1
            assert value(samples, "squall_concurrent_executions", function="ok") == 0

            # queues, read from the backend
            assert value(samples, "squall_queue_messages_visible", queue="parked") == 2
            assert value(samples, "squall_queue_messages_delayed", queue="parked") == 1
            assert value(samples, "squall_queue_messages_in_flight", queue="parked") == 0
            age = value(samples, "squall_queue_oldest_message_age_seconds", queue="parked")
            assert 0 < age <= time.time() - sent + 1
            assert value(samples, "squall_queue_messages_visible", queue="jobs") == 0
            assert value(samples, "squall_queue_dead_letter_messages", queue="jobs") == 1
            assert value(samples, "squall_queue_messages_visible", queue="jobs-dlq") == 1
            assert value(samples, "process_resident_memory_bytes") > 0
            [(node_id, up)] = [(dict(labels)["node"], v) for (name, labels), v in samples.items()
                               if name == "squall_node_info"]
            assert node_id and up == 1
        finally:
            backend.close()


def test_without_observability_there_is_no_metrics_endpoint(tmp_path):
    admin = free_port()
    app = write_app(tmp_path, APP)
    with NodeProcess(app, extra=["--admin-port", str(admin), "--no-observability"]) as node, node.client() as client:
        assert client.get("/ok").status_code == 200
        assert httpx.get(f"http://127.0.0.1:{admin}/metrics").status_code == 404
        assert httpx.get(f"http://127.0.0.1:{admin}/health").status_code == 200


def test_two_redis_nodes_each_report_the_cluster_queues_and_their_own_invocations(tmp_path, redis_server):
    url = f"redis://127.0.0.1:{redis_server.port}/{1 + uuid.uuid4().int % 15}"
    redis.Redis.from_url(url).flushdb()
    app = write_app(tmp_path, APP)
    admins = [free_port(), free_port()]
    first = NodeProcess(app, backend=url, extra=["--admin-port", str(admins[0])])
    second = NodeProcess(app, backend=url, extra=["--admin-port", str(admins[1])])
    with first, second:
        backend = open_backend(url)
        try:
            backend.queue_declare("parked", QueueConfig())
            backend.enqueue_batch("parked", [(f"m{i}", None, 0.0) for i in range(4)])
            with first.client() as client:
                assert [client.get("/ok").status_code for _ in range(3)] == [200] * 3
            with second.client() as client:
                assert client.get("/ok").status_code == 200
            one, two = scrape(admins[0]), scrape(admins[1])
            for samples in (one, two):
                assert value(samples, "squall_queue_messages_visible", queue="parked") == 4
                assert value(samples, "squall_queue_oldest_message_age_seconds", queue="parked") > 0
            ok = dict(function="ok", trigger="http", outcome="success")
            assert value(one, "squall_invocations_total", **ok) == 3
            assert value(two, "squall_invocations_total", **ok) == 1
            nodes = {dict(labels)["node"] for samples in (one, two) for name, labels in samples
                     if name == "squall_node_info"}
            assert len(nodes) == 2
        finally:
            backend.close()
