"""The trace inside a function instance: the invocation's context, and the spans made here.

For each invocation the instance reads its span's context from `traceparent` (the node's
tracing put it there) and derives `_X_AMZN_TRACE_ID` from it. What the handler does is
traced here, and handed back to the node with the invocation's result (`wire.Spans`, in
the same write): `ctx.queue(...).send` is a PRODUCER span whose context travels with the
message, and the handler's own spans, made with the plain OpenTelemetry API, are children
of the invocation. No exporter runs in an instance.

Lazy by design: OpenTelemetry is set up only in an instance whose app imported it (the
zygote does it once after importing the app, so forks inherit it; a handler module
imported by the instance itself sets it up at its first invocation). An app that never
imports OpenTelemetry pays one dictionary lookup per invocation.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

from squall.observability.context import TRACEPARENT, SpanContext, parse_traceparent
from squall.observability.spans import SpanKind, SpanRecord, Status
from squall.runtime import wire

if TYPE_CHECKING:
    from collections.abc import Mapping

    from opentelemetry.sdk.trace import ReadableSpan

#: the most spans an instance keeps for one result (more are dropped: a handler in a loop
#: of spans must not grow its memory, or its result past the channel's frame limit)
MAX_SPANS = 1000
#: the most bytes of spans sent with one result
MAX_SPANS_BYTES = 1 << 20

#: spans finished and not handed back yet, as `SpanRecord.encode()` arrays
pending: list[list[Any]] = []


def finished(record: SpanRecord) -> None:
    if len(pending) < MAX_SPANS:
        pending.append(record.encode())


def frame() -> bytes:
    """The `wire.Spans` frame of the spans pending (and forget them); nothing if they do
    not fit MAX_SPANS_BYTES."""
    spans = pending[:]
    pending.clear()
    try:
        data = wire.encode(wire.Spans(spans))
    except wire.WireError:  # an attribute JSON cannot hold
        return b""
    return data if len(data) <= MAX_SPANS_BYTES else b""


class InvocationTrace:
    """One invocation's trace context, as `ctx` uses it: what a send or a call carries on."""

    __slots__ = ("context",)

    def __init__(self, context: SpanContext):
        self.context = context

    @classmethod
    def of(cls, headers: Mapping[str, str] | None) -> InvocationTrace | None:
        context = parse_traceparent(headers.get(TRACEPARENT)) if headers else None
        return None if context is None else cls(context)

    def current(self) -> SpanContext:
        """The span a send or a call is made in: the handler's current OpenTelemetry span
        if it opened one in this trace, else the invocation's."""
        api = sys.modules.get("opentelemetry.trace")
        if api is not None:
            span = api.get_current_span().get_span_context()
            trace_id = f"{span.trace_id:032x}"
            if span.is_valid and trace_id == self.context.trace_id:
                return SpanContext(trace_id, f"{span.span_id:016x}", self.context.sampled)
        return self.context

    @contextmanager
    def producer(self, destination: str, count: int, system: str = "aws_sqs",
                 operation: str = "send") -> Iterator[SpanRecord]:
        """A PRODUCER span (messaging conventions) around a send of `count` messages to
        `destination` of `system` (SQS's `send`; SNS's `publish`, system `aws.sns`): the
        messages carry its context; the caller may add attributes (the message id)."""
        parent = self.current()
        span = parent.child()
        attributes: dict[str, Any] = {"messaging.system": system, "messaging.operation.type": "send",
                                      "messaging.operation.name": operation,
                                      "messaging.destination.name": destination}
        if count != 1:
            attributes["messaging.batch.message_count"] = count
        record = SpanRecord(span.trace_id, span.span_id, parent.span_id, f"{operation} {destination}",
                            SpanKind.PRODUCER, time.time_ns(), 0, attributes)
        try:
            yield record
        except Exception as exc:
            record.status, record.status_message = Status.ERROR, str(exc)
            record.attributes["error.type"] = type(exc).__qualname__
            raise
        finally:
            record.end_ns = time.time_ns()
            if span.sampled:
                finished(record)


# ---- OpenTelemetry, for the handler's own spans -------------------------------------------

_installed = False


def activate(trace: InvocationTrace | None) -> object | None:
    """Make the invocation's span the current OpenTelemetry context, if the app uses
    OpenTelemetry; the token `deactivate` takes."""
    api = sys.modules.get("opentelemetry.trace")
    if api is None or trace is None:
        return None
    if not _installed:
        install()
    from opentelemetry import context

    c = trace.context
    parent = api.SpanContext(int(c.trace_id, 16), int(c.span_id, 16), is_remote=True,
                             trace_flags=api.TraceFlags(api.TraceFlags.SAMPLED if c.sampled else 0))
    return context.attach(api.set_span_in_context(api.NonRecordingSpan(parent)))


def deactivate(token: object | None) -> None:
    if token is not None:
        from opentelemetry import context

        context.detach(token)  # type: ignore[arg-type]


def install() -> None:
    """Collect the app's OpenTelemetry spans: a tracer provider (the SDK's, following the
    parent's sampling decision) whose span processor keeps each finished span for the
    node. An app that set up a provider of its own keeps it, with the processor added."""
    global _installed
    _installed = True
    from opentelemetry import trace
    from opentelemetry.sdk.trace import SpanProcessor, TracerProvider
    from opentelemetry.sdk.trace.sampling import ALWAYS_ON, ParentBased

    class Collect(SpanProcessor):
        def on_end(self, span: ReadableSpan) -> None:
            finished(record_of(span))

    provider = trace.get_tracer_provider()
    if not isinstance(provider, TracerProvider):
        provider = TracerProvider(sampler=ParentBased(ALWAYS_ON))
        trace.set_tracer_provider(provider)
    provider.add_span_processor(Collect())


def preload() -> None:
    """In the zygote, after the app's import: set up OpenTelemetry before any fork if the
    app imported it, so no instance pays for it."""
    if "opentelemetry.trace" in sys.modules and not _installed:
        install()


def record_of(span: ReadableSpan) -> SpanRecord:
    """An SDK span as the record the node keeps (attributes the wire can carry only)."""
    context, parent = span.context, span.parent
    links = [SpanContext(f"{link.context.trace_id:032x}", f"{link.context.span_id:016x}",
                         link.context.trace_flags.sampled) for link in span.links]
    attributes = {key: list(value) if isinstance(value, tuple) else value
                  for key, value in (span.attributes or {}).items() if not isinstance(value, bytes)}
    return SpanRecord(f"{context.trace_id:032x}" if context else "0" * 32,
                      f"{context.span_id:016x}" if context else "0" * 16,
                      f"{parent.span_id:016x}" if parent else "", span.name, SpanKind(span.kind.value),
                      span.start_time or 0, span.end_time or 0, attributes, Status(span.status.status_code.value),
                      span.status.description or "", links)
