"""EMF documents: parsing per the specification, Prometheus names, the listener and the stream."""

from __future__ import annotations

import json
from dataclasses import dataclass

import pytest
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from squall.backends import open_backend
from squall.observability.emf import (
    METRICS_STREAM,
    Datapoint,
    EmfMetrics,
    InvalidEmf,
    Rejection,
    parse_emf,
    prometheus_name,
    read_custom_metrics,
)


@dataclass(frozen=True)
class Chunk:
    """What the log sink hands its listeners (squall.observability.logs.LogChunk)."""

    time: float
    function: str
    request_id: str
    trace_id: str
    text: str


def document(**root):
    """An EMF document as Powertools Metrics prints it."""
    return {"_aws": {"Timestamp": 1_700_000_000_123, "CloudWatchMetrics": [{
        "Namespace": "ServerlessAirline", "Dimensions": [["service"]],
        "Metrics": [{"Name": "SuccessfulBooking", "Unit": "Count"}, {"Name": "Latency", "Unit": "Milliseconds",
                                                                     "StorageResolution": 1}]}]},
        "service": "booking", "SuccessfulBooking": [1.0, 1.0], "Latency": 250, **root}


def test_a_document_gives_one_datapoint_per_metric_and_dimension_set():
    points = parse_emf(document(), function="book", request_id="r1", trace_id="t1")
    assert points == [
        Datapoint(1_700_000_000.123, "ServerlessAirline", "SuccessfulBooking", "Count", 60, (("service", "booking"),),
                  (1.0, 1.0), "book", "r1", "t1"),
        Datapoint(1_700_000_000.123, "ServerlessAirline", "Latency", "Milliseconds", 1, (("service", "booking"),),
                  (250.0,), "book", "r1", "t1"),
    ]
    two_sets = document()
    two_sets["_aws"]["CloudWatchMetrics"][0]["Dimensions"] = [[], ["service"]]
    assert [p.dimensions for p in parse_emf(two_sets)] == [(), (("service", "booking"),)] * 2


@pytest.mark.parametrize("breakage", [
    lambda d: d["_aws"].pop("Timestamp"),
    lambda d: d["_aws"].update(Timestamp="now"),
    lambda d: d["_aws"].update(CloudWatchMetrics={}),
    lambda d: d["_aws"]["CloudWatchMetrics"][0].pop("Namespace"),
    lambda d: d["_aws"]["CloudWatchMetrics"][0].pop("Dimensions"),
    lambda d: d["_aws"]["CloudWatchMetrics"][0].update(Dimensions=[["service", 3]]),
    lambda d: d["_aws"]["CloudWatchMetrics"][0].update(Dimensions=[[f"d{i}" for i in range(31)]]),
    lambda d: d.pop("service"),  # a dimension without its value
    lambda d: d.update(service=7),
    lambda d: d.pop("Latency"),  # a metric without its value
    lambda d: d.update(Latency="fast"),
    lambda d: d.update(Latency=[1] * 101),
    lambda d: d.update(Latency=True),
    lambda d: d["_aws"]["CloudWatchMetrics"][0]["Metrics"][0].update(Unit="Parsecs"),
    lambda d: d["_aws"]["CloudWatchMetrics"][0]["Metrics"][0].update(StorageResolution=5),
    lambda d: d["_aws"]["CloudWatchMetrics"][0]["Metrics"][0].pop("Name"),
])
def test_a_document_that_breaks_the_specification_is_refused_whole(breakage):
    broken = document()
    breakage(broken)
    with pytest.raises(InvalidEmf):
        parse_emf(broken)


@pytest.mark.parametrize(("namespace", "metric", "unit", "expected"), [
    ("ServerlessAirline", "SuccessfulBooking", "Count", ("serverless_airline_successful_booking", 1.0)),
    ("Shop", "Latency", "Milliseconds", ("shop_latency_seconds", 1e-3)),
    ("Shop", "LatencySeconds", "Seconds", ("shop_latency_seconds", 1.0)),
    ("Shop", "CPU", "Percent", ("shop_cpu_ratio", 0.01)),
    ("my/app-v2", "HTTPRequests", "Count/Second", ("my_app_v2_http_requests_per_second", 1.0)),
    ("Shop", "Upload", "Kilobytes", ("shop_upload_kilobytes", 1.0)),
    ("1st", "x", "None", ("_1st_x", 1.0)),
    ("Squall", "Invocations", "Count", ("emf_squall_invocations", 1.0)),
])
def test_prometheus_names(namespace, metric, unit, expected):
    assert prometheus_name(namespace, metric, unit) == expected


def test_the_listener_exposes_emf_lines_and_stores_them(tmp_path):
    backend = open_backend(f"sqlite:///{tmp_path}/state.db")
    try:
        emf = EmfMetrics(backend, "node-1")
        text = "".join([
            "START RequestId: r1 Version: $LATEST\n",
            json.dumps(document()) + "\n",
            '{"message": "mentions \\"_aws\\" in passing"}\n',  # a JSON log line, not EMF
            '{"_aws": {"Timestamp": 1}}\n',  # EMF, broken: no CloudWatchMetrics
            '{"_aws": truncated\n',
        ])
        emf(Chunk(1_700_000_001.0, "book", "r1", "t1", text))
        emf(Chunk(1_700_000_002.0, "book", "r2", "t2", json.dumps(document(Latency=[100, 200])) + "\n"))
        emf(Chunk(1_700_000_003.0, "book", "r3", "t3", "plain output\n"))
        assert emf.rejected[Rejection.INVALID] == 2
        registry = CollectorRegistry(auto_describe=False)
        registry.register(emf)
        families = {f.name: f for f in text_string_to_metric_families(generate_latest(registry).decode())}
        latency = {s.name: s.value for s in families["serverless_airline_latency_seconds"].samples}
        assert latency == {"serverless_airline_latency_seconds_count": 3,
                           "serverless_airline_latency_seconds_sum": pytest.approx(0.55)}
        [count] = [s for s in families["serverless_airline_successful_booking"].samples if s.name.endswith("_count")]
        assert count.labels == {"service": "booking"} and count.value == 4

        emf.flush()
        assert backend.stream_shards(METRICS_STREAM) >= 1
        points = list(read_custom_metrics(backend, since=0))
        assert [(p.name, p.values, p.request_id) for p in points] == [
            ("SuccessfulBooking", (1.0, 1.0), "r1"), ("Latency", (250.0,), "r1"),
            ("SuccessfulBooking", (1.0, 1.0), "r2"), ("Latency", (100.0, 200.0), "r2")]
        assert points[0] == parse_emf(document(), function="book", request_id="r1", trace_id="t1")[0]
        assert list(read_custom_metrics(backend, since=1_700_000_000.2)) == []  # timed before
    finally:
        backend.close()


def test_what_powertools_metrics_prints_is_understood(capsys, tmp_path):
    from aws_lambda_powertools import Metrics
    from aws_lambda_powertools.metrics import MetricResolution, MetricUnit

    metrics = Metrics(namespace="ServerlessAirline", service="booking")

    @metrics.log_metrics
    def handler(event, context):
        metrics.add_dimension(name="environment", value="prod")
        metrics.add_metric(name="SuccessfulBooking", unit=MetricUnit.Count, value=1)
        metrics.add_metric(name="BookingLatency", unit=MetricUnit.Milliseconds, value=120,
                           resolution=MetricResolution.High)

    handler({}, None)
    backend = open_backend(f"sqlite:///{tmp_path}/state.db")
    try:
        emf = EmfMetrics(backend, "node-1")
        emf(Chunk(0.0, "book", "r1", "t1", capsys.readouterr().out))
        assert emf.rejected[Rejection.INVALID] == 0
        registry = CollectorRegistry(auto_describe=False)
        registry.register(emf)
        samples = {(s.name, tuple(sorted(s.labels.items()))): s.value
                   for f in text_string_to_metric_families(generate_latest(registry).decode()) for s in f.samples}
        labels = (("environment", "prod"), ("service", "booking"))
        assert samples[("serverless_airline_successful_booking_count", labels)] == 1
        assert samples[("serverless_airline_booking_latency_seconds_sum", labels)] == pytest.approx(0.12)
        emf.flush()
        [booking, latency] = read_custom_metrics(backend, since=0)
        assert (latency.unit, latency.storage_resolution, dict(latency.dimensions)) == (
            "Milliseconds", 1, {"service": "booking", "environment": "prod"})
    finally:
        backend.close()
