"""`squall schedules`: an app's schedules and their next firing; `squall schedules next`: the
firing times of any expression, to check one before declaring it."""

from __future__ import annotations

import time
from typing import Any

import click

from squall.cli import _table, backend_option, backend_url, main
from squall.errors import ConfigError
from squall.sources.schedule_expressions import Timing, iso, moment, parse, zone
from squall.sources.schedules import REGISTRY, ScheduleTrigger


class _Schedules(click.Group):
    """A group whose optional APP argument never swallows a subcommand's name: `squall
    schedules next ...` runs `next`, `squall schedules app.py` lists the app's schedules."""

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        if args and args[0] not in self.commands and not args[0].startswith("-"):
            ctx.meta["schedules.app"], args = args[0], args[1:]
        return super().parse_args(ctx, args)

    def collect_usage_pieces(self, ctx: click.Context) -> list[str]:
        return ["[OPTIONS] [APP]", "| next EXPRESSION [OPTIONS]"]


@main.group(cls=_Schedules, invoke_without_command=True)
@backend_option
@click.pass_context
def schedules(ctx: click.Context, backend: str | None) -> None:
    """Each schedule of APP (or, without one, of the backend) and its next firing."""
    if ctx.invoked_subcommand is not None:
        return
    from squall.backends import open_backend

    app_ref: str | None = ctx.meta.get("schedules.app")
    store = open_backend(backend_url(backend, app_ref))
    try:
        provisioned = {item.key: item.value for item in store.table_scan(REGISTRY, limit=100000)}
    finally:
        store.close()
    now = time.time()
    if app_ref is None:
        rows = [_row(name, entry["function"], entry["expression"], entry["timezone"], entry.get("start"),
                     entry.get("end"), entry["anchor"], now) for name, entry in sorted(provisioned.items())]
    else:
        from squall.loader import load_app

        triggers = [t for t in load_app(app_ref).triggers if isinstance(t, ScheduleTrigger)]
        rows = []
        for t in triggers:
            entry = provisioned.get(t.schedule)
            anchor = entry["anchor"] if entry and entry.get("fingerprint") == t.fingerprint else now
            rows.append(_row(t.schedule, t.function, t.expression, t.timezone, t.start, t.end, anchor, now))
    _table(["SCHEDULE", "FUNCTION", "EXPRESSION", "TIMEZONE", "NEXT"], rows)


def _row(name: str, function: str, expression: str, timezone: str, start: str | None, end: str | None,
         anchor: float, now: float) -> tuple[Any, ...]:
    tz = zone(timezone)
    bounds = [moment(v, tz, "bound") if v else None for v in (start, end)]
    timing = Timing(parse(expression), tz, bounds[0] if bounds[0] is not None else anchor, *bounds)
    following = timing.after(now)
    return name, function, expression, timezone, "-" if following is None else iso(following, tz)


@schedules.command("next")
@click.argument("expression")
@click.option("--count", "-n", default=5, show_default=True, type=click.IntRange(1, 10000),
              help="How many firing times to print.")
@click.option("--timezone", "timezone", default="UTC", show_default=True,
              help="The IANA zone the expression is read in.")
@click.option("--start", default=None, metavar="ISO", help="Print firings strictly after this time (default: now); "
              "without an offset it is read in --timezone. A rate counts from it.")
def next_firings(expression: str, count: int, timezone: str, start: str | None) -> None:
    """The next firing times of EXPRESSION, one ISO-8601 time with its UTC offset per line."""
    try:
        parsed = parse(expression)
    except ConfigError as exc:
        raise click.BadParameter(str(exc), param_hint="EXPRESSION") from None
    try:
        tz = zone(timezone)
    except ConfigError as exc:
        raise click.BadParameter(str(exc), param_hint="--timezone") from None
    try:
        after = moment(start, tz, "--start") if start is not None else float(int(time.time()))
    except ConfigError as exc:
        raise click.BadParameter(str(exc), param_hint="--start") from None
    for when in Timing(parsed, tz, after).upcoming(after, count):
        click.echo(iso(when, tz))
