"""The maintenance jobs on the harness's fake clock: advancing it fires the schedules."""

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from squall.loader import load_app
from squall.testing import Harness

APP_FILE = Path(__file__).with_name("app.py")
BERLIN = ZoneInfo("Europe/Berlin")
DAY = 86400


@pytest.fixture
def h():
    with Harness(load_app(str(APP_FILE))) as harness:
        harness.advance(0)  # the hourly clean-up's first firing: a rate starts at once
        yield harness


def now(h):
    return datetime.fromtimestamp(h.clock.now, UTC)


def order(h, order_id, total, at):
    body = {"id": order_id, "total": total, "at": at.isoformat()}
    assert h.post("/orders", json=body).status_code == 201


def test_nine_nights_of_backups_keep_the_last_seven(h):
    order(h, "o1", 10.0, now(h))
    h.advance(9 * DAY)
    today = now(h).astimezone(BERLIN).date()
    nights = [today - timedelta(days=k) for k in range(10)]
    ran = [n for n in nights if datetime(n.year, n.month, n.day, 1, 30, tzinfo=BERLIN) <= now(h)]
    assert h.objects("backups").list("orders/") == sorted(f"orders/{n.isoformat()}.jsonl" for n in ran[:7])
    latest = h.objects("backups").get(f"orders/{ran[0].isoformat()}.jsonl").decode()
    assert [json.loads(line)["key"] for line in latest.splitlines()] == ["o1"]


def test_reports_come_on_weekdays_only(h):
    order(h, "o1", 12.5, now(h))
    order(h, "o2", 7.5, now(h))
    h.advance(14 * DAY)
    reports = [report for _, report in h.table("reports").scan()]
    assert len(reports) == 10  # two weeks of Monday to Friday
    assert all(datetime.fromisoformat(r["day"]).weekday() < 5 for r in reports)
    assert all(r == {"day": r["day"], "orders": 2, "revenue": 20.0} for r in reports)
    assert len(h.objects("reports").list()) == 10


def test_log_clean_up_deletes_lines_past_retention(h):
    start = now(h)
    order(h, "old", 1.0, start - timedelta(days=40))
    order(h, "recent", 1.0, start - timedelta(days=2))
    h.advance(3600)
    assert [key.split("/")[1] for key, _ in h.table("app-logs").scan()] == ["recent"]
    h.advance(29 * DAY)  # "recent" is now past 30 days too
    assert list(h.table("app-logs").scan()) == []


def test_a_failing_job_is_retried_then_dead_lettered(h):
    h.table("orders").put("broken", {"id": "broken"})  # no total: the report fails
    h.advance(7 * DAY)
    failures = h.dead_letters("async.daily_report")
    assert len(failures) == 5  # each weekday's report, after two retries
    event = json.loads(failures[0].body)
    assert event["detail-type"] == "Scheduled Event" and event["source"] == "aws.events"
    assert failures[0].attributes["ErrorCode"]
