"""OTLP export: spans sent to a collector when the standard variables say where.

Configured only by OpenTelemetry's standard environment: `OTEL_EXPORTER_OTLP_ENDPOINT` or
`OTEL_EXPORTER_OTLP_TRACES_ENDPOINT` turns it on; `..._HEADERS`, `..._TIMEOUT`,
`..._COMPRESSION` and the certificate variables are read by the OTLP/HTTP exporter;
`OTEL_EXPORTER_OTLP[_TRACES]_PROTOCOL` must be `http/protobuf` (the only protocol shipped);
`OTEL_SERVICE_NAME` and `OTEL_RESOURCE_ATTRIBUTES` override the resource Squall describes
(the app as `service.name`, the node as `service.instance.id`); `OTEL_BSP_*` tune the
batching. The SDK is imported only when export is on, and records become SDK spans only
here, on the tracer's flush thread; the SDK's batch processor then sends them from its own
thread, so a slow or absent collector never holds the node.
"""

from __future__ import annotations

import os
import socket
from collections.abc import Mapping
from typing import TYPE_CHECKING

from squall.errors import ConfigError

if TYPE_CHECKING:
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import ReadableSpan
    from opentelemetry.sdk.trace.export import BatchSpanProcessor
    from opentelemetry.sdk.util.instrumentation import InstrumentationScope

    from squall.observability.spans import SpanRecord

PROTOCOL = "http/protobuf"
ENDPOINTS = ("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "OTEL_EXPORTER_OTLP_ENDPOINT")


def export_configured(environ: Mapping[str, str] | None = None) -> bool:
    """Whether the environment asks for OTLP export; ConfigError for a protocol Squall
    does not ship."""
    env = os.environ if environ is None else environ
    if not any(env.get(name, "").strip() for name in ENDPOINTS):
        return False
    for name in ("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL", "OTEL_EXPORTER_OTLP_PROTOCOL"):
        protocol = env.get(name, "").strip()
        if protocol:
            if protocol != PROTOCOL:
                raise ConfigError(f"unsupported {name} {protocol!r}: Squall exports over {PROTOCOL!r}")
            break
    return True


class Exporter:
    """Converts span records to SDK spans and hands them to a batch span processor."""

    def __init__(self, app: str, node_id: str):
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
        from opentelemetry.sdk.trace.export import BatchSpanProcessor
        from opentelemetry.sdk.util.instrumentation import InstrumentationScope

        self.resource = resource(app, node_id)
        self.scope = InstrumentationScope("squall")
        self.processor: BatchSpanProcessor = BatchSpanProcessor(OTLPSpanExporter())

    def export(self, records: list[SpanRecord]) -> None:
        for record in records:
            self.processor.on_end(readable(record, self.resource, self.scope))

    def shutdown(self) -> None:
        """Send what is queued (the processor waits for its export), then stop."""
        self.processor.shutdown()


def resource(app: str, node_id: str) -> Resource:
    """The node as an OpenTelemetry resource; the standard variables win over Squall's values."""
    from opentelemetry.sdk.resources import OTELResourceDetector, Resource

    from squall import aws
    from squall.observability.spans import CLOUD_PROVIDER

    own = Resource.create({"service.name": app, "service.instance.id": node_id, "host.name": socket.gethostname(),
                           "cloud.provider": CLOUD_PROVIDER, "cloud.region": aws.REGION})
    return own.merge(OTELResourceDetector().detect())


def readable(record: SpanRecord, where: Resource, scope: InstrumentationScope) -> ReadableSpan:
    """One record as the SDK's ReadableSpan, what span exporters take."""
    from opentelemetry import trace
    from opentelemetry.sdk.trace import ReadableSpan

    from squall.observability.spans import function_attributes

    def context(trace_id: str, span_id: str, sampled: bool = True, remote: bool = False) -> trace.SpanContext:
        return trace.SpanContext(int(trace_id, 16), int(span_id, 16), is_remote=remote,
                                 trace_flags=trace.TraceFlags(trace.TraceFlags.SAMPLED if sampled else 0))

    parent = context(record.trace_id, record.parent_id, remote=True) if record.parent_id else None
    links = [trace.Link(context(link.trace_id, link.span_id, link.sampled, True)) for link in record.links]
    code = trace.StatusCode(int(record.status))
    status = trace.Status(code, record.status_message or None) if code is trace.StatusCode.ERROR else trace.Status(code)
    attributes = {**function_attributes(record.attributes), **record.attributes}
    return ReadableSpan(record.name, context(record.trace_id, record.span_id), parent, where, attributes,
                        links=links, kind=trace.SpanKind(int(record.kind)), status=status,
                        start_time=record.start_ns, end_time=record.end_ns, instrumentation_scope=scope)
