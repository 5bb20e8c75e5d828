"""Queue semantics as SQS with a Lambda event source mapping documents them, end to end.

One real node (`squall run`) serves an app with a queue per scenario; handlers record what
they received into tables, which the tests read back from the same SQLite file. Messages
are sent through the node (a handler calling `ctx.queue(...).send`), the CLI, or the
backend directly; short visibility timeouts keep retries quick.
"""

from __future__ import annotations

import hashlib
import json
import time

import pytest

from squall.observability.metering import read_records
from squall.services import Queue, Table
from tests.support import NodeProcess, squall, wait_until, write_app

APP = """
    import json
    import time

    from squall import App
    from squall.errors import SquallError

    app = App("queues")


    def record_receives(ctx, table, event):
        \"\"\"One row per (body, receive count): when it arrived, in which batch, the record.\"\"\"
        for record in event["Records"]:
            count = record["attributes"]["ApproximateReceiveCount"]
            ctx.table(table).put(f"{record['body']}#{count}", {
                "at": time.time(), "batch": ctx.aws_request_id, "record": record})


    @app.http("POST", "/send/{queue}")
    def send(event, ctx):
        \"\"\"Send {"body" or "size", "delay_seconds", "attributes"} to a queue from a handler.\"\"\"
        request = json.loads(event["body"])
        body = request["body"] if "body" in request else "x" * request["size"]
        try:
            message_id = ctx.queue(event["pathParameters"]["queue"]).send(
                body, delay_seconds=request.get("delay_seconds", 0), attributes=request.get("attributes"))
        except SquallError as exc:
            return {"statusCode": 400, "body": json.dumps({"error": type(exc).__name__, "message": str(exc)})}
        return {"messageId": message_id}


    @app.on_queue("shape", visibility_timeout=1)
    def shape(event, ctx):
        for record in event["Records"]:
            ctx.table("shape").put(record["body"], record)


    @app.on_queue("batched", batch_size=3, visibility_timeout=1)
    def batched(event, ctx):
        ctx.table("batched").put(ctx.aws_request_id, [record["body"] for record in event["Records"]])


    @app.on_queue("flaky", max_receive_count=3, visibility_timeout=0.5)
    def flaky(event, ctx):
        \"\"\"Fails until the 'flaky-fixed' flag is set, then records what it processed.\"\"\"
        record_receives(ctx, "flaky", event)
        if not ctx.table("flags").get("flaky-fixed"):
            raise RuntimeError("flaky is broken")
        for record in event["Records"]:
            ctx.table("flaky-done").put(record["body"], record["messageAttributes"])


    @app.on_queue("backoff", max_receive_count=4, visibility_timeout=0.5, dlq="backoff-graveyard")
    def backoff(event, ctx):
        record_receives(ctx, "backoff", event)
        raise RuntimeError("always fails")


    @app.on_queue("partial", visibility_timeout=0.5)
    def partial(event, ctx):
        \"\"\"Reports bodies starting with 'fail' as failed on their first receive only.\"\"\"
        record_receives(ctx, "partial", event)
        return {"batchItemFailures": [
            {"itemIdentifier": record["messageId"]} for record in event["Records"]
            if record["body"].startswith("fail") and record["attributes"]["ApproximateReceiveCount"] == "1"]}


    @app.on_queue("bad-partial", visibility_timeout=0.5)
    def bad_partial(event, ctx):
        \"\"\"Names a message that is not in the batch on the first receive.\"\"\"
        record_receives(ctx, "bad-partial", event)
        if any(r["attributes"]["ApproximateReceiveCount"] == "1" for r in event["Records"]):
            return {"batchItemFailures": [{"itemIdentifier": "not-in-this-batch"}]}
        return {"batchItemFailures": []}


    @app.on_queue("delayed", visibility_timeout=1)
    def delayed(event, ctx):
        record_receives(ctx, "delayed", event)


    @app.on_queue("slow", visibility_timeout=1, timeout=0.5)
    def slow(event, ctx):
        \"\"\"Outlives its 0.5 s timeout on the first receive.\"\"\"
        record_receives(ctx, "slow", event)
        if event["Records"][0]["attributes"]["ApproximateReceiveCount"] == "1":
            time.sleep(3)


    @app.on_queue("sink", visibility_timeout=1)
    def sink(event, ctx):
        for record in event["Records"]:
            ctx.table("sink").put(record["messageId"], len(record["body"]))
"""


@pytest.fixture(scope="module")
def directory(tmp_path_factory):
    return tmp_path_factory.mktemp("queues")


@pytest.fixture(scope="module")
def url(directory) -> str:
    return f"sqlite:///{directory}/state.db"


@pytest.fixture(scope="module")
def node(directory, url):
    with NodeProcess(write_app(directory, APP), backend=url, extra=["--keep-alive", "30"]) as running:
        yield running


def send(node: NodeProcess, queue: str, **request) -> tuple[int, dict]:
    """Have the node's `send` handler call ctx.queue(queue).send(...)."""
    with node.client() as client:
        response = client.post(f"/send/{queue}", json=request)
    return response.status_code, response.json()


def rows(state, table: str) -> dict:
    return dict(Table(state, table).scan())


def receive_counts(state, table: str, body: str) -> list[int]:
    return sorted(int(key.rpartition("#")[2]) for key in rows(state, table) if key.rpartition("#")[0] == body)


def test_handler_receives_the_sqs_batch_event_shape(node, state):
    before = time.time()
    status, sent = send(node, "shape", body="hello", attributes={"color": "blue", "count": 3})
    assert status == 200, sent
    record = wait_until(lambda: Table(state, "shape").get("hello"), timeout=10, message="delivery")

    assert record["messageId"] == sent["messageId"]
    assert isinstance(record["receiptHandle"], str) and record["receiptHandle"]
    assert record["body"] == "hello"
    assert record["md5OfBody"] == hashlib.md5(b"hello").hexdigest()
    assert record["eventSource"] == "aws:sqs"
    assert record["eventSourceARN"] == "arn:aws:sqs:us-east-1:000000000000:shape"
    attributes = record["attributes"]
    assert attributes["ApproximateReceiveCount"] == "1"
    assert before * 1000 - 1 <= int(attributes["SentTimestamp"]) <= time.time() * 1000
    assert int(attributes["ApproximateFirstReceiveTimestamp"]) >= int(attributes["SentTimestamp"])
    assert record["messageAttributes"]["color"]["stringValue"] == "blue"
    assert record["messageAttributes"]["color"]["dataType"] == "String"
    assert record["messageAttributes"]["count"]["stringValue"] == "3"
    assert record["messageAttributes"]["count"]["dataType"] == "Number"


def test_batches_never_exceed_batch_size(node, state):
    bodies = [f"m{i}" for i in range(10)]
    Queue(state, "batched").send_batch(bodies)  # one commit: the first claim sees all ten
    batches = wait_until(lambda: (b := rows(state, "batched")) and sum(map(len, b.values())) >= 10 and b,
                         timeout=10, message="all ten messages")
    sizes = sorted(len(batch) for batch in batches.values())
    assert max(sizes) == 3
    assert sorted(body for batch in batches.values() for body in batch) == sorted(bodies)


def test_failing_message_is_retried_dead_lettered_and_redriven(node, state, url):
    sent = squall("send", "flaky", "order-1", "--attribute", "source=cli", "--backend", url)
    assert sent.returncode == 0, sent.stderr
    message_id = sent.stdout.strip()

    wait_until(lambda: state.queue_stats("flaky-dlq").total == 1, timeout=15, message="dead letter")
    assert receive_counts(state, "flaky", "order-1") == [1, 2, 3]  # max_receive_count receives, then the DLQ
    assert state.queue_stats("flaky").total == 0
    [dead] = state.peek("flaky-dlq")
    assert (dead.id, dead.body) == (message_id, "order-1")
    assert dead.attributes["source"]["stringValue"] == "cli"

    listing = squall("queues", "--backend", url)
    assert listing.returncode == 0, listing.stderr
    assert ["flaky", "0", "0", "flaky-dlq", "1", "0"] in [line.split() for line in listing.stdout.splitlines()]

    dlq = squall("dlq", "list", "flaky", "--backend", url)
    assert dlq.returncode == 0, dlq.stderr
    [entry] = [json.loads(line) for line in dlq.stdout.splitlines()]
    assert (entry["messageId"], entry["body"]) == (message_id, "order-1")
    assert entry["messageAttributes"]["source"]["stringValue"] == "cli"

    Table(state, "flags").put("flaky-fixed", True)
    redrive = squall("dlq", "redrive", "flaky", "--backend", url)
    assert redrive.returncode == 0, redrive.stderr
    assert "redrove 1 message(s) to flaky" in redrive.stdout
    attributes = wait_until(lambda: Table(state, "flaky-done").get("order-1"), timeout=10, message="redriven")
    assert attributes["source"]["stringValue"] == "cli"
    wait_until(lambda: state.queue_stats("flaky").total == 0, timeout=5, message="ack")
    assert state.queue_stats("flaky-dlq").total == 0


def test_retries_back_off_exponentially_and_use_the_named_dlq(node, state):
    Queue(state, "backoff").send("b-1")
    wait_until(lambda: state.queue_stats("backoff-graveyard").total == 1, timeout=20, message="dead letter")
    assert state.queue_config("backoff-dlq") is None

    received = rows(state, "backoff")
    times = [received[f"b-1#{n}"]["at"] for n in (1, 2, 3, 4)]
    gaps = [later - earlier for earlier, later in zip(times, times[1:], strict=False)]
    base = 0.5  # the visibility timeout, doubled per receive, plus up to a quarter of jitter
    for attempt, gap in enumerate(gaps):
        floor = base * 2 ** attempt
        assert floor <= gap <= floor * 1.25 + 0.5, gaps
    assert gaps[0] < gaps[1] < gaps[2]


def test_partial_batch_failure_retries_only_the_reported_messages(node, state):
    Queue(state, "partial").send_batch(["ok-1", "fail-1", "ok-2", "fail-2"])
    wait_until(lambda: {"fail-1#2", "fail-2#2"} <= set(rows(state, "partial"))
               and state.queue_stats("partial").total == 0, timeout=10, message="retries of the failed ones")

    received = rows(state, "partial")
    assert sorted(received) == ["fail-1#1", "fail-1#2", "fail-2#1", "fail-2#2", "ok-1#1", "ok-2#1"]
    assert len({received[key]["batch"] for key in ("ok-1#1", "ok-2#1", "fail-1#1", "fail-2#1")}) == 1


def test_unknown_item_identifier_fails_the_whole_batch(node, state):
    Queue(state, "bad-partial").send_batch(["a", "b"])
    wait_until(lambda: {"a#2", "b#2"} <= set(rows(state, "bad-partial"))
               and state.queue_stats("bad-partial").total == 0, timeout=10, message="both retried")
    assert sorted(rows(state, "bad-partial")) == ["a#1", "a#2", "b#1", "b#2"]


def test_delayed_messages_are_not_delivered_before_their_delay(node, state, url):
    status, sent = send(node, "delayed", body="from-handler", delay_seconds=1)
    assert status == 200, sent
    cli = squall("send", "delayed", "from-cli", "--delay", "1", "--backend", url)
    assert cli.returncode == 0, cli.stderr
    assert state.queue_stats("delayed").delayed >= 1

    received = wait_until(lambda: (r := rows(state, "delayed")) and len(r) == 2 and r, timeout=10,
                          message="both delayed messages")
    assert sorted(received) == ["from-cli#1", "from-handler#1"]
    for row in received.values():
        sent_at = int(row["record"]["attributes"]["SentTimestamp"]) / 1000
        assert row["at"] - sent_at >= 1.0


def test_handler_timeout_is_a_failure_and_the_message_is_retried(node, state):
    Queue(state, "slow").send("s-1")
    wait_until(lambda: receive_counts(state, "slow", "s-1") == [1, 2] and state.queue_stats("slow").total == 0,
               timeout=10, message="the retry after the timeout")

    def outcomes():
        records = [r for r in read_records(state) if r["function"] == "slow"]
        return len(records) == 2 and records

    first, second = wait_until(outcomes, timeout=5, message="metering records")
    assert (first["outcome"], first["errorType"]) == ("timeout", "Sandbox.Timedout")
    assert first["durationMs"] < 1500  # killed at its 0.5 s timeout, not after its 3 s sleep
    assert second["outcome"] == "success"


def test_message_over_256_kib_is_refused_and_nothing_is_enqueued(node, state):
    status, accepted = send(node, "sink", size=256 * 1024)
    assert status == 200, accepted
    status, refused = send(node, "sink", size=256 * 1024 + 1)
    assert status == 400
    assert refused["error"] == "PayloadTooLarge"
    assert "262145" in refused["message"] and "256 KiB" in refused["message"]

    wait_until(lambda: state.queue_stats("sink").total == 0, timeout=10, message="the accepted message")
    assert rows(state, "sink") == {accepted["messageId"]: 256 * 1024}


def test_sending_to_an_undeclared_queue_is_queue_not_found(node, url):
    status, refused = send(node, "nowhere", body="hi")
    assert status == 400
    assert refused["error"] == "QueueNotFound"
    assert "nowhere" in refused["message"]

    cli = squall("send", "nowhere", "hi", "--backend", url)
    assert cli.returncode == 1
    assert "unknown queue 'nowhere'" in cli.stderr
    assert "Traceback" not in cli.stderr and len(cli.stderr.strip().splitlines()) == 1
