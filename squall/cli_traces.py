"""`squall traces`: recent traces, and one trace drawn as a waterfall."""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime
from typing import TYPE_CHECKING

import click

from squall.cli import Duration, _table, backend_option, backend_url, main

if TYPE_CHECKING:
    from squall.observability.spans import SpanRecord
    from squall.observability.traces import Trace

#: columns of the waterfall's bars
BAR_WIDTH = 40


def _time(ns: int) -> str:
    return datetime.fromtimestamp(ns / 1e9, UTC).strftime("%Y-%m-%d %H:%M:%S.%f")[:-3]


@main.group(invoke_without_command=True)
@click.option("--function", "function", default=None, help="Only traces with a span of this function.")
@click.option("--since", type=Duration(), default="1h", show_default=True, help="How far back: 30s, 10m, 1h, 2d.")
@click.option("--errors", is_flag=True, help="Only traces with an error.")
@click.option("--limit", default=20, show_default=True, type=click.IntRange(1, 10000))
@backend_option
@click.pass_context
def traces(ctx: click.Context, function: str | None, since: float, errors: bool, limit: int,
           backend: str | None) -> None:
    """Recent traces, newest first: root span, start, duration, span count, status."""
    if ctx.invoked_subcommand is not None:
        ctx.obj = backend
        return
    from squall.observability.traces import group

    found = [t for t in group(_spans(backend, time.time() - since))
             if (function is None or function in t.functions()) and (not errors or t.error)][:limit]
    _table(["TRACE", "ROOT", "START", "DURATION", "SPANS", "STATUS"],
           [(t.trace_id, t.root.name, _time(t.start_ns), f"{t.duration_ms:.2f} ms", len(t.spans),
             "error" if t.error else "ok") for t in found])


@traces.command()
@click.argument("trace_id")
@click.option("--json", "as_json", is_flag=True, help="The spans as JSON lines (OTLP-like fields), not a drawing.")
@backend_option
@click.pass_obj
def show(group_backend: str | None, trace_id: str, as_json: bool, backend: str | None) -> None:
    """Draw TRACE_ID as a waterfall: each span's function, trigger, duration, cold/warm, error."""
    from squall.observability.traces import group

    backend = backend or group_backend
    trace_id = trace_id.strip().lower()
    found = group(s for s in _spans(backend, 0.0) if s.trace_id == trace_id)
    if not found:
        raise click.ClickException(f"no trace {trace_id} is kept (traces are kept for the trace retention)")
    trace = found[0]
    if as_json:
        for _, span in trace.tree():
            click.echo(json.dumps({"traceId": span.trace_id, "spanId": span.span_id, "parentSpanId": span.parent_id,
                                   "name": span.name, "kind": span.kind.name, "startTimeUnixNano": span.start_ns,
                                   "endTimeUnixNano": span.end_ns, "attributes": span.attributes,
                                   "status": {"code": span.status.name, "message": span.status_message},
                                   "links": [{"traceId": link.trace_id, "spanId": link.span_id}
                                             for link in span.links]}))
        return
    _waterfall(trace)


def _waterfall(trace: Trace) -> None:
    from rich.console import Console
    from rich.table import Table
    from rich.text import Text

    from squall.observability.spans import Status

    start, total = trace.start_ns, max(trace.duration_ms, 1e-3)
    table = Table(title=f"trace {trace.trace_id}  ({len(trace.spans)} spans, {trace.duration_ms:.2f} ms)",
                  box=None, title_justify="left")
    for column in ("span", "function", "trigger", "duration", "cold/warm", "error", "timeline"):
        table.add_column(column, no_wrap=True, justify="right" if column == "duration" else "left")
    function = ""
    for depth, span in trace.tree():
        attributes = span.attributes
        function = str(attributes.get("faas.name", function if depth else ""))
        cold = attributes.get("faas.coldstart")
        offset = int((span.start_ns - start) / 1e6 / total * BAR_WIDTH)
        width = max(1, round(span.duration_ms / total * BAR_WIDTH))
        error = span.status is Status.ERROR
        bar = Text(" " * min(offset, BAR_WIDTH - 1) + "█" * width, style="red" if error else "green")
        table.add_row("  " * depth + span.name, function, str(attributes.get("faas.trigger", "")),
                      f"{span.duration_ms:.2f} ms", "" if cold is None else "cold" if cold else "warm",
                      str(attributes.get("error.type", "error")) if error else "", bar)
    Console(width=200, soft_wrap=True).print(table)


def _spans(backend: str | None, since: float) -> list[SpanRecord]:
    from squall.backends import open_backend
    from squall.observability.store import read_spans

    store = open_backend(backend_url(backend))
    try:
        return list(read_spans(store, since))
    finally:
        store.close()
