"""Cold start as libraries see it, on a real node: Powertools Logger's `cold_start` field,
Powertools Metrics' `ColdStart` metric and Squall's metering must tell the same story.

Both Powertools utilities decide from a module-level flag (true until the first
invocation) and from `AWS_LAMBDA_INITIALIZATION_TYPE`: on a `provisioned-concurrency`
instance neither ever reports a cold start, since its initialisation happened before any
request waited for it. Squall meters an invocation cold when it had to fork an instance
for it, and a provisioned instance is forked at start-up, so the three agree when the
handler's module (and so Powertools) is imported in the instance, after its environment
is set — as a `"module.function"` handler is.

Lambda writes `Init Duration` in the REPORT line of the first invocation of every
execution environment, provisioned ones included (their init ran ahead of time, so that
invocation is not a cold start); Squall does the same, and its metering record is the
cold/warm verdict.
"""

from __future__ import annotations

import json
import re
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from squall.backends import open_backend
from squall.observability.metering import read_records
from tests.support import NodeProcess, write_app

#: an unmodified Powertools handler, as deployed to Lambda
PROBE = """
    import os
    import time

    from aws_lambda_powertools import Logger, Metrics
    from aws_lambda_powertools.metrics import MetricUnit

    logger = Logger(service="probe")
    metrics = Metrics(namespace="Probe", service="probe")


    @logger.inject_lambda_context
    @metrics.log_metrics(capture_cold_start_metric=True)
    def lambda_handler(event, context):
        time.sleep(float((event.get("queryStringParameters") or {}).get("sleep", 0)))
        metrics.add_metric(name="Probes", unit=MetricUnit.Count, value=1)
        metrics.add_metadata(key="request_id", value=context.aws_request_id)
        logger.info("probe")
        return {"requestId": context.aws_request_id,
                "initialization": os.environ["AWS_LAMBDA_INITIALIZATION_TYPE"]}
"""

APP = """
    from squall import App

    app = App("coldstart")
    app.http("GET", "/ondemand", handler="probe.lambda_handler", name="ondemand")
    app.http("GET", "/provisioned", handler="probe.lambda_handler", name="provisioned", provisioned_concurrency=1)
    app.http("GET", "/spillover", handler="probe.lambda_handler", name="spillover", provisioned_concurrency=1)
"""

REPORT = re.compile(r"REPORT RequestId: (?P<id>\S+)\tDuration: [\d.]+ ms\tBilled Duration: \d+ ms\t"
                    r"Memory Size: \d+ MB\tMax Memory Used: \d+ MB(?:\tInit Duration: (?P<init>[\d.]+) ms)?$")


@dataclass(frozen=True)
class Seen:
    """What each party said about one invocation."""

    initialization: str
    #: Powertools Logger's `cold_start` key
    logger_cold: bool
    #: whether Powertools Metrics emitted its `ColdStart` metric
    metric_cold: bool
    #: the REPORT line's Init Duration, if it has one
    report_init_ms: float | None
    #: the metering record's `cold` and `initMs`
    metered_cold: bool
    metered_init_ms: float | None


def observe(log: str, records: list[dict], bodies: list[dict]) -> dict[str, Seen]:
    """Each request's verdicts, read from the node's log and its metering records."""
    lines = log.splitlines()
    documents = [json.loads(line) if line.startswith("{") else None for line in lines]
    reports = {m["id"]: m["init"] for m in map(REPORT.match, lines) if m}
    metered = {r["requestId"]: r for r in records}
    seen = {}
    for body in bodies:
        request_id = body["requestId"]
        # the Logger line, then (if cold) the ColdStart blob, then the blob of the Probes metric
        first = next(i for i, d in enumerate(documents) if d and d.get("function_request_id") == request_id)
        last = next(i for i, d in enumerate(documents) if d and d.get("request_id") == request_id)
        between = [d for d in documents[first + 1:last] if d and "_aws" in d]
        init = reports[request_id]
        seen[request_id] = Seen(
            initialization=body["initialization"],
            logger_cold=documents[first]["cold_start"],
            metric_cold=any(d.get("ColdStart") == [1.0] for d in between),
            report_init_ms=None if init is None else float(init),
            metered_cold=metered[request_id]["cold"],
            metered_init_ms=metered[request_id]["initMs"],
        )
    return seen


def run_node(directory: Path, requests) -> dict[str, Seen]:
    """Start a node on the app in `directory`, make the requests, stop it (flushing its
    meter) and gather what was said of each invocation."""
    backend = f"sqlite:///{directory / 'state.db'}"
    with NodeProcess(directory / "app.py", backend=backend) as node:
        bodies = requests(node)
        assert node.stop() == 0
    store = open_backend(backend)
    try:
        records = list(read_records(store))
    finally:
        store.close()
    return observe(node.log(), records, bodies)


def get(node: NodeProcess, path: str, **params) -> dict:
    response = httpx.get(node.url + path, params=params, timeout=30)
    assert response.status_code == 200, response.text
    return response.json()


@pytest.fixture(scope="module")
def seen(tmp_path_factory) -> dict[str, list[Seen]]:
    directory = tmp_path_factory.mktemp("coldstart")
    write_app(directory, PROBE, "probe.py")
    write_app(directory, APP)
    by_function: dict[str, list[dict]] = {"ondemand": [], "provisioned": [], "spillover": []}

    def requests(node: NodeProcess) -> list[dict]:
        for function in ("ondemand", "provisioned"):
            by_function[function] += [get(node, f"/{function}"), get(node, f"/{function}")]
        # two at once on a function with one provisioned instance: one of them needs a new one
        # (each takes a second, so they overlap unless the first starts over a second late)
        first = threading.Thread(target=lambda: by_function["spillover"].append(get(node, "/spillover", sleep=1)))
        first.start()
        time.sleep(0.3)
        by_function["spillover"].append(get(node, "/spillover", sleep=1))
        first.join()
        return [body for bodies in by_function.values() for body in bodies]

    observed = run_node(directory, requests)
    return {function: [observed[b["requestId"]] for b in bodies] for function, bodies in by_function.items()}


def test_on_demand_first_call_is_cold_for_everyone_and_the_second_warm(seen):
    cold, warm = seen["ondemand"]
    assert cold.initialization == warm.initialization == "on-demand"
    assert (cold.logger_cold, cold.metric_cold, cold.metered_cold) == (True, True, True)
    assert cold.report_init_ms is not None and cold.metered_init_ms is not None
    assert abs(cold.report_init_ms - cold.metered_init_ms) < 1  # one measurement, rounded differently
    assert (warm.logger_cold, warm.metric_cold, warm.metered_cold) == (False, False, False)
    assert warm.report_init_ms is None and warm.metered_init_ms is None


def test_provisioned_instance_is_never_cold(seen):
    first, second = seen["provisioned"]
    assert first.initialization == second.initialization == "provisioned-concurrency"
    for call in (first, second):
        assert (call.logger_cold, call.metric_cold, call.metered_cold) == (False, False, False)
        assert call.metered_init_ms is None
    # as on Lambda, the environment's (ahead-of-time) init is reported with its first invocation
    assert first.report_init_ms is not None and second.report_init_ms is None


def test_a_call_beyond_the_provisioned_instances_is_an_on_demand_cold_start(seen):
    by_type = {call.initialization: call for call in seen["spillover"]}
    assert set(by_type) == {"provisioned-concurrency", "on-demand"}
    warm, cold = by_type["provisioned-concurrency"], by_type["on-demand"]
    assert (warm.logger_cold, warm.metric_cold, warm.metered_cold) == (False, False, False)
    assert (cold.logger_cold, cold.metric_cold, cold.metered_cold) == (True, True, True)
    assert cold.report_init_ms is not None and cold.metered_init_ms is not None


@pytest.mark.xfail(strict=True, reason="Powertools Metrics reads AWS_LAMBDA_INITIALIZATION_TYPE when it is "
                                       "imported; imported by the app file, it is imported once by the zygote, "
                                       "before any instance's environment, so a provisioned instance's first call "
                                       "emits ColdStart (Logger reads the variable per call and is right)")
def test_powertools_imported_by_the_app_file_agrees_on_a_provisioned_instance(tmp_path):
    write_app(tmp_path, PROBE, "probe.py")
    write_app(tmp_path, """
        import probe  # the app file imports the handler's module (and Powertools) itself

        from squall import App

        app = App("coldstart-zygote")
        app.http("GET", "/provisioned", probe.lambda_handler, name="provisioned", provisioned_concurrency=1)
    """)
    observed = run_node(tmp_path, lambda node: [get(node, "/provisioned")])
    [first] = observed.values()
    assert first.initialization == "provisioned-concurrency"
    assert (first.logger_cold, first.metered_cold) == (False, False)
    assert first.metric_cold is False
