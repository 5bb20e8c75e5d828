"""Schedule declarations: checked where they are written, and carried by the manifest."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from zoneinfo import ZoneInfo

import pytest

from squall import App
from squall.errors import ConfigError
from squall.manifest import describe, restore
from squall.sources.schedules import ScheduleTrigger
from squall.testing import Harness


def handler(event, ctx):
    return event


@pytest.mark.parametrize(("options", "message"), [
    ({"expression": "rate(5 minute)"}, "Parameter ScheduleExpression is not valid: 'rate(5 minute)'"),
    ({"expression": "rate(5 minutes)", "timezone": "Berlin"}, "invalid timezone 'Berlin'"),
    ({"expression": "rate(5 minutes)", "flexible_window": 0}, "invalid flexible_window (minutes)"),
    ({"expression": "rate(5 minutes)", "flexible_window": 1441}, "from 1 to 1440"),
    ({"expression": "rate(5 minutes)", "catch_up": 30}, "invalid catch_up (seconds)"),
    ({"expression": "rate(5 minutes)", "catch_up": 86401}, "from 60 to 86400"),
    ({"expression": "rate(5 minutes)", "start": "yesterday"}, "invalid start"),
    ({"expression": "rate(5 minutes)", "start": "2026-01-02T00:00:00", "end": "2026-01-01T00:00:00"},
     "must be after start"),
    ({"expression": "at(2026-01-01T00:00:00)", "end": "2026-02-01T00:00:00"}, "an at() schedule fires once"),
    ({"expression": "rate(5 minutes)", "payload": {"x": float("nan")}}, "is not JSON"),
    ({"expression": "rate(5 minutes)", "payload": "x" * 300_000}, "the limit is 262144"),
    ({"expression": "rate(5 minutes)", "schedule": "bad name"}, "invalid schedule name 'bad name'"),
])
def test_bad_declarations_name_the_problem(options, message):
    with pytest.raises(ConfigError) as error:
        ScheduleTrigger(**options)
    assert message in str(error.value)


def test_two_schedules_of_one_function_need_names():
    app = App("twice")
    app.schedule("rate(5 minutes)", handler, name="job")
    with pytest.raises(ConfigError, match="schedule 'job' is declared twice"):
        app.schedule("rate(10 minutes)", handler, name="job", schedule_name="job")
    app.schedule("rate(1 hour)", handler, name="job", schedule_name="hourly")
    assert [t.schedule for t in app.triggers] == ["job", "hourly"]


def test_the_manifest_carries_every_field():
    app = App("m")
    app.schedule("cron(0 3 * * ? *)", handler, timezone="Europe/Berlin", payload={"a": [1, 2]}, flexible_window=15,
                 start="2026-01-01T00:00:00", end="2027-01-01T00:00:00+00:00", catch_up=3600,
                 schedule_name="nightly")
    [restored] = restore(json.loads(json.dumps(describe(app)))).triggers
    assert restored == app.triggers[0]
    # a start without an offset is read in the schedule's zone
    assert restored.timing(0).start == datetime(2026, 1, 1, tzinfo=ZoneInfo("Europe/Berlin")).timestamp()


def test_start_and_end_bound_firings_on_the_harness():
    app = App("bounded")
    seen = []
    with Harness(app) as h:
        pass
    start = h.clock.now + 3600
    app.schedule("rate(10 minutes)", lambda event, ctx: seen.append(event["time"]), name="job",
                 start=_iso(start), end=_iso(start + 1800))
    with Harness(app) as h:
        h.advance(6 * 3600)
    assert len(seen) == 4  # start, +10, +20 and +30 minutes


def test_a_flexible_window_delays_each_firing_within_it():
    app = App("flexible")
    delivered = []
    app.schedule("rate(1 hour)", lambda event, ctx: delivered.append((_epoch(event["time"]), h.clock.now)),
                 name="job", flexible_window=30)
    with Harness(app) as h:
        first = int(h.clock.now)
        h.advance(5 * 3600 + 1800)
    assert [scheduled - first for scheduled, _ in delivered] == [0, 3600, 7200, 10800, 14400, 18000]
    delays = [moment - scheduled for scheduled, moment in delivered[1:]]  # the first fires at once
    assert all(0 <= delay <= 1800 for delay in delays) and len(set(delays)) > 1


def _iso(epoch: float) -> str:
    return datetime.fromtimestamp(int(epoch), UTC).isoformat()


def _epoch(text: str) -> float:
    return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()
