"""Schedules end to end: real `squall run` nodes, on SQLite and on Redis with two nodes.

A cron or rate firing is a minute away at best, so these tests use what fires at once:
`at()` a few seconds ahead, a rate's first firing (at once, as on Scheduler), and the
catch-up of firings missed while no node ran.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime

import pytest
from aws_lambda_powertools.utilities.parser.models import EventBridgeModel

from squall.backends import open_backend
from squall.sources.schedules import GROUP, Firing, ScheduleTrigger
from tests.support import NodeProcess, platform_tracebacks, squall, wait_until, write_app

APP = """
    import os
    from squall import App

    app = App("clock")

    @app.schedule("at({at})", payload={{"job": "once"}})
    def once(event, ctx):
        ctx.table("fired").put(event["id"] + "/" + ctx.aws_request_id, {{"event": event, "node": os.getpid()}})

    @app.schedule("rate(1 minute)", schedule_name="minutely", catch_up={catch_up})
    def minutely(event, ctx):
        ctx.table("ticks").put(event["time"] + "/" + ctx.aws_request_id, event)
"""


def at(seconds: float) -> str:
    """An at() time `seconds` from now, in UTC, to the second."""
    return datetime.fromtimestamp(time.time() + seconds, UTC).strftime("%Y-%m-%dT%H:%M:%S")


def write(tmp_path, fire_in: float, catch_up: int | None = None):
    return write_app(tmp_path, APP.format(at=at(fire_in), catch_up=catch_up))


def fired(url: str, table: str) -> list:
    backend = open_backend(url)
    try:
        return [item.value for item in backend.table_scan(table)]
    finally:
        backend.close()


@pytest.fixture
def sqlite_url(tmp_path):
    return f"sqlite:///{tmp_path}/state.db"


def test_an_at_schedule_fires_once_with_the_scheduled_event(tmp_path, sqlite_url):
    when = at(2)
    app = write_app(tmp_path, APP.format(at=when, catch_up=None))
    scheduled = datetime.fromisoformat(when).replace(tzinfo=UTC)
    with NodeProcess(app, sqlite_url) as node:
        [entry] = wait_until(lambda: fired(sqlite_url, "fired"), timeout=15, message="the at() firing")
        delivered = time.time()
        event = EventBridgeModel(**entry["event"])  # powertools parses it as a scheduled rule's event
        assert event.detail_type == "Scheduled Event" and event.source == "aws.events"
        assert event.time == scheduled  # the scheduled time, not when it ran
        assert event.resources == ["arn:aws:events:us-east-1:000000000000:rule/once"]
        assert event.detail == {"job": "once"} and event.version == "0" and event.region == "us-east-1"
        assert delivered - scheduled.timestamp() < 3
        time.sleep(1.5)
        assert len(fired(sqlite_url, "fired")) == 1
        # the rate's first firing came at once, exactly once
        assert len(fired(sqlite_url, "ticks")) == 1
        log = node.log()
    assert "schedule once at(" in log and platform_tracebacks(log) == 0


def test_a_firing_missed_while_the_node_was_down_comes_once_on_restart(tmp_path, sqlite_url):
    app = write(tmp_path, fire_in=3)
    node = NodeProcess(app, sqlite_url).start()
    wait_until(lambda: fired(sqlite_url, "ticks"), timeout=15, message="the node to run")
    node.kill()  # down before the at() time
    time.sleep(3.5)
    assert fired(sqlite_url, "fired") == []
    with NodeProcess(app, sqlite_url):
        wait_until(lambda: fired(sqlite_url, "fired"), timeout=15, message="the missed firing")
        time.sleep(1)
        assert len(fired(sqlite_url, "fired")) == 1
        assert len(fired(sqlite_url, "ticks")) == 1  # the restart did not repeat the rate's first firing


def test_a_firing_enqueued_ahead_survives_a_kill_and_comes_once_at_its_time(tmp_path, sqlite_url):
    """Firings are enqueued AHEAD seconds early, visible at their time: a node SIGKILLed
    between the two loses nothing, and the restarted one delivers it once, not early."""
    when = at(5)
    scheduled = datetime.fromisoformat(when).replace(tzinfo=UTC).timestamp()
    app = write_app(tmp_path, APP.format(at=when, catch_up=None))
    node = NodeProcess(app, sqlite_url).start()

    def waiting() -> bool:
        backend = open_backend(sqlite_url)
        try:
            return backend.queue_stats("async.once").delayed == 1
        finally:
            backend.close()

    wait_until(waiting, timeout=15, interval=0.05, message="the firing enqueued ahead of its time")
    assert time.time() < scheduled
    node.kill()
    with NodeProcess(app, sqlite_url) as node:
        while time.time() < scheduled - 0.3:
            assert fired(sqlite_url, "fired") == []  # not before its time
            time.sleep(0.1)
        [entry] = wait_until(lambda: fired(sqlite_url, "fired"), timeout=15, message="the firing after the restart")
        assert entry["event"]["time"] == when + "Z"
        time.sleep(1)
        assert len(fired(sqlite_url, "fired")) == 1
        assert platform_tracebacks(node.log()) == 0


def _rewind(url: str, tmp_path, catch_up: int | None, minutes: int) -> float:
    """Make the rate's timer overdue by `minutes` firings, as if no node had run that long."""
    trigger = ScheduleTrigger(expression="rate(1 minute)", schedule="minutely", catch_up=catch_up,
                              function="minutely")
    backend = open_backend(url)
    try:
        # 20 s off the minute: the latest missed firing is not the first run's (seconds ago),
        # and no firing sits at the edge of the catch-up window
        missed = time.time() - minutes * 60 - 20
        backend.timer_set(GROUP, "minutely", missed, Firing(missed, missed, trigger.fingerprint).dumps())
    finally:
        backend.close()
    return missed


@pytest.mark.parametrize(("catch_up", "delivered"), [(None, 1), (150, 3)])
def test_catch_up_delivers_the_missed_firings_it_allows(tmp_path, sqlite_url, catch_up, delivered):
    app = write(tmp_path, fire_in=3600, catch_up=catch_up)
    with NodeProcess(app, sqlite_url):
        wait_until(lambda: fired(sqlite_url, "ticks"), timeout=15, message="the first firing")
    before = {e["time"] for e in fired(sqlite_url, "ticks")}
    missed = _rewind(sqlite_url, tmp_path, catch_up, minutes=5)
    with NodeProcess(app, sqlite_url) as node:
        wait_until(lambda: len(fired(sqlite_url, "ticks")) >= 1 + delivered, timeout=15, message="catch-up")
        time.sleep(1)
        times = sorted(e["time"] for e in fired(sqlite_url, "ticks") if e["time"] not in before)
        log = node.log()
    expected = [datetime.fromtimestamp(missed + 60 * k, UTC).strftime("%Y-%m-%dT%H:%M:%SZ") for k in range(6)]
    assert times == expected[-delivered:]  # the latest, or those of the last 150 seconds
    assert f"{6 - delivered} firing(s) missed while no node ran were dropped" in log


def test_two_nodes_on_redis_fire_each_time_once(tmp_path, redis_server):
    url = f"redis://127.0.0.1:{redis_server.port}/15"
    import redis

    redis.Redis.from_url(url).flushdb()
    app = write(tmp_path, fire_in=3)
    with NodeProcess(app, url) as a, NodeProcess(app, url) as b:
        entries = wait_until(lambda: fired(url, "fired"), timeout=15, message="the at() firing")
        time.sleep(2)
        entries = fired(url, "fired")
        ticks = fired(url, "ticks")
        logs = a.log() + b.log()
    assert len(entries) == 1 and len(ticks) == 1
    assert platform_tracebacks(logs) == 0


def test_schedules_cli_lists_next_firings(tmp_path, sqlite_url):
    when = at(3600)
    app = write_app(tmp_path, APP.format(at=when, catch_up=None))
    listed = squall("schedules", str(app), "--backend", sqlite_url)
    assert listed.returncode == 0, listed.stderr
    header, *rows = listed.stdout.splitlines()
    assert header.split() == ["SCHEDULE", "FUNCTION", "EXPRESSION", "TIMEZONE", "NEXT"]
    assert [row.split()[0] for row in rows] == ["once", "minutely"]
    assert rows[0].split()[-1] == datetime.fromisoformat(when).replace(tzinfo=UTC).isoformat()
    with NodeProcess(app, sqlite_url):
        wait_until(lambda: fired(sqlite_url, "ticks"), timeout=15, message="provisioning")
    from_backend = squall("schedules", "--backend", sqlite_url)
    assert from_backend.returncode == 0, from_backend.stderr
    assert sorted(row.split()[0] for row in from_backend.stdout.splitlines()[1:]) == ["minutely", "once"]


@pytest.mark.parametrize(("args", "expected"), [
    (["cron(30 2 * * ? *)", "--timezone", "Europe/Berlin", "--start", "2026-03-28T00:00:00", "--count", "3"],
     ["2026-03-28T02:30:00+01:00", "2026-03-30T02:30:00+02:00", "2026-03-31T02:30:00+02:00"]),
    (["cron(0 9 ? * MON#1 *)", "--start", "2026-01-01T00:00:00+00:00", "-n", "2"],
     ["2026-01-05T09:00:00+00:00", "2026-02-02T09:00:00+00:00"]),
    (["rate(90 minutes)", "--start", "2026-01-01T00:00:00Z", "-n", "2"],
     ["2026-01-01T01:30:00+00:00", "2026-01-01T03:00:00+00:00"]),
    (["at(2026-12-01T09:00:00)", "--timezone", "America/New_York", "--start", "2026-01-01T00:00:00"],
     ["2026-12-01T09:00:00-05:00"]),  # fewer lines than --count: one firing only
])
def test_schedules_next(args, expected):
    result = squall("schedules", "next", *args)
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == expected


@pytest.mark.parametrize(("args", "reason"), [
    (["rate(1 minutes)"], "Parameter ScheduleExpression is not valid: 'rate(1 minutes)': for a value of 1"),
    (["cron(0 1 * * * *)"], "one of them must be ?"),
    (["rate(5 minutes)", "--timezone", "Nowhere/City"], "invalid timezone 'Nowhere/City'"),
])
def test_schedules_next_refuses_with_the_reason(args, reason):
    result = squall("schedules", "next", *args)
    assert result.returncode == 2
    assert reason in result.stderr and result.stdout == ""


def test_a_bad_schedule_stops_the_app_loading(tmp_path, sqlite_url):
    app = write_app(tmp_path, """
        from squall import App
        app = App("bad")

        @app.schedule("cron(0 3 * * * *)")
        def nightly(event, ctx):
            pass
    """)
    result = squall("run", str(app), "--backend", sqlite_url, timeout=30)
    assert result.returncode != 0
    assert "Parameter ScheduleExpression is not valid: 'cron(0 3 * * * *)'" in result.stderr
