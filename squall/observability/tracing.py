"""Tracing: every invocation is a span, and the trace context follows every hop.

`Tracing` is an interceptor (after metering). For each request it reads the caller's
context from `headers["traceparent"]` (none: a new trace, sampled by `OTEL_TRACES_SAMPLER`),
makes the invocation's span id and puts the invocation's own context back in
`headers["traceparent"]` before the runtime runs it: the instance derives
`_X_AMZN_TRACE_ID` and the OpenTelemetry context from it, the log sink tags lines with its
trace id, and whatever the handler sends on (`ctx.queue(...).send`, `ctx.invoke`,
`ctx.invoke_async`) carries it. The span ends where metering records the invocation
(`Metering` calls `Tracing.close`), so tracing wraps no coroutine of its own around the
rest of the chain. Its span follows OpenTelemetry's
FaaS conventions, with what its source adds (`Source.span`: the HTTP server or messaging
conventions), plus the spans the instance handed back (the handler's own, its sends).

`Tracer` buffers the spans and, once a second, appends them to the `squall.spans` stream
as one record (one backend write per second per node, as metering does) and hands them to
the OTLP exporter when one is configured. An invocation's span costs the event loop a
tuple: what like invocations share (their shape) is stored once per record, and the
record is encoded in the flush's thread. A node that is SIGKILLed loses at most a second
of spans.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Coroutine
from time import time_ns
from typing import TYPE_CHECKING, Any

from squall.backends.protocol import Streams
from squall.core.pipeline import Handler, Interceptor, InvokeRequest, OpenSpan
from squall.core.retention import Cap
from squall.observability.batching import Batch, StreamBatch
from squall.observability.context import TRACEPARENT, new_span_id, new_trace, parse_traceparent
from squall.observability.otlp import Exporter, export_configured
from squall.observability.sampling import Sampler
from squall.observability.settings import ObservabilitySettings
from squall.observability.spans import FaasTrigger, SpanKind, SpanRecord, SpanShape, Status
from squall.observability.store import SHAPES, SPANS_STREAM, SpanCap, spans_of
from squall.runtime.invocation import Invocation

if TYPE_CHECKING:
    from squall.node import Node

log = logging.getLogger("squall.tracing")

#: how a source describes its invocations' spans (`Source.span`), by trigger kind
Shaper = Callable[[InvokeRequest, Invocation], SpanShape | None]
#: the most spans one instance may hand back with one invocation (the rest are dropped)
MAX_INSTANCE_SPANS = 1000

_ERROR, _UNSET = int(Status.ERROR), int(Status.UNSET)


class SpanBatch:
    """The spans of one flush. An invocation's span is kept as a tuple of plain values (the
    collector stops tracking it, and a second of them costs no GC pass) whose attributes
    are those of its shape, stored once in the batch's `shapes` (a shape is what a source
    says of like invocations: the same route, status and client), plus its own ids; the
    spans instances hand back are kept whole, as `SpanRecord.encode` arrays."""

    __slots__ = ("spans", "shapes", "_index", "_kept")

    def __init__(self) -> None:
        self.spans: list[Any] = []
        #: [name, kind, attributes] of each shape, as stored (`store.SHAPES`)
        self.shapes: list[list[Any]] = []
        self._index: dict[tuple[str, int], int] = {}
        self._kept: list[SpanShape] = []  # alive while indexed by id(), so no id is reused

    def shape(self, function: str, shape: SpanShape, function_attributes: dict[str, Any]) -> int:
        """The index of `shape` (of an invocation of `function`) in this batch's shapes."""
        key = (function, id(shape))
        index = self._index.get(key)
        if index is None:
            index = self._index[key] = len(self.shapes)
            self._kept.append(shape)
            self.shapes.append([shape.name, int(shape.kind), {
                **function_attributes, "faas.trigger": shape.trigger._value_, **shape.attributes}])
        return index


class Tracer(StreamBatch):
    """Buffers spans and appends them to the span stream every `interval` seconds (and on
    stop), handing them to the OTLP exporter too when there is one."""

    name = "tracing"

    def __init__(self, backend: Streams, node_id: str, exporter: Exporter | None = None, interval: float = 1.0):
        super().__init__(backend, node_id, SPANS_STREAM, interval, counted=True)
        self.exporter = exporter
        self.batch = SpanBatch()

    def add(self, record: SpanRecord) -> None:
        self.batch.spans.append(record.encode())

    def take(self) -> Batch:
        batch, self.batch = self.batch, SpanBatch()
        return Batch(batch.spans, {SHAPES: batch.shapes})

    def write(self, batch: Batch) -> None:
        super().write(batch)
        if batch.records and self.exporter is not None:
            self.exporter.export(list(spans_of(batch)))

    async def settle(self) -> None:
        await super().settle()
        if self.exporter is not None:
            await asyncio.to_thread(self.exporter.shutdown)


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
        #: per function: what every span of it says of it, and its plain shape (no source's)
        self._functions: dict[str, tuple[dict[str, Any], SpanShape]] = {}
        #: what the node's retention keeps of the span stream: its age, and its count
        self.retention: dict[str, float] = {}
        self.caps: list[Cap] = []

    def __call__(self, request: InvokeRequest, call_next: Handler) -> Coroutine[Any, Any, Invocation]:
        """Open the invocation's span and pass its context on; the rest of the chain's
        coroutine itself (every invocation passes here: no frame of its own). `close`
        ends the span."""
        headers = request.headers
        incoming = headers.get(TRACEPARENT)
        parent = parse_traceparent(incoming) if incoming else None
        start = time_ns()
        if parent is None:
            trace_id, span_id = new_trace(start)
        else:
            trace_id, span_id = parent.trace_id, new_span_id()
        sampled = self.sampler.sampled(trace_id, parent)
        headers[TRACEPARENT] = f"00-{trace_id}-{span_id}-{'01' if sampled else '00'}"
        request.trace_id = trace_id
        if sampled:
            request.span = OpenSpan(span_id, "" if parent is None else parent.span_id, start)
        return call_next(request)

    def close(self, request: InvokeRequest, invocation: Invocation) -> None:
        """End the invocation's span, if it is sampled (Metering calls this as it records
        the invocation), with the spans its instance handed back."""
        span = request.span
        if span is None:
            return
        try:
            self._record(request, invocation, span, time_ns())
            spans = invocation.spans
            if spans:
                self._instance_spans(spans)
        except Exception:  # noqa: BLE001 - a span is never worth an invocation
            log.exception("invocation %s of %s: its span was not recorded", request.request_id, request.function)

    def _record(self, request: InvokeRequest, invocation: Invocation, span: OpenSpan, end: int) -> None:
        """Buffer the invocation's span, in `SpanBatch`'s form (`store.compact_span`)."""
        function = request.function
        attributes, plain = self._functions.get(function) or self._function(function)
        shaper = self.shapers.get(request.trigger)
        shape = (shaper(request, invocation) if shaper is not None else None) or plain
        error = invocation.error
        if error is not None:
            status, message, error_type = _ERROR, str(error), error.error_type
        elif shape.error is not None:
            status, message, error_type = _ERROR, "", shape.error
        else:
            status, message, error_type = _UNSET, "", ""
        links = tuple((link.trace_id, link.span_id, link.sampled) for link in request.links) if request.links else ()
        batch = self.tracer.batch
        batch.spans.append((request.trace_id, span.span_id, span.parent_id, batch.shape(function, shape, attributes),
                            span.start_ns, end, invocation.request_id, invocation.cold, status, message, error_type,
                            links))

    def _function(self, function: str) -> tuple[dict[str, Any], SpanShape]:
        """What every span of `function` says about it (what follows from its name,
        `spans.function_attributes`, is added only when a span is read), and its span when
        no source shapes it (trigger `other`); made once per function."""
        made = self._functions[function] = ({"faas.name": function,
                                             "faas.max_memory": self.memory(function) * 1048576},
                                            SpanShape(function, SpanKind.SERVER, FaasTrigger.OTHER, {}))
        return made

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
