"""The node's metrics in Prometheus' text exposition format (`GET /metrics`, admin listener).

Everything is built at scrape time, by collectors over what the node keeps anyway: the
`Recorder`'s counters (invocations, durations, cold starts, GB-seconds), the runtime's
instance counts, the backend's queue counts, the EMF metrics of the functions' output
and, from prometheus-client, the node process' own `process_*` metrics (its resident
memory among them). The scrape runs in a thread: the queue counts are backend reads.

Queue series are read from the backend, so every node of a cluster reports every queue of
the cluster with the same values: aggregate them with `max by (queue)` rather than `sum`.
The per-node series (invocations, instances, process) are summed across nodes as usual.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from typing import TYPE_CHECKING

from prometheus_client import CollectorRegistry, ProcessCollector, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily
from prometheus_client.metrics_core import Metric

from squall.backends import Backend
from squall.errors import BackendUnavailable, Outcome
from squall.observability.logs import LogSink
from squall.observability.recorder import Recorder
from squall.runtime.base import Runtime
from squall.sources.filters import filtered_counts

if TYPE_CHECKING:
    from squall.observability.emf import EmfMetrics

log = logging.getLogger("squall.metrics")

#: the exposition's Content-Type (format 0.0.4)
CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"


class InvocationCollector:
    def __init__(self, recorder: Recorder):
        self.recorder = recorder

    def collect(self) -> Iterable[Metric]:
        snapshot = self.recorder.snapshot()
        invocations = CounterMetricFamily("squall_invocations_total", "Invocations, by function, trigger and outcome",
                                          labels=["function", "trigger", "outcome"])
        throttles = CounterMetricFamily("squall_throttles_total",
                                        "Invocations refused at the concurrency limit (outcome throttled)",
                                        labels=["function"])
        throttled: dict[str, int] = {}
        for (function, trigger, outcome), count in sorted(snapshot.invocations.items()):
            invocations.add_metric([function, trigger, outcome], count)
            if outcome == Outcome.THROTTLED:
                throttled[function] = throttled.get(function, 0) + count
        for function, count in throttled.items():
            throttles.add_metric([function], count)
        duration = HistogramMetricFamily("squall_invocation_duration_seconds",
                                         "Time the handler ran (throttled invocations excluded)", labels=["function"])
        init = HistogramMetricFamily("squall_init_duration_seconds", "Initialisation of the instance, per cold start",
                                     labels=["function"])
        cold = CounterMetricFamily("squall_cold_starts_total", "Invocations that started a new instance",
                                   labels=["function"])
        billed = CounterMetricFamily("squall_billed_gb_seconds_total",
                                     "Billed duration times memory size, in Lambda's GB-seconds (GB of 1024 MB)",
                                     labels=["function"])
        for function, totals in sorted(snapshot.functions.items()):
            duration.add_metric([function], totals.duration.buckets(), totals.duration.sum)
            init.add_metric([function], totals.init.buckets(), totals.init.sum)
            cold.add_metric([function], totals.cold_starts)
            billed.add_metric([function], totals.billed_gb_seconds)
        dropped = CounterMetricFamily("squall_recursive_invocations_dropped_total",
                                      "Invocations stopped by recursive loop detection (Lambda's "
                                      "RecursiveInvocationsDropped)", labels=["function"])
        for function, count in sorted(snapshot.recursion_dropped.items()):
            dropped.add_metric([function], count)
        return [invocations, throttles, duration, init, cold, billed, dropped]


class RuntimeCollector:
    def __init__(self, runtime: Runtime, node_id: str, app: str):
        self.runtime = runtime
        self.node_id = node_id
        self.app = app

    def collect(self) -> Iterable[Metric]:
        info = GaugeMetricFamily("squall_node_info", "This node (always 1)", labels=["node", "app"])
        info.add_metric([self.node_id, self.app], 1)
        instances = GaugeMetricFamily("squall_instances", "Instances alive (idle or busy)", labels=["function"])
        busy = GaugeMetricFamily("squall_concurrent_executions", "Instances running an invocation now",
                                 labels=["function"])
        for function, counts in sorted(self.runtime.instance_counts().items()):
            instances.add_metric([function], counts["instances"])
            busy.add_metric([function], counts["busy"])
        return [info, instances, busy]


class QueueCollector:
    """The cluster's queues, read from the backend at each scrape (as SQS's
    ApproximateNumberOfMessages* and ApproximateAgeOfOldestMessage)."""

    def __init__(self, backend: Backend):
        self.backend = backend

    def collect(self) -> Iterable[Metric]:
        def gauge(name: str, text: str) -> GaugeMetricFamily:
            return GaugeMetricFamily(name, text, labels=["queue"])

        visible = gauge("squall_queue_messages_visible", "Messages available to receive")
        in_flight = gauge("squall_queue_messages_in_flight", "Messages received and not yet deleted")
        delayed = gauge("squall_queue_messages_delayed", "Messages sent with a delay, not yet visible")
        dead = gauge("squall_queue_dead_letter_messages", "Messages in the queue's dead-letter queue")
        age = gauge("squall_queue_oldest_message_age_seconds", "Time since the first message in the queue was sent")
        filtered = CounterMetricFamily("squall_queue_filtered_messages_total",
                                       "Records a queue's filters dropped uninvoked (the cluster's)", labels=["queue"])
        backend = self.backend
        try:
            for queue, count in sorted(filtered_counts(backend).items()):
                filtered.add_metric([queue], count)
            for queue in backend.queue_names():
                stats = backend.queue_stats(queue)
                visible.add_metric([queue], stats.visible)
                in_flight.add_metric([queue], stats.in_flight)
                delayed.add_metric([queue], stats.delayed)
                age.add_metric([queue], backend.queue_oldest_age(queue))
                config = backend.queue_config(queue)
                if config is not None and config.dlq:
                    dead.add_metric([queue], backend.queue_stats(config.dlq).total)
        except BackendUnavailable as exc:  # the node's own series matter most then: serve them
            log.warning("metrics scrape without queue series: %s", exc)
            return []
        return [visible, in_flight, delayed, dead, age, filtered]


class LogCollector:
    """What the function log's rate limit dropped (squall.observability.logs)."""

    def __init__(self, sink: LogSink):
        self.sink = sink

    def collect(self) -> Iterable[Metric]:
        dropped = CounterMetricFamily("squall_log_dropped_bytes_total",
                                      "Function output dropped over the log rate, in bytes", labels=["function"])
        for function, size in sorted(self.sink.dropped.items()):
            dropped.add_metric([function], size)
        return [dropped]


class Exposition:
    """The registry of one node's collectors; `render()` is one scrape (blocking: call it
    off the event loop)."""

    def __init__(self, recorder: Recorder, runtime: Runtime, backend: Backend, node_id: str, app: str,
                 custom: EmfMetrics | None = None, logs: LogSink | None = None):
        self.registry = CollectorRegistry(auto_describe=False)
        for collector in (InvocationCollector(recorder), RuntimeCollector(runtime, node_id, app),
                          QueueCollector(backend), custom, None if logs is None else LogCollector(logs)):
            if collector is not None:
                self.registry.register(collector)
        ProcessCollector(registry=self.registry)

    def render(self) -> bytes:
        return generate_latest(self.registry)
