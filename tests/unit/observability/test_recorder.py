"""The Recorder's counters and histograms, and the families the collector builds from them."""

from __future__ import annotations

import pytest
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from squall import App
from squall.backends import open_backend
from squall.errors import FunctionError, Throttled
from squall.node import Node
from squall.observability.prometheus import Exposition, InvocationCollector, QueueCollector
from squall.observability.recorder import DURATION_BUCKETS, Histogram, Recorder
from squall.runtime.invocation import Invocation
from tests.support import free_port


def invocation(function="f", duration_ms=2.0, cold=False, init_ms=None, error=None, trigger="http"):
    """The metering record of an invocation, as the meter's flush hands the recorder."""
    return Invocation("r", function, trigger, 0.0, duration_ms, 256, cold=cold, init_ms=init_ms,
                      error=error).record()


def test_histogram_buckets_are_cumulative_and_inclusive():
    histogram = Histogram((0.1, 1.0))
    for value in (0.05, 0.1, 0.5, 2.0):
        histogram.observe(value)
    assert histogram.buckets() == [("0.1", 2.0), ("1.0", 3.0), ("+Inf", 4.0)]  # le: 0.1 holds 0.1
    assert histogram.sum == 2.65


def test_recorder_counts_by_label_and_neither_times_nor_bills_throttles():
    recorder = Recorder()
    recorder.count([invocation(cold=True, init_ms=30.0, duration_ms=1.5), invocation(duration_ms=2000.4)])
    recorder.count([invocation(error=FunctionError("x")), invocation(error=Throttled("busy"), duration_ms=2000.0),
                    invocation(trigger="queue")])
    snapshot = recorder.snapshot()
    assert snapshot.invocations == {("f", "http", "success"): 2, ("f", "http", "error"): 1,
                                    ("f", "http", "throttled"): 1, ("f", "queue", "success"): 1}
    totals = snapshot.functions["f"]
    assert sum(totals.duration.counts) == 4 and totals.duration.counts[-1] == 0
    assert totals.duration.counts[DURATION_BUCKETS.index(2.5)] == 1  # 2.0004 s
    assert totals.cold_starts == 1 and sum(totals.init.counts) == 1 and totals.init.sum == 0.03
    assert totals.billed_gb_seconds == pytest.approx((2 + 2001 + 2 + 2) / 1000 * 256 / 1024)  # ms rounded up


def test_the_snapshot_does_not_move_with_later_invocations():
    recorder = Recorder()
    recorder.count([invocation()])
    snapshot = recorder.snapshot()
    recorder.count([invocation()])
    assert snapshot.invocations[("f", "http", "success")] == 1 and sum(snapshot.functions["f"].duration.counts) == 1


def test_the_collector_exposes_prometheus_names(tmp_path):
    recorder = Recorder()
    recorder.count([invocation(error=Throttled("busy"))])
    registry = CollectorRegistry(auto_describe=False)
    registry.register(InvocationCollector(recorder))
    backend = open_backend(f"sqlite:///{tmp_path}/state.db")
    registry.register(QueueCollector(backend))
    text = generate_latest(registry).decode()
    backend.close()
    families = {family.name: family for family in text_string_to_metric_families(text)}
    assert families["squall_invocations"].type == "counter"
    assert families["squall_invocation_duration_seconds"].type == "histogram"
    assert "squall_throttles_total{function=\"f\"} 1.0" in text
    assert "squall_queue_messages_visible" in families


def test_a_scrape_while_the_backend_is_down_still_has_the_node_series(tmp_path):
    backend = open_backend(f"redis://127.0.0.1:{free_port()}/0")  # nothing listens there
    node = Node(App("down"), backend, str(tmp_path / "objects"))
    assert node.recorder is not None
    node.recorder.count([invocation()])
    text = Exposition(node.recorder, node.runtime, backend, "n1", "down").render().decode()
    assert 'squall_invocations_total{function="f",outcome="success",trigger="http"} 1.0' in text
    assert 'squall_node_info{app="down",node="n1"} 1.0' in text
    assert "squall_queue_messages_visible{" not in text


def test_the_meter_counts_each_flush_once_even_one_the_backend_refuses(tmp_path):
    from squall.observability.metering import Meter

    recorder = Recorder()
    down = open_backend(f"redis://127.0.0.1:{free_port()}/0")  # nothing listens there
    meter = Meter(down, "n1", recorder=recorder)
    meter.record(Invocation("r1", "f", "http", 0.0, 1.0, 256))
    with pytest.raises(Exception):  # noqa: B017 - whatever the backend raises, the flush fails
        meter.flush()
    meter.flush()  # nothing left to write: counted once
    assert recorder.snapshot().invocations == {("f", "http", "success"): 1}
