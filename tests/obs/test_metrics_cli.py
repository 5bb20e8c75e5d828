"""`squall metrics` on real nodes: counts, percentiles of known durations, concurrency,
cold starts and GB-seconds match the invocations made, as a table and as JSON; on Redis
it counts every node's invocations."""

from __future__ import annotations

import json
import math
from concurrent.futures import ThreadPoolExecutor

from squall.backends import open_backend
from squall.observability.metering import read_records
from tests.support import NodeProcess, squall, wait_until, write_app

APP = """
    import time
    from squall import App

    app = App("measured")

    @app.http("GET", "/work/{ms}", memory_mb=1769)
    def work(event, ctx):
        time.sleep(int(event["pathParameters"]["ms"]) / 1000)
        return {"slept": event["pathParameters"]["ms"]}

    @app.http("GET", "/flaky")
    def flaky(event, ctx):
        raise ValueError("flaky")

    @app.http("GET", "/parallel", memory_mb=1769)
    def parallel(event, ctx):
        time.sleep(0.4)
        return {}
"""

SLEEPS = list(range(20, 220, 20))  # ms: 20, 40, ..., 200


def metrics(url: str, *args: str) -> dict:
    result = squall("metrics", *args, "--json", "--since", "10m", "--period", "1d", "--backend", url)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def total(report: dict, key: str) -> float:
    return sum(period[key] for period in report["periods"])


def test_metrics_match_the_invocations_made(tmp_path):
    app = write_app(tmp_path, APP)
    url = f"sqlite:///{tmp_path}/state.db"
    with NodeProcess(app, backend=url) as node, node.client() as client:
        for ms in SLEEPS:
            assert client.get(f"/work/{ms}").status_code == 200
        for _ in range(3):
            assert client.get("/flaky").status_code == 500
        with ThreadPoolExecutor(3) as pool:
            assert [r.status_code for r in pool.map(lambda _: node.client().get("/parallel"), range(3))] == [200] * 3
        wait_until(lambda: total(metrics(url), "Invocations") == 16, timeout=10, message="every record flushed")

    everything = metrics(url)
    assert (total(everything, "Invocations"), total(everything, "Errors"), total(everything, "Throttles")) == (16, 3, 0)
    work = metrics(url, "work")
    assert work["function"] == "work" and (total(work, "Invocations"), total(work, "Errors")) == (10, 0)
    store = open_backend(url)
    records = [r for r in read_records(store) if r["function"] == "work"]
    store.close()
    durations = sorted(r["durationMs"] for r in records)
    assert math.isclose(total(work, "GBSeconds"), sum(r["billedMs"] / 1000 * 1769 / 1024 for r in records),
                        rel_tol=1e-6)
    assert total(work, "GBSeconds") >= sum(SLEEPS) / 1000 * 1769 / 1024
    if len(work["periods"]) == 1:  # (unless the run straddled midnight UTC)
        [period] = work["periods"]
        duration = period["Duration"]
        # nearest rank over what was metered, and close to the sleeps that were asked for
        assert duration["p50"] == round(durations[4], 3) and duration["p90"] == round(durations[8], 3)
        assert duration["p99"] == duration["Maximum"] == round(durations[9], 3)
        for measured, slept in ((duration["p50"], 100), (duration["p90"], 180), (duration["p99"], 200)):
            assert slept <= measured < slept + 15
        assert math.isclose(duration["Average"], sum(durations) / 10, abs_tol=0.001)
        assert period["ConcurrentExecutions"] == 1 and period["ColdStarts"] == 1 and period["ColdStartRate"] == 0.1
        [together] = metrics(url, "parallel")["periods"]
        assert together["ConcurrentExecutions"] == 3 and together["ColdStartRate"] == 1.0

    table = squall("metrics", "work", "--since", "10m", "--backend", url)
    assert table.returncode == 0, table.stderr
    assert "INVOCATIONS" in table.stdout and "P99 ms" in table.stdout and "GB-S" in table.stdout
    bad = squall("metrics", "--since", "ten minutes", "--backend", url)
    assert bad.returncode == 2 and "'ten minutes' is not a duration" in bad.stderr and "Traceback" not in bad.stderr
    for command in (["logs"], ["traces"]):  # one reading of durations for every command
        assert "'ten minutes' is not a duration" in squall(*command, "--since", "ten minutes", "--backend", url).stderr


def test_metrics_count_every_nodes_invocations_on_redis(tmp_path, redis_url):
    app = write_app(tmp_path, APP)
    extra = ["--objects", str(tmp_path / "objects")]
    with NodeProcess(app, backend=redis_url, extra=[*extra, "--node-id", "a"]) as a, \
            NodeProcess(app, backend=redis_url, extra=[*extra, "--node-id", "b"]) as b:
        for node, calls in ((a, 3), (b, 4)):
            with node.client() as client:
                for _ in range(calls):
                    assert client.get("/work/1").status_code == 200
                assert client.get("/flaky").status_code == 500
        wait_until(lambda: total(metrics(redis_url), "Invocations") == 9, timeout=10, message="both nodes' records")
        store = open_backend(redis_url)
        assert {r["node"] for r in read_records(store)} == {"a", "b"}
        store.close()
    report = metrics(redis_url, "work")
    assert (total(report, "Invocations"), total(report, "Errors")) == (7, 0)
    assert total(metrics(redis_url, "flaky"), "Errors") == 2
