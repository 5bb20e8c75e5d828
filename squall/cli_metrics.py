"""`squall metrics` and `squall alarms`: what CloudWatch's console shows for the functions
and alarms, read from the backend, so any machine sharing it sees the whole cluster."""

from __future__ import annotations

import json
import sys
from datetime import UTC, datetime
from typing import TYPE_CHECKING

import click

from squall.cli import Duration, backend_option, backend_url, main

if TYPE_CHECKING:
    from rich.console import Console


def _console() -> Console:
    """Rich's console, not narrowed to 80 columns when the output is not a terminal.
    (rich is imported only by the commands that draw: every `squall` command loads this.)"""
    from rich.console import Console

    return Console() if sys.stdout.isatty() else Console(width=240)


def _time(t: float) -> str:
    return datetime.fromtimestamp(t, UTC).strftime("%Y-%m-%d %H:%M:%S")


def _ms(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f}"


@main.command()
@click.argument("function", required=False)
@click.option("--since", type=Duration(), default="1h", show_default=True, help="How far back: 30s, 10m, 1h, 2d.")
@click.option("--period", type=Duration(), default="1m", show_default=True,
              help="Length of each period (whole seconds).")
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of a table.")
@backend_option
def metrics(function: str | None, since: float, period: float, as_json: bool, backend: str | None) -> None:
    """Invocations, Errors, Throttles, Duration, ConcurrentExecutions, cold starts and
    GB-seconds per period, of FUNCTION (or of every function), from every node's metering;
    then the custom metrics its EMF lines emitted."""
    from rich.box import SIMPLE
    from rich.table import Table

    from squall.backends import open_backend
    from squall.observability.emf import read_custom_metrics
    from squall.observability.statistics import summarize, summarize_custom
    from squall.observability.window import MeteringWindow

    seconds = period
    if seconds != int(seconds):
        raise click.ClickException(f"invalid --period {period!r}: must be whole seconds")
    store = open_backend(backend_url(backend))
    try:
        until = store.clock()
        start = until - since
        calls = MeteringWindow(store).calls(start)
        points = list(read_custom_metrics(store, start))
    finally:
        store.close()
    summaries = summarize(calls, int(seconds), start, until, function)
    custom = summarize_custom(points, int(seconds), start, until, function)
    if as_json:
        click.echo(json.dumps({"function": function, "period": int(seconds), "since": start, "until": until,
                               "periods": [s.to_json() for s in summaries], "custom": [c.to_json() for c in custom]}))
        return
    table = Table(title=f"{function or 'all functions'}, per {int(seconds)} s since {_time(start)} UTC", box=SIMPLE)
    for header in ("TIME (UTC)", "INVOCATIONS", "ERRORS", "THROTTLES", "AVG ms", "P50 ms", "P90 ms", "P99 ms",
                   "MAX ms", "CONCURRENT", "COLD %", "GB-S"):
        table.add_column(header, justify="left" if header.startswith("TIME") else "right", no_wrap=True)
    for s in summaries:
        cold = "-" if s.cold_start_rate is None else f"{100 * s.cold_start_rate:.1f}"
        table.add_row(_time(s.start), str(s.invocations), str(s.errors), str(s.throttles), _ms(s.duration_avg),
                      _ms(s.duration_p50), _ms(s.duration_p90), _ms(s.duration_p99), _ms(s.duration_max),
                      str(s.concurrent_executions), cold, f"{s.gb_seconds:.6f}")
    console = _console()
    console.print(table)
    if custom:
        extra = Table(title="custom metrics (EMF)", box=SIMPLE)
        for header in ("TIME (UTC)", "NAMESPACE", "METRIC", "DIMENSIONS", "UNIT", "COUNT", "SUM", "AVG", "MIN", "MAX"):
            extra.add_column(header, justify="right" if header in ("COUNT", "SUM", "AVG", "MIN", "MAX") else "left",
                             no_wrap=True)
        for c in custom:
            dimensions = ",".join(f"{key}={value}" for key, value in c.dimensions)
            extra.add_row(_time(c.start), c.namespace, c.name, dimensions, c.unit, str(c.count), f"{c.sum:g}",
                          f"{c.average:g}", f"{c.minimum:g}", f"{c.maximum:g}")
        console.print(extra)


@main.command()
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of a table.")
@backend_option
def alarms(as_json: bool, backend: str | None) -> None:
    """Every alarm's state, since when, and why (as CloudWatch words it)."""
    from rich.box import SIMPLE
    from rich.table import Table

    from squall.backends import open_backend
    from squall.sources.alarms import ALARMS_TABLE, AlarmRecord

    store = open_backend(backend_url(backend))
    try:
        found, after = [], None
        while page := store.table_scan(ALARMS_TABLE, start_after=after, limit=500):
            found += [(item.key, AlarmRecord.of(item.value)) for item in page]
            after = page[-1].key
    finally:
        store.close()
    if as_json:
        click.echo(json.dumps([{"name": name, "state": str(r.state.value), "since": r.state.timestamp,
                                "reason": r.state.reason, "condition": r.condition} for name, r in found]))
        return
    table = Table(box=SIMPLE)
    for header in ("ALARM", "STATE", "SINCE (UTC)", "CONDITION", "REASON"):
        table.add_column(header, no_wrap=header != "REASON")
    for name, record in found:
        table.add_row(name, str(record.state.value), _time(record.state.timestamp), record.condition,
                      record.state.reason)
    _console().print(table)
