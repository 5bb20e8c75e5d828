"""Tracing: every invocation is a span, and the trace context follows every hop.

`Tracing` is an interceptor (after metering). For each request it reads the caller's
context from `headers["traceparent"]` (none: a new trace, sampled by `OTEL_TRACES_SAMPLER`),
makes the invocation's span id and puts the invocation's own context back in
`headers["traceparent"]` before the runtime runs it: the instance derives
`_X_AMZN_TRACE_ID` and the OpenTelemetry context from it, the log sink tags lines with its
trace id, and whatever the handler sends on (`ctx.queue(...).send`, `ctx.invoke`,
`ctx.invoke_async`) carries it. Once the invocation ends, the span is recorded as a
`SpanRecord` following OpenTelemetry's FaaS conventions, with what its source adds
(`Source.span`: the HTTP server or messaging conventions), plus the spans the instance
handed back (the handler's own, its sends).

`Tracer` buffers the records and, once a second, appends them to the `squall.spans`
stream as one record (one backend write per second per node, as metering does) and hands
them to the OTLP exporter when one is configured. Each record is encoded as it is taken,
so a flush never holds the event loop. A node that is SIGKILLed loses at most a second of
spans.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from time import time_ns
from typing import TYPE_CHECKING, Any

from squall.backends.protocol import Streams
from squall.core.pipeline import Handler, Interceptor, InvokeRequest
from squall.core.retention import Cap
from squall.observability.batching import StreamBatch
from squall.observability.context import TRACEPARENT, new_span_id, new_trace_id, parse_traceparent
from squall.observability.otlp import Exporter, export_configured
from squall.observability.sampling import Sampler
from squall.observability.settings import ObservabilitySettings
from squall.observability.spans import FaasTrigger, SpanKind, SpanRecord, SpanShape, Status
from squall.observability.store import SPANS_STREAM, SpanCap
from squall.runtime.invocation import Invocation

if TYPE_CHECKING:
    from squall.node import Node

log = logging.getLogger("squall.tracing")

#: how a source describes its invocations' spans (`Source.span`), by trigger kind
Shaper = Callable[[InvokeRequest, Invocation], SpanShape | None]
#: the most spans one instance may hand back with one invocation (the rest are dropped)
MAX_INSTANCE_SPANS = 1000

_OTHER = FaasTrigger.OTHER._value_
_SERVER = int(SpanKind.SERVER)


class Tracer(StreamBatch):
    """Buffers span records and appends them to the span stream every `interval` seconds
    (and on stop), handing them to the OTLP exporter too when there is one."""

    name = "tracing"

    def __init__(self, backend: Streams, node_id: str, exporter: Exporter | None = None, interval: float = 1.0):
        super().__init__(backend, node_id, SPANS_STREAM, interval, counted=True)
        self.exporter = exporter
        self._records: list[SpanRecord] = []

    def add(self, record: SpanRecord) -> None:
        self._buffer.append(record.encode())
        if self.exporter is not None:
            self._records.append(record)

    def add_encoded(self, encoded: list[Any]) -> None:
        """A span already in `SpanRecord.encode`'s form (the node's own invocation spans,
        made so without a record: the exporter, when there is one, gets the record)."""
        self._buffer.append(encoded)
        if self.exporter is not None:
            self._records.append(SpanRecord.from_encoded(encoded))

    async def settle(self) -> None:
        await super().settle()
        if self.exporter is not None:
            await asyncio.to_thread(self.exporter.shutdown)

    def flush(self) -> None:
        super().flush()
        records, self._records = self._records, []
        if records and self.exporter is not None:
            self.exporter.export(records)


class Tracing(Interceptor):
    """Makes each invocation a span and passes its context on. See the module docstring."""

    def __init__(self, tracer: Tracer, shapers: dict[str, Shaper], sampler: Sampler,
                 memory: Callable[[str], int]):
        """`shapers`: each source's `span`, by trigger kind; `memory`: a function's memory
        size in MB (`faas.max_memory`)."""
        self.tracer = tracer
        self.shapers = shapers
        self.sampler = sampler
        self.memory = memory
        self._static: dict[str, dict[str, Any]] = {}
        #: what the node's retention keeps of the span stream: its age, and its count
        self.retention: dict[str, float] = {}
        self.caps: list[Cap] = []

    async def __call__(self, request: InvokeRequest, call_next: Handler) -> Invocation:
        headers = request.headers
        incoming = headers.get(TRACEPARENT)
        parent = parse_traceparent(incoming) if incoming else None
        trace_id = new_trace_id() if parent is None else parent.trace_id
        sampled = self.sampler.sampled(trace_id, parent)
        span_id = new_span_id()
        headers[TRACEPARENT] = f"00-{trace_id}-{span_id}-{'01' if sampled else '00'}"
        request.trace_id = trace_id
        start = time_ns()
        invocation = await call_next(request)
        if sampled:
            end = time_ns()
            try:
                self.tracer.add_encoded(self._encoded(request, invocation, trace_id, span_id,
                                                      "" if parent is None else parent.span_id, start, end))
                spans = invocation.spans
                if spans:
                    self._instance_spans(spans)
            except Exception:  # noqa: BLE001 - a span is never worth an invocation
                log.exception("invocation %s of %s: its span was not recorded", request.request_id, request.function)
        return invocation

    def _encoded(self, request: InvokeRequest, invocation: Invocation, trace_id: str, span_id: str,
                 parent_id: str, start: int, end: int) -> list[Any]:
        """The invocation's span, straight in `SpanRecord.encode`'s form: it is made on
        every invocation, and a record made only to be encoded cost a third of it."""
        shaper = self.shapers.get(request.trigger)
        shape = shaper(request, invocation) if shaper is not None else None
        function = request.function
        attributes = (self._static.get(function) or self._function_attributes(function)).copy()
        attributes["faas.invocation_id"] = invocation.request_id
        attributes["faas.coldstart"] = invocation.cold
        status, message = Status.UNSET, ""
        error = invocation.error
        if error is not None:
            attributes["error.type"] = error.error_type
            status, message = Status.ERROR, str(error)
        links = [[link.trace_id, link.span_id, link.sampled] for link in request.links] if request.links else []
        if shape is None:
            attributes["faas.trigger"] = _OTHER
            return [trace_id, span_id, parent_id, function, _SERVER, start, end, attributes, status, message, links]
        attributes["faas.trigger"] = shape.trigger._value_
        attributes.update(shape.attributes)
        if shape.error is not None and error is None:
            attributes["error.type"] = shape.error
            status = Status.ERROR
        return [trace_id, span_id, parent_id, shape.name, shape.kind, start, end, attributes, status, message, links]

    def _function_attributes(self, function: str) -> dict[str, Any]:
        """What every span of `function` says about it, made once per function (and what
        follows from its name, `spans.function_attributes`, only when the span is read)."""
        attributes = self._static[function] = {"faas.name": function,
                                               "faas.max_memory": self.memory(function) * 1048576}
        return attributes

    def _instance_spans(self, spans: list[Any]) -> None:
        """The spans an instance handed back (untrusted: malformed ones are dropped)."""
        for raw in spans[:MAX_INSTANCE_SPANS]:
            record = SpanRecord.decode(raw)
            if record is not None:
                self.tracer.add(record)


def tracing_for(node: Node, settings: ObservabilitySettings) -> Tracing:
    """The tracing interceptor of `node`, with its tracer (a service of the node), the
    sampler and exporter the standard OTEL_* variables configure (ConfigError for a bad
    one), and the span stream's retention."""
    exporter = Exporter(node.app.name, node.settings.node_id) if export_configured() else None
    tracer = Tracer(node.backend, node.settings.node_id, exporter)
    tracing = Tracing(tracer, {source.kind: source.span for source in node.sources}, Sampler.from_environ(),
                      lambda function: node.app.config(function).memory_mb)
    tracing.retention = {SPANS_STREAM: settings.trace_retention}
    tracing.caps = [SpanCap(settings.trace_max_spans)]
    return tracing
