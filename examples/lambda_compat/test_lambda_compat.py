"""The Lambda compatibility example on a real `squall run` node: each part over HTTP (or
`squall invoke`, as the AWS sample is run), with what it writes to the function log."""

import json
import re
import shutil
from pathlib import Path

import pytest

from squall.backends import open_backend
from squall.services import Queue
from tests.support import NodeProcess, squall, wait_until

HERE = Path(__file__).parent
HANDLER_MODULES = ["resolver_api.py", "payments.py", "checkout.py", "fastapi_api.py", "receipt.py"]
ISO = r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z"


@pytest.fixture(scope="module")
def node(tmp_path_factory):
    directory = tmp_path_factory.mktemp("lambda_compat")
    for name in ["app.py", *HANDLER_MODULES]:
        shutil.copy(HERE / name, directory / name)
    with NodeProcess(directory / "app.py") as running:
        running.directory = directory
        yield running


def json_lines(log: str) -> list[dict]:
    return [json.loads(line) for line in log.splitlines() if line.startswith("{")]


def invocation_log(log: str, request_id: str) -> list[str]:
    """The lines between an invocation's START and its REPORT (inclusive)."""
    lines = log.splitlines()
    start = lines.index(f"START RequestId: {request_id} Version: $LATEST")
    end = next(i for i, line in enumerate(lines) if line.startswith(f"REPORT RequestId: {request_id}\t"))
    return lines[start:end + 1]


def test_handler_modules_are_plain_lambda_code():
    for name in HANDLER_MODULES:
        assert "squall" not in (HERE / name).read_text(), name


# ---- (a) Powertools APIGatewayHttpResolver ---------------------------------------------

def test_powertools_resolver_routes_and_statuses(node):
    with node.client() as client:
        assert client.get("/api/users").json() == {"users": ["ada", "alan"]}
        ada = client.get("/api/users/ada")
        assert (ada.status_code, ada.json()) == (200, {"id": "ada", "name": "Ada Lovelace"})
        greeting = client.get("/api/users/alan/greeting", params={"lang": "fr"})
        assert greeting.json() == {"greeting": "Bonjour, Alan Turing!"}
        echo = client.post("/api/echo", json={"n": 1})
        assert (echo.status_code, echo.json()) == (200, {"echo": {"n": 1}, "source_ip": "127.0.0.1"})

        missing = client.get("/api/users/zed")  # the handler's NotFoundError
        assert (missing.status_code, missing.json()) == (404, {"statusCode": 404, "message": "user 'zed' not found"})
        unrouted = client.get("/api/nowhere")  # no resolver route: the resolver's own 404
        assert (unrouted.status_code, unrouted.json()) == (404, {"statusCode": 404, "message": "Not found"})
        wrong = client.post("/api/echo", json=[1, 2])
        assert (wrong.status_code, wrong.json()["message"]) == (400, "expected a JSON object")

    [found] = [line for line in json_lines(node.log()) if line.get("message") == "user found"]
    assert found["correlation_id"] == ada.headers["apigw-requestid"]  # requestContext.requestId
    assert found["function_name"] == "resolver_api" and found["service"] == "lambda-compat"
    assert found["user_id"] == "ada"
    assert found["level"] == "INFO"
    assert invocation_log(node.log(), found["function_request_id"])  # the Lambda request id of its invocation
    # Tracer is on, and quiet: the invocation's trace header is unsampled, so X-Ray sends and says nothing
    assert found["xray_trace_id"].startswith("1-")
    assert not [line for line in node.log().splitlines() if "xray" in line.lower() and not line.startswith("{")]


# ---- (b) Powertools BatchProcessor with partial batch failures --------------------------

def queue_row(node, queue: str) -> list[str]:
    result = squall("queues", cwd=node.directory)
    assert result.returncode == 0, result.stderr
    return next(line.split() for line in result.stdout.splitlines() if line.startswith(queue + " "))


def test_batch_processor_retries_only_failed_records_then_dead_letters_them(node):
    store = open_backend(f"sqlite:///{node.directory / '.squall' / 'state.db'}")
    try:  # one commit: the consumer receives the three in one batch
        ids = Queue(store, "payments").send_batch([json.dumps({"id": "pay-1", "amount": 10}),
                                                   json.dumps({"id": "pay-bad", "amount": -5}),
                                                   json.dumps({"id": "pay-2", "amount": 7})])
    finally:
        store.close()
    # QUEUE DEPTH IN_FLIGHT DLQ DLQ_DEPTH FILTERED: the good ones deleted, the bad one dead-lettered
    wait_until(lambda: queue_row(node, "payments") == ["payments", "0", "0", "payments-dlq", "1", "0"], timeout=30,
               message="the failed payment to reach the DLQ")
    dead = squall("dlq", "list", "payments", cwd=node.directory)
    assert [json.loads(line)["messageId"] for line in dead.stdout.splitlines()] == [ids[1]]

    lines = [line for line in json_lines(node.log()) if line.get("function_name") == "payments"]
    received = [(line["payment_id"], line["receive_count"]) for line in lines if line["message"] == "payment received"]
    assert sorted(received) == [("pay-1", "1"), ("pay-2", "1"), ("pay-bad", "1"), ("pay-bad", "2")]
    first_batch = {line["function_request_id"] for line in lines
                   if line["message"] == "payment received" and line["receive_count"] == "1"}
    assert len(first_batch) == 1  # one invocation had all three; only the failed record came back
    processed = [line["message_id"] for line in lines if line["message"] == "payment processed"]
    assert sorted(processed) == sorted([ids[0], ids[2]])  # each good record once: never redelivered


# ---- (c) Powertools Logger and Metrics ---------------------------------------------------

def test_logger_and_metrics_write_json_and_emf_lines_with_the_cold_start(node):
    order = {"id": "o1", "channel": "mobile", "items": [{"price": 4.5, "quantity": 2}]}
    with node.client() as client:
        first = client.post("/checkout", json=order)
        second = client.post("/checkout", json={**order, "id": "o2"})
    assert (first.status_code, first.json()) == (201, {"id": "o1", "total": 9.0})
    assert second.status_code == 201

    log = node.log()
    placed = {line["order_id"]: line for line in json_lines(log) if line.get("message") == "order placed"}
    for order_id, cold in [("o1", True), ("o2", False)]:
        logged = placed[order_id]
        assert (logged["cold_start"], logged["function_name"], logged["total"]) == (cold, "checkout", 9.0)
        lines = invocation_log(log, logged["function_request_id"])
        emf = [json.loads(line) for line in lines if line.startswith('{"_aws"')]
        names = {m["Name"] for blob in emf for d in blob["_aws"]["CloudWatchMetrics"] for m in d["Metrics"]}
        assert all(d["Namespace"] == "LambdaCompat" for blob in emf for d in blob["_aws"]["CloudWatchMetrics"])
        assert names == ({"ColdStart", "OrdersPlaced", "OrderTotal"} if cold else {"OrdersPlaced", "OrderTotal"})
        business = next(blob for blob in emf if "OrdersPlaced" in blob)
        assert (business["OrdersPlaced"], business["OrderTotal"], business["channel"]) == ([1.0], [9.0], "mobile")
        # a cold start shows in Squall's REPORT line too
        assert ("\tInit Duration: " in lines[-1]) is cold
    cold_start = next(json.loads(line) for line in invocation_log(log, placed["o1"]["function_request_id"])
                      if '"ColdStart"' in line)
    assert cold_start["function_name"] == "checkout" and cold_start["ColdStart"] == [1.0]
    assert cold_start["_aws"]["CloudWatchMetrics"][0]["Dimensions"] == [["function_name", "service"]]


# ---- (d) FastAPI behind Mangum -----------------------------------------------------------

def test_fastapi_behind_mangum_under_a_prefix(node):
    with node.client() as client:
        tea = client.get("/fastapi/items/1")
        assert (tea.status_code, tea.json()) == (200, {"id": 1, "name": "Tea", "price": 4.5})
        created = client.post("/fastapi/items", json={"name": "Mug", "price": 12})
        assert (created.status_code, created.json()) == (201, {"name": "Mug", "price": 12.0})
        invalid = client.post("/fastapi/items", json={"name": "Mug"})
        assert invalid.status_code == 422 and invalid.json()["detail"][0]["loc"] == ["body", "price"]
        assert client.get("/fastapi/items/x").status_code == 422
        missing = client.get("/fastapi/items/9")
        assert (missing.status_code, missing.json()) == (404, {"detail": "item 9 not found"})
        unrouted = client.get("/fastapi/nowhere")  # FastAPI's own 404: the prefix route reached it
        assert (unrouted.status_code, unrouted.json()) == (404, {"detail": "Not Found"})
        docs = client.get("/fastapi/openapi.json")
        assert docs.json()["info"]["title"] == "lambda-compat"


# ---- (e) an AWS sample handler -----------------------------------------------------------

def test_aws_sample_handler_logs_and_reads_its_environment(node):
    order = {"Order_id": "12345", "Amount": 199.99, "Item": "Wireless Headphones"}
    result = squall("invoke", "app.py", "receipt", "--data", json.dumps(order), cwd=node.directory)
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout) == {
        "statusCode": 200, "message": "Receipt processed successfully",
        "location": "s3://receipts/receipts/12345.txt",  # RECEIPT_BUCKET, the function's environment
        "receipt": "OrderID: 12345\nAmount: $199.99\nItem: Wireless Headphones", "function": "receipt"}
    request_id = re.search(r"REPORT RequestId: (\S+)\t", result.stderr).group(1)
    assert re.search(rf"^\[INFO\]\t{ISO}\t{request_id}\tSuccessfully processed order 12345 for receipt "
                     r"s3://receipts/receipts/12345\.txt$", result.stderr, re.MULTILINE), result.stderr

    failed = squall("invoke", "app.py", "receipt", "--data", json.dumps({"Order_id": "1"}), cwd=node.directory)
    assert failed.returncode == 1
    error = json.loads(failed.stdout)
    assert (error["errorType"], error["errorMessage"]) == ("KeyError", "'Amount'")
    output = failed.stdout + failed.stderr
    assert re.search(rf"^\[ERROR\]\t{ISO}\t{error['requestId']}\tError processing order: 'Amount'$", output,
                     re.MULTILINE), output
    assert "[ERROR] KeyError: 'Amount'\nTraceback (most recent call last):\n" in output
