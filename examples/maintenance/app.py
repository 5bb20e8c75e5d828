"""Scheduled maintenance jobs: a nightly backup, weekday reports and a log clean-up.

Each job is a schedule invoking a function with an EventBridge `Scheduled Event`. The
jobs read the time from the event (`time`, the scheduled time), never from the clock:
a firing delivered late, or again after a failure, does the same work for the same
night, and the test harness's fake clock drives them.
"""

import json
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

from squall import App

app = App("maintenance")

ZONE = "Europe/Berlin"
#: backups kept in the bucket; older ones are deleted by the backup job
KEEP_BACKUPS = 7
#: log lines kept, in days
LOG_RETENTION_DAYS = 30


def scheduled_time(event):
    """The firing's scheduled time, from the Scheduled Event (UTC, as `2026-12-01T00:30:00Z`)."""
    return datetime.fromisoformat(event["time"].replace("Z", "+00:00"))


@app.http("POST", "/orders")
def place_order(event, ctx):
    order = json.loads(event["body"])
    ctx.table("orders").put(order["id"], order)
    ctx.table("app-logs").put(f"{order['at']}/{order['id']}", {"message": f"order {order['id']} placed"})
    return {"statusCode": 201, "body": event["body"]}


# 01:30 rather than 02:00: in Berlin 02:00 does not exist on the last Sunday of March
# (the clocks skip to 03:00), and a schedule skips a time the clock skips.
@app.schedule("cron(30 1 * * ? *)", timezone=ZONE, payload={"table": "orders", "bucket": "backups"})
def nightly_backup(event, ctx):
    """Copy a table to one JSON Lines object per night; keep the last KEEP_BACKUPS."""
    table, bucket = event["detail"]["table"], ctx.objects(event["detail"]["bucket"])
    night = scheduled_time(event).astimezone(ZoneInfo(ZONE)).date().isoformat()  # the local night
    lines = [json.dumps({"key": key, "value": value}) for key, value in ctx.table(table).scan()]
    bucket.put(f"{table}/{night}.jsonl", "\n".join(lines), content_type="application/x-ndjson")
    for old in sorted(bucket.list(f"{table}/"))[:-KEEP_BACKUPS]:
        bucket.delete(old)
    ctx.log.info("backup written", table=table, night=night, items=len(lines))
    return {"items": len(lines)}


@app.schedule("cron(0 6 ? * MON-FRI *)", timezone=ZONE)
def daily_report(event, ctx):
    """Orders and revenue so far, as a report object and a row of the `reports` table."""
    day = scheduled_time(event).date().isoformat()
    orders = [order for _, order in ctx.table("orders").scan()]
    report = {"day": day, "orders": len(orders), "revenue": round(sum(o["total"] for o in orders), 2)}
    ctx.objects("reports").put(f"{day}.json", json.dumps(report), content_type="application/json")
    ctx.table("reports").put(day, report)
    return report


@app.schedule("rate(1 hour)", catch_up=6 * 3600)
def clean_logs(event, ctx):
    """Delete log lines older than LOG_RETENTION_DAYS (their keys start with their ISO time)."""
    cutoff = (scheduled_time(event) - timedelta(days=LOG_RETENTION_DAYS)).isoformat()
    logs = ctx.table("app-logs")
    old = [key for key, _ in logs.scan() if key < cutoff]
    for key in old:
        logs.delete(key)
    return {"deleted": len(old)}
