"""Traces as `squall traces` reads them: the stored spans grouped by trace, as trees."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from squall.observability.spans import SpanRecord, Status


@dataclass
class Trace:
    """The spans of one trace that are still kept, oldest first."""

    trace_id: str
    spans: list[SpanRecord]

    @property
    def root(self) -> SpanRecord:
        """The span with no parent here (the first such one; a trace whose root is gone, or
        was made before Squall saw it, is rooted at its oldest span)."""
        ids = {span.span_id for span in self.spans}
        return next((span for span in self.spans if span.parent_id not in ids), self.spans[0])

    @property
    def start_ns(self) -> int:
        return min(span.start_ns for span in self.spans)

    @property
    def duration_ms(self) -> float:
        return (max(span.end_ns for span in self.spans) - self.start_ns) / 1e6

    @property
    def error(self) -> bool:
        return any(span.status is Status.ERROR for span in self.spans)

    def functions(self) -> set[str]:
        return {str(span.attributes["faas.name"]) for span in self.spans if "faas.name" in span.attributes}

    def tree(self) -> list[tuple[int, SpanRecord]]:
        """Every span with its depth, each parent before its children, siblings by start."""
        children: dict[str, list[SpanRecord]] = {}
        ids = {span.span_id for span in self.spans}
        roots = []
        for span in sorted(self.spans, key=lambda s: s.start_ns):
            if span.parent_id in ids:
                children.setdefault(span.parent_id, []).append(span)
            else:
                roots.append(span)
        ordered: list[tuple[int, SpanRecord]] = []
        stack = [(0, span) for span in reversed(roots)]
        while stack:
            depth, span = stack.pop()
            ordered.append((depth, span))
            stack.extend((depth + 1, child) for child in reversed(children.get(span.span_id, [])))
        return ordered


def group(spans: Iterable[SpanRecord]) -> list[Trace]:
    """Spans grouped into traces, the most recent trace first."""
    by_trace: dict[str, list[SpanRecord]] = {}
    for span in spans:
        by_trace.setdefault(span.trace_id, []).append(span)
    traces = [Trace(trace_id, sorted(found, key=lambda s: s.start_ns)) for trace_id, found in by_trace.items()]
    return sorted(traces, key=lambda t: t.start_ns, reverse=True)
