"""`squall put-events`, `squall events replay` and `squall test-event-pattern`: the event bus
from the command line, in the AWS CLI's shapes."""

from __future__ import annotations

import json
import sys
from datetime import UTC, datetime

import click

from squall.cli import backend_option, backend_url, main, utf8


def _json(what: str, text: str) -> object:
    try:
        return json.loads(utf8(what, text))
    except ValueError as exc:
        raise click.ClickException(f"{what} is not JSON: {exc}") from None


def _instant(ctx: click.Context | None, param: click.Parameter | None, value: str) -> float:
    """An ISO 8601 time (UTC when it names no offset), in seconds since the epoch."""
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise click.BadParameter(f"{value!r} is not an ISO 8601 time such as 2024-05-01T12:00:00Z") from None
    return (parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)).timestamp()


@main.command("put-events")
@click.option("--entries", required=True, metavar="JSON",
              help='The entries, as the AWS CLI takes them: [{"Source": ..., "DetailType": ..., "Detail": "{...}", '
                   '"EventBusName": ...}]')
@backend_option
def put_events_command(entries: str, backend: str | None) -> None:
    """Put events on their buses; prints PutEvents' response (failed entries included)."""
    from squall.backends import open_backend
    from squall.sources.events import put_events

    parsed = _json("--entries", entries)
    store = open_backend(backend_url(backend))
    try:
        click.echo(json.dumps(put_events(store, parsed), indent=4))
    finally:
        store.close()


@main.group()
def events() -> None:
    """The event bus: archives and replays."""


@events.command("replay")
@click.option("--archive", required=True, help="The archive to replay from.")
@click.option("--from", "start", required=True, callback=_instant, metavar="ISO",
              help="Replay the events archived from this time...")
@click.option("--to", "end", required=True, callback=_instant, metavar="ISO", help="...up to (not including) this one.")
@click.option("--name", default=None, help="The replay's name, which each replayed event carries as replay-name "
                                           "(default: ARCHIVE-<epoch seconds>).")
@backend_option
def replay_command(archive: str, start: float, end: float, name: str | None, backend: str | None) -> None:
    """Put the events ARCHIVE received in [--from, --to) back on their bus, marked as replayed."""
    from squall.backends import open_backend
    from squall.sources.events import replay

    store = open_backend(backend_url(backend))
    try:
        done = replay(store, archive, start, end, name or f"{archive}-{int(store.clock())}")
    finally:
        store.close()
    click.echo(f"replay {done.name}: {done.events} event(s) from archive {archive} put back on their bus")


@main.command("test-event-pattern")
@click.option("--event-pattern", "--pattern", "pattern", required=True, metavar="JSON", help="The event pattern.")
@click.option("--event", required=True, metavar="JSON", help="The event, with the envelope's fields.")
def test_event_pattern_command(pattern: str, event: str) -> None:
    """Print true if PATTERN matches EVENT, false if not (exit 0 for both; exit 2 with the
    reason for an invalid pattern or event), as TestEventPattern answers."""
    from squall.errors import ConfigError
    from squall.routing import test_event_pattern

    try:
        matched = test_event_pattern(utf8("--event-pattern", pattern), utf8("--event", event))
    except ConfigError as exc:
        click.echo(f"Error: {exc}", err=True)
        sys.exit(2)
    click.echo("true" if matched else "false")
