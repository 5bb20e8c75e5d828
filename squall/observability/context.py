"""Trace context: the W3C `traceparent` every invocation carries in `InvokeRequest.headers`,
and the X-Ray form of the same ids (`_X_AMZN_TRACE_ID`, SQS's `AWSTraceHeader`).

Pure string work on the standard formats, imported by the node and by every function
instance, so nothing here imports more than the standard library.

- W3C Trace Context: `00-<32 hex trace id>-<16 hex parent id>-<2 hex flags>`, bit 0 of the
  flags meaning sampled; all-zero ids are invalid.
- X-Ray: `Root=1-<8 hex>-<24 hex>;Parent=<16 hex>;Sampled=1|0`. The root's two hex parts
  are the 32 hex digits of the W3C trace id (X-Ray's first eight are the epoch seconds of
  the trace's start when X-Ray makes the id; any 32 digits convert either way).
"""

from __future__ import annotations

import random
import re
from collections.abc import Mapping
from typing import Any, NamedTuple

TRACEPARENT = "traceparent"
TRACESTATE = "tracestate"
#: the message attribute that carries a message's creation context, as SQS's system
#: attribute `AWSTraceHeader` does: a name SQS reserves ("AWS." names are refused as user
#: attributes), so it never counts against, nor shows among, the user's attributes
TRACE_ATTRIBUTE = "AWS.TraceHeader"

_HEX = frozenset("0123456789abcdef")
_ZERO_TRACE = "0" * 32
_ZERO_SPAN = "0" * 16


class SpanContext(NamedTuple):
    """The identity of one span, as it crosses a hop."""

    trace_id: str  # 32 lower-case hex digits
    span_id: str  # 16 lower-case hex digits
    sampled: bool

    def traceparent(self) -> str:
        return f"00-{self.trace_id}-{self.span_id}-{'01' if self.sampled else '00'}"

    def xray(self) -> str:
        """The X-Ray header of this span: what `_X_AMZN_TRACE_ID` and `AWSTraceHeader` hold."""
        t = self.trace_id
        return f"Root=1-{t[:8]}-{t[8:]};Parent={self.span_id};Sampled={'1' if self.sampled else '0'}"

    def child(self) -> SpanContext:
        """A new span of the same trace (its parent is this one)."""
        return SpanContext(self.trace_id, new_span_id(), self.sampled)


def new_trace(now_ns: int) -> tuple[str, str]:
    """A new trace id and its root span's id, from one draw (every untraced request at the
    gateway makes both). The trace id's first 8 digits are the epoch seconds of `now_ns`,
    so the X-Ray form of it is a well-formed X-Ray root (`1-<time>-<random>`) as well as a
    random W3C id."""
    digits = f"{now_ns // 1_000_000_000:08x}{random.getrandbits(160):040x}"
    span = digits[32:]
    return digits[:32], span if span != _ZERO_SPAN else _FIRST_SPAN


def new_span_id() -> str:
    span = random.getrandbits(64)
    return f"{span or 1:016x}"


#: the span id a draw of all zeros (an invalid id) stands in with
_FIRST_SPAN = f"{1:016x}"


def _is_hex(value: str, length: int) -> bool:
    return len(value) == length and _HEX.issuperset(value)


#: a traceparent's four fields; a future version may add fields after a dash
_TRACEPARENT = re.compile(r"([0-9a-f]{2})-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})(-.*)?", re.DOTALL)


def parse_traceparent(value: str | None) -> SpanContext | None:
    """The context a `traceparent` header names; None for a missing or malformed one (a
    receiver then starts a new trace, as the W3C recommendation says). A future version
    (not `00`, not `ff`) is read by its first four fields."""
    if not value:
        return None
    match = _TRACEPARENT.fullmatch(value)
    if match is None:
        return None
    version, trace_id, span_id, flags, rest = match.groups()
    if version == "ff" or (version == "00" and rest is not None):
        return None
    if trace_id == _ZERO_TRACE or span_id == _ZERO_SPAN:
        return None
    return SpanContext(trace_id, span_id, bool(int(flags, 16) & 1))


def parse_xray(value: str | None) -> SpanContext | None:
    """The context an X-Ray header names (`Root=...;Parent=...;Sampled=...`, in any order,
    other fields ignored); None without a well-formed root and parent."""
    if not value:
        return None
    fields = dict(part.strip().partition("=")[::2] for part in value.split(";"))
    root, parent = fields.get("Root", ""), fields.get("Parent", "")
    if len(root) != 35 or root[:2] != "1-" or root[10] != "-":
        return None
    trace_id = root[2:10] + root[11:]
    if not (_is_hex(trace_id, 32) and _is_hex(parent, 16)) or trace_id == _ZERO_TRACE or parent == _ZERO_SPAN:
        return None
    return SpanContext(trace_id, parent, fields.get("Sampled") == "1")


def trace_attribute(context: SpanContext | None, lineage: str = "") -> dict[str, Any]:
    """The message attribute that carries `context` (`TRACE_ATTRIBUTE`), in X-Ray form as
    SQS's `AWSTraceHeader`, shaped as every stored attribute is; with the chain's `lineage`
    (squall.observability.lineage) as the header's `Lineage` field, as Lambda carries it.
    Without a context (an untraced send) it holds the lineage alone."""
    header = context.xray() if context is not None else ""
    if lineage:
        header = f"{header};Lineage={lineage}" if header else f"Lineage={lineage}"
    return {"stringValue": header, "stringListValues": [], "binaryListValues": [], "dataType": "String"}


def message_context(attributes: Mapping[str, Any]) -> SpanContext | None:
    """The creation context a stored message carries, if any."""
    return parse_xray(message_header(attributes))


def message_header(attributes: Mapping[str, Any]) -> str:
    """The X-Ray header a stored message carries ('' if none)."""
    attribute = attributes.get(TRACE_ATTRIBUTE)
    value = attribute.get("stringValue") if isinstance(attribute, dict) else None
    return value if isinstance(value, str) else ""
