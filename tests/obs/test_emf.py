"""Custom metrics the Lambda way, end to end: an unmodified Powertools Metrics handler on a
real node, its EMF output found in /metrics, in the `squall.metrics` stream and in
`squall metrics`."""

from __future__ import annotations

import json

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from squall.backends import open_backend
from squall.observability.emf import read_custom_metrics
from tests.support import NodeProcess, free_port, squall, wait_until, write_app

APP = """
    from aws_lambda_powertools import Metrics
    from aws_lambda_powertools.metrics import MetricUnit

    from squall import App

    app = App("airline")
    metrics = Metrics(namespace="ServerlessAirline", service="booking")


    @app.http("POST", "/bookings")
    @metrics.log_metrics
    def book(event, context):
        metrics.add_dimension(name="environment", value="prod")
        metrics.add_metric(name="SuccessfulBooking", unit=MetricUnit.Count, value=1)
        metrics.add_metric(name="BookingLatency", unit=MetricUnit.Milliseconds, value=40)
        return {"statusCode": 201, "body": "booked"}
"""


def test_powertools_metrics_reach_prometheus_and_the_stream(tmp_path):
    url = f"sqlite:///{tmp_path}/.squall/state.db"
    admin = free_port()
    app = write_app(tmp_path, APP)
    with NodeProcess(app, backend=url, extra=["--admin-port", str(admin)]) as node, node.client() as client:
        assert [client.post("/bookings").status_code for _ in range(3)] == [201] * 3
        labels = {"environment": "prod", "service": "booking"}

        def samples() -> dict[str, float]:
            text = httpx.get(f"http://127.0.0.1:{admin}/metrics").text
            return {sample.name: sample.value for family in text_string_to_metric_families(text)
                    for sample in family.samples if sample.labels == labels}

        found = wait_until(lambda: samples().get("serverless_airline_successful_booking_count") == 3 and samples(),
                           timeout=5, message="the EMF metrics in /metrics")
        assert found["serverless_airline_successful_booking_sum"] == 3
        assert found["serverless_airline_booking_latency_seconds_sum"] == pytest.approx(0.12)
        backend = open_backend(url)
        try:
            points = wait_until(lambda: len(stored := list(read_custom_metrics(backend, since=0))) == 6 and stored,
                                timeout=5, message="the datapoints in the squall.metrics stream")
            assert {(p.function, p.name, p.unit) for p in points} == {
                ("book", "SuccessfulBooking", "Count"), ("book", "BookingLatency", "Milliseconds")}
            assert all(dict(p.dimensions) == labels and p.request_id for p in points)
        finally:
            backend.close()

        shown = json.loads(squall("metrics", "book", "--since", "10m", "--json", "--backend", url).stdout)["custom"]
        totals: dict[tuple[str, str], list[float]] = {}
        for c in shown:  # the three calls may straddle two periods
            count, total = totals.setdefault((c["MetricName"], c["Unit"]), [0, 0])
            totals[(c["MetricName"], c["Unit"])] = [count + c["SampleCount"], total + c["Sum"]]
        assert totals == {("SuccessfulBooking", "Count"): [3, 3], ("BookingLatency", "Milliseconds"): [3, 120]}
        assert all(c["Namespace"] == "ServerlessAirline" and c["Dimensions"] == labels for c in shown)
        table = squall("metrics", "book", "--since", "10m", "--backend", url).stdout
        assert "custom metrics (EMF)" in table and "SuccessfulBooking" in table and "environment=prod" in table
