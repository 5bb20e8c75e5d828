"""Alarms end to end on real nodes: an error burst through HTTP fires an alarm whose target
function gets CloudWatch's state-change event, and it goes back to OK; a DLQ-depth alarm
sends its events to a queue; on Redis with two nodes one node evaluates, and a change is
delivered once.

Periods are CloudWatch's shortest (10 s, a high-resolution alarm) and each is evaluated 2 s
after it ends, so going to ALARM and back takes a test 15 to 25 seconds: the time the alarm
itself needs.
"""

from __future__ import annotations

import json

from aws_lambda_powertools.utilities.data_classes.cloud_watch_alarm_event import CloudWatchAlarmData

from squall.backends import open_backend
from tests.support import NodeProcess, platform_tracebacks, squall, wait_until, write_app

APP = """
    import json
    from squall import App

    app = App("alarmed")

    @app.http("GET", "/charge")
    def charge(event, ctx):
        if (event.get("queryStringParameters") or {}).get("fail"):
            raise RuntimeError("card declined")
        return {"charged": True}

    @app.function()
    def notify(event, ctx):
        ctx.table("alarm-events").put(event["id"], event)

    @app.on_queue("jobs", batch_size=1, max_receive_count=1, visibility_timeout=0)
    def broken(event, ctx):
        raise RuntimeError("cannot do jobs")

    @app.on_queue("alerts", batch_size=10)
    def on_alert(event, ctx):
        for record in event["Records"]:
            alert = json.loads(record["body"])
            ctx.table("alert-messages").put(alert["id"], alert)

    app.alarm("charge-errors", metric="Errors", function="charge", threshold=3, period=10,
              treat_missing_data=TREAT, target="function:notify", description="charges failing")
    app.alarm("jobs-dlq", metric="ApproximateNumberOfMessagesVisible", queue="jobs-dlq", threshold=2, period=10,
              target="queue:alerts")
"""


def events(url: str, table: str) -> list[dict]:
    store = open_backend(url)
    try:
        found = [item.value for item in store.table_scan(table, limit=1000)]
    finally:
        store.close()
    return sorted(found, key=lambda e: e["detail"]["state"]["timestamp"])


def transitions(found: list[dict]) -> list[tuple[str, str]]:
    return [(e["detail"]["previousState"]["value"], e["detail"]["state"]["value"]) for e in found]


def burst(node: NodeProcess, failures: int) -> None:
    with node.client() as client:
        for _ in range(failures):
            assert client.get("/charge", params={"fail": "1"}).status_code == 500
        assert client.get("/charge").status_code == 200


def test_an_error_burst_fires_the_alarm_its_function_gets_the_event_and_it_returns_to_ok(tmp_path):
    app = write_app(tmp_path, APP.replace("TREAT", '"notBreaching"'))
    url = f"sqlite:///{tmp_path}/state.db"
    with NodeProcess(app, backend=url) as node:
        # a new alarm starts in INSUFFICIENT_DATA; its first evaluation finds no errors
        wait_until(lambda: transitions(events(url, "alarm-events")) == [("INSUFFICIENT_DATA", "OK")], timeout=15,
                   message="the first evaluation")
        burst(node, 5)
        squall("send", "jobs", "job 1", "--backend", url)
        squall("send", "jobs", "job 2", "--backend", url)
        wait_until(lambda: len(events(url, "alarm-events")) >= 2, timeout=15, message="the alarm to fire")
        found = events(url, "alarm-events")
        assert transitions(found)[:2] == [("INSUFFICIENT_DATA", "OK"), ("OK", "ALARM")]
        alarm = found[1]
        assert alarm["detail-type"] == "CloudWatch Alarm State Change" and alarm["source"] == "aws.cloudwatch"
        assert alarm["resources"] == ["arn:aws:cloudwatch:us-east-1:000000000000:alarm:charge-errors"]
        detail = CloudWatchAlarmData(alarm["detail"])
        assert detail.alarm_name == "charge-errors" and detail.configuration.description == "charges failing"
        assert detail.state.reason.startswith("Threshold Crossed: 1 out of the last 1 datapoint [5.0 (")
        assert detail.state.reason.endswith("was greater than or equal to the threshold (3.0) (minimum 1 datapoint "
                                            "for OK -> ALARM transition).")
        assert detail.state.reason_data_decoded["recentDatapoints"] == [5.0]
        assert detail.previous_state.value == "OK"
        assert detail.configuration.metrics[0].metric_stat.metric == {
            "dimensions": {"FunctionName": "charge"}, "name": "Errors", "namespace": "AWS/Lambda"}
        listing = squall("alarms", "--json", "--backend", url)
        assert listing.returncode == 0, listing.stderr
        states = {a["name"]: a for a in json.loads(listing.stdout)}
        assert states["charge-errors"]["state"] == "ALARM" and "5.0" in states["charge-errors"]["reason"]

        # calls without errors in the next period: back to OK (without calls, CloudWatch's rule keeps
        # evaluating the burst's datapoint while it is in the evaluation range, N + 2 periods)
        def cleared() -> bool:
            with node.client() as client:
                assert client.get("/charge").status_code == 200
            return len(events(url, "alarm-events")) >= 3

        wait_until(cleared, timeout=15, interval=0.5, message="the alarm to clear")
        found = events(url, "alarm-events")
        assert transitions(found) == [("INSUFFICIENT_DATA", "OK"), ("OK", "ALARM"), ("ALARM", "OK")]
        assert "was not greater than or equal to the threshold" in found[2]["detail"]["state"]["reason"]

        # the failed jobs are in the DLQ: that alarm sent its events to the alerts queue
        wait_until(lambda: "ALARM" in [e["detail"]["state"]["value"] for e in events(url, "alert-messages")],
                   timeout=15, message="the DLQ alarm")
        dlq = [e for e in events(url, "alert-messages") if e["detail"]["state"]["value"] == "ALARM"][0]
        assert dlq["detail"]["configuration"]["metrics"][0]["metricStat"] == {
            "metric": {"dimensions": {"QueueName": "jobs-dlq"}, "name": "ApproximateNumberOfMessagesVisible",
                       "namespace": "AWS/SQS"}, "period": 10, "stat": "Maximum"}
        table = squall("alarms", "--backend", url)
        assert "jobs-dlq" in table.stdout and "ApproximateNumberOfMessagesVisible of jobs-dlq >= 2" in table.stdout
    log = node.log()
    assert "alarm charge-errors: OK -> ALARM: Threshold Crossed" in log
    assert "alarm charge-errors: ALARM -> OK" in log
    assert platform_tracebacks(log) == 0


def test_two_nodes_on_redis_evaluate_once_and_deliver_a_change_once(tmp_path, redis_url):
    # ignore: a period without calls keeps the state, so ALARM is the one change to come
    app = write_app(tmp_path, APP.replace("TREAT", '"ignore"'))
    extra = ["--objects", str(tmp_path / "objects")]
    with NodeProcess(app, backend=redis_url, extra=[*extra, "--node-id", "a"]) as a, \
            NodeProcess(app, backend=redis_url, extra=[*extra, "--node-id", "b"]) as b:
        burst(a, 2)
        burst(b, 2)  # 4 errors, 2 on each node: only the cluster-wide sum reaches the threshold
        wait_until(lambda: events(redis_url, "alarm-events"), timeout=15, message="the alarm to fire")
        store = open_backend(redis_url)
        try:
            fired = store.table_get("squall.alarms", "charge-errors")
            assert fired is not None
            fired_at = fired.value["evaluated"]
            # one more evaluation by whichever node leads, with nothing new to deliver
            wait_until(lambda: store.table_get("squall.alarms", "charge-errors").value["evaluated"] > fired_at,
                       timeout=15, message="the next evaluation")
        finally:
            store.close()
        found = events(redis_url, "alarm-events")
        assert transitions(found) == [("INSUFFICIENT_DATA", "ALARM")]
        assert found[0]["detail"]["state"]["reasonData"] and "[4.0 (" in found[0]["detail"]["state"]["reason"]
    logs = [a.log(), b.log()]
    assert sum(log.count("alarm charge-errors: INSUFFICIENT_DATA -> ALARM") for log in logs) == 1
