"""The span record: what the node keeps of one span, light enough to make per invocation.

A slots dataclass, not an OpenTelemetry SDK span: the node makes one for every invocation
on its event loop, and an SDK span (its context objects, attribute checks and locks) costs
ten times as much. Records are converted to OTLP only by the exporter, off the loop.
Instances make them too (a `ctx.queue(...).send`, the handler's own OpenTelemetry spans)
and hand them back over the instance channel, so `decode` checks every field: what an
instance sends is untrusted.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import IntEnum, StrEnum
from typing import Any

from squall import aws
from squall.observability.context import SpanContext

#: `cloud.provider`: a value of Squall's own, as the conventions allow where no well-known
#: one applies (ids and regions are AWS-shaped, but no AWS account runs the function)
CLOUD_PROVIDER = "squall"


def function_attributes(attributes: dict[str, Any]) -> dict[str, Any]:
    """The FaaS conventions' attributes of a function's span that follow from its
    `faas.name` (the version, the cloud and the function's ARN): not stored with each
    span, whose size is what keeping a trace costs, but added back by every reader."""
    name = attributes.get("faas.name")
    if not isinstance(name, str):
        return {}
    return {"faas.version": "$LATEST", "cloud.provider": CLOUD_PROVIDER, "cloud.region": aws.REGION,
            "cloud.account.id": aws.ACCOUNT, "cloud.resource_id": aws.arn("lambda", f"function:{name}")}
#: span attribute values OpenTelemetry allows (and sequences of them)
_SCALARS = (str, bool, int, float)


class SpanKind(IntEnum):
    """OpenTelemetry's span kinds, with the numbers of `opentelemetry.trace.SpanKind`."""

    INTERNAL = 0
    SERVER = 1
    CLIENT = 2
    PRODUCER = 3
    CONSUMER = 4


class Status(IntEnum):
    """OpenTelemetry's status codes, with the numbers of `opentelemetry.trace.StatusCode`."""

    UNSET = 0
    OK = 1
    ERROR = 2


class FaasTrigger(StrEnum):
    """`faas.trigger`: the OpenTelemetry FaaS conventions' well-known values."""

    DATASOURCE = "datasource"
    HTTP = "http"
    PUBSUB = "pubsub"
    TIMER = "timer"
    OTHER = "other"


@dataclass(slots=True)
class SpanShape:
    """What a trigger kind adds to an invocation's span (`Source.span`): its name and kind,
    the `faas.trigger` value, the attributes of its own conventions (HTTP server,
    messaging), and whether the outcome is an error by those conventions (an HTTP 5xx).
    A source may hand the same shape to like invocations (the tracer stores each shape
    once per batch): nothing changes a shape once it is made."""

    name: str
    kind: SpanKind
    trigger: FaasTrigger
    attributes: dict[str, Any]
    error: str | None = None


@dataclass(slots=True)
class SpanRecord:
    """One finished span. Times are epoch nanoseconds; `parent_id` is "" for a root;
    `links` are the contexts the span is linked to (a batch's messages' producers)."""

    trace_id: str
    span_id: str
    parent_id: str
    name: str
    kind: SpanKind
    start_ns: int
    end_ns: int
    attributes: dict[str, Any] = field(default_factory=dict)
    status: Status = Status.UNSET
    status_message: str = ""
    links: list[SpanContext] = field(default_factory=list)

    def context(self, sampled: bool) -> SpanContext:
        """This span's context, as the hop it starts carries it."""
        return SpanContext(self.trace_id, self.span_id, sampled)

    @property
    def duration_ms(self) -> float:
        return (self.end_ns - self.start_ns) / 1e6

    def encode(self) -> list[Any]:
        """The record as a JSON array (the stored and the wire form)."""
        return [self.trace_id, self.span_id, self.parent_id, self.name, int(self.kind), self.start_ns, self.end_ns,
                self.attributes, int(self.status), self.status_message,
                [[link.trace_id, link.span_id, link.sampled] for link in self.links]]

    @classmethod
    def decode(cls, raw: Any) -> SpanRecord | None:
        """The record `encode` made; None for anything else (an instance's malformed span)."""
        if not isinstance(raw, list) or len(raw) != 11:
            return None
        trace_id, span_id, parent_id, name, kind, start, end, attributes, status, message, links = raw
        if not (_hex(trace_id, 32) and _hex(span_id, 16) and (parent_id == "" or _hex(parent_id, 16))
                and isinstance(name, str) and isinstance(message, str) and isinstance(attributes, dict)
                and _int(start) and _int(end) and type(kind) is int and kind in _KINDS
                and type(status) is int and status in _STATUSES
                and isinstance(links, list)):
            return None
        if not all(isinstance(key, str) and _attribute(value) for key, value in attributes.items()):
            return None
        contexts = []
        for link in links:
            if not (isinstance(link, list) and len(link) == 3 and _hex(link[0], 32) and _hex(link[1], 16)
                    and isinstance(link[2], bool)):
                return None
            contexts.append(SpanContext(*link))
        return cls(trace_id, span_id, parent_id, name, SpanKind(kind), start, end, attributes, Status(status),
                   message, contexts)


_KINDS = frozenset(int(kind) for kind in SpanKind)
_STATUSES = frozenset(int(status) for status in Status)
_HEX = frozenset("0123456789abcdef")


def _hex(value: Any, length: int) -> bool:
    return isinstance(value, str) and len(value) == length and _HEX.issuperset(value)


def _int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


def _attribute(value: Any) -> bool:
    if isinstance(value, list):
        return all(isinstance(item, _SCALARS) for item in value)
    return isinstance(value, _SCALARS)
