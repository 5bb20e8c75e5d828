"""`squall logs`: the function log of the whole cluster, from any machine."""

from __future__ import annotations

import time
from datetime import UTC, datetime

import click

from squall.cli import Duration, backend_option, backend_url, main

#: how often --follow looks for new lines (it shows one within about this plus the
#: node's own flush interval, squall.observability.logs.FLUSH_INTERVAL)
FOLLOW_POLL = 0.25

@main.command()
@click.argument("function", required=False)
@click.option("--since", type=Duration(), default="10m", show_default=True,
              help="How far back to start: 30s, 10m, 2h, 1d.")
@click.option("--follow", "-f", is_flag=True, help="Keep printing new lines as they are stored.")
@click.option("--request-id", default=None, help="Only this invocation's lines.")
@click.option("--trace-id", default=None, help="Only lines of this trace (32 hex digits).")
@click.option("--level", type=click.Choice(["TRACE", "DEBUG", "INFO", "WARN", "ERROR", "FATAL"], case_sensitive=False),
              default=None, help="Only lines at this level or above (lines without a level are left out).")
@click.option("--grep", default=None, metavar="TEXT", help="Only lines containing TEXT.")
@backend_option
def logs(function: str | None, since: float, follow: bool, request_id: str | None, trace_id: str | None,
         level: str | None, grep: str | None, backend: str | None) -> None:
    """Print what functions wrote (every node's), oldest first: FUNCTION's, or all."""
    from squall.backends import open_backend
    from squall.observability.logs import LogQuery, LogReader

    query = LogQuery(function=function, since=time.time() - since, request_id=request_id,
                     trace_id=trace_id.lower() if trace_id else None, level=level.upper() if level else None,
                     grep=grep)
    store = open_backend(backend_url(backend))
    reader = LogReader(store, query)
    try:
        while True:
            for line in reader.read():
                stamp = datetime.fromtimestamp(line.time, UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"
                click.echo(f"{stamp} {line.function}\t{line.text}")
            if not follow:
                return
            time.sleep(FOLLOW_POLL)
    except KeyboardInterrupt:
        pass
    finally:
        store.close()
