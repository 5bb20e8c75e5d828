"""The HTTP gateway end to end: a real `squall run` node on SQLite, driven over HTTP.

One node serves the whole module. Its app echoes events back so the API Gateway HTTP API
(payload format 2.0) shape can be checked field by field, returns every kind of result the
gateway maps to a response, and fails in every way the gateway must turn into a JSON error.
"""

from __future__ import annotations

import base64
import json
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest

from tests.support import NodeProcess, squall, wait_until, write_app

APP = """
    import base64
    import json
    import os
    import time

    from squall import App

    app = App("gateway_test")


    @app.http("GET", "/users/{user_id}/orders/{order_id}")
    @app.http("PUT", "/users/{user_id}/orders/{order_id}")
    @app.http("POST", "/echo")
    @app.http("GET", "/files/{proxy+}")
    @app.http("ANY", "/any")
    def echo(event, ctx):
        return event


    @app.http("POST", "/length")
    def length(event, ctx):
        return {"length": len(event.get("body") or "")}


    PNG = bytes(range(256))


    @app.http("GET", "/respond/{kind}")
    def respond(event, ctx):
        kind = event["pathParameters"]["kind"]
        if kind == "proxy":
            return {"statusCode": 201, "headers": {"Content-Type": "text/html", "X-Thing": "yes"},
                    "body": "<p>made</p>", "cookies": ["session=abc; Path=/; HttpOnly", "theme=dark"]}
        if kind == "binary":
            return {"statusCode": 200, "headers": {"content-type": "image/png"},
                    "body": base64.b64encode(PNG).decode(), "isBase64Encoded": True}
        if kind == "dict":
            return {"name": "widget", "tags": ["a", "b"]}
        if kind == "list":
            return [1, "two", {"three": 3}]
        if kind == "string":
            return "just text"
        if kind == "tuple":
            return {"created": "x1"}, 202
        if kind == "none":
            return None
        if kind == "bad-status":
            return {"statusCode": "teapot", "body": "{}"}
        if kind == "bad-body":
            return {"statusCode": 200, "body": {"not": "a string"}}
        if kind == "bad-header":
            return {"statusCode": 200, "headers": {"x-name": "Łukasz"}, "body": "{}"}
        if kind == "large":  # arrives at the node in many reads
            return {"statusCode": 200, "headers": {"content-type": "text/plain"}, "body": "z" * (3 * 1024 * 1024)}
        raise KeyError(kind)


    @app.http("GET", "/boom")
    def boom(event, ctx):
        raise ValueError("secret internal detail")


    @app.http("GET", "/crash")
    def crash(event, ctx):
        os._exit(3)


    @app.http("GET", "/slow", timeout=1)
    def slow(event, ctx):
        time.sleep(10)
        return "never"


    @app.http("GET", "/capped", reserved_concurrency=1, timeout=10)
    def capped(event, ctx):
        started = time.time()
        time.sleep(float(event["queryStringParameters"]["seconds"]))
        return {"started": started, "ended": time.time()}


    @app.http("POST", "/items")
    def put_item(event, ctx):
        item = json.loads(event["body"])
        ctx.table("items").put(item["id"], item)
        ctx.queue("audit").send(json.dumps(item), attributes={"source": "http"})
        return {"statusCode": 201, "body": json.dumps(item)}


    @app.http("GET", "/items/{id}")
    def get_item(event, ctx):
        item = ctx.table("items").get(event["pathParameters"]["id"])
        return item if item is not None else {"statusCode": 404, "body": '{"message": "not found"}'}


    @app.on_queue("audit", batch_size=5, visibility_timeout=5)
    def audit(event, ctx):
        for record in event["Records"]:
            item = json.loads(record["body"])
            ctx.table("audited").put(item["id"], {
                "messageId": record["messageId"], "eventSource": record["eventSource"],
                "source": record["messageAttributes"]["source"]["stringValue"]})


    @app.http("GET", "/audited/{id}")
    def get_audited(event, ctx):
        row = ctx.table("audited").get(event["pathParameters"]["id"])
        return row if row is not None else {"statusCode": 404, "body": '{"message": "not yet"}'}


    @app.http("GET", "/context", memory_mb=256, timeout=3)
    def context(event, ctx):
        first = ctx.get_remaining_time_in_millis()
        time.sleep(0.2)
        return {"aws_request_id": ctx.aws_request_id, "function_name": ctx.function_name,
                "memory_limit_in_mb": ctx.memory_limit_in_mb,
                "remaining": [first, ctx.get_remaining_time_in_millis()]}


    @app.function()
    def double(event, ctx):
        return {"doubled": event["n"] * 2, "by": ctx.function_name}


    @app.http("GET", "/double/{n}")
    def call_double(event, ctx):
        return ctx.invoke("double", {"n": int(event["pathParameters"]["n"])})


    @app.function()
    def record_row(event, ctx):
        ctx.table("async_rows").put(event["key"], {"written_by": ctx.function_name, "key": event["key"]})


    @app.http("POST", "/async/{key}")
    def start_async(event, ctx):
        return {"id": ctx.invoke_async("record_row", {"key": event["pathParameters"]["key"]})}


    @app.http("GET", "/async_rows/{key}")
    def get_async_row(event, ctx):
        row = ctx.table("async_rows").get(event["pathParameters"]["key"])
        return row if row is not None else {"statusCode": 404, "body": '{"message": "not yet"}'}


    app.http("GET", "/legacy", handler="lambda_mod.handler")
    app.function(name="legacy_fn", handler="lambda_mod.handler")
"""

LAMBDA_MODULE = """
    import json


    def handler(event, context):
        return {
            "statusCode": 200,
            "headers": {"Content-Type": "application/json"},
            "body": json.dumps({"legacy": True, "path": event.get("rawPath"),
                                "function": context.function_name,
                                "request_id": context.aws_request_id}),
        }
"""

MAX_BODY = 6 * 1024 * 1024


@pytest.fixture(scope="module")
def node(tmp_path_factory):
    directory = tmp_path_factory.mktemp("gateway")
    write_app(directory, LAMBDA_MODULE, "lambda_mod.py")
    app_path = write_app(directory, APP)
    with NodeProcess(app_path, backend=f"sqlite:///{directory}/state.db") as running:
        yield running


@pytest.fixture(scope="module")
def client(node):
    with node.client() as c:
        yield c


def assert_json_error(response: httpx.Response, status: int) -> dict:
    """Every gateway error is JSON with a message, and never carries a stack trace."""
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/json")
    body = response.json()
    assert isinstance(body.get("message"), str) and body["message"]
    assert "Traceback" not in response.text and "stackTrace" not in response.text
    return body


# ---- the event a handler receives ------------------------------------------------------


def test_event_has_the_payload_format_2_0_shape(client):
    response = client.get("/users/7/orders/99?a=1&a=2&b=hello%20world&empty=",
                          headers=[("X-Custom-Header", "Value"), ("X-Multi", "one"), ("X-Multi", "two"),
                                   ("User-Agent", "gateway-test/1.0"), ("Cookie", "session=abc; theme=dark")])
    assert response.status_code == 200
    event = response.json()
    assert event["version"] == "2.0"
    assert event["routeKey"] == "GET /users/{user_id}/orders/{order_id}"
    assert event["rawPath"] == "/users/7/orders/99"
    assert event["rawQueryString"] == "a=1&a=2&b=hello%20world&empty="
    assert event["queryStringParameters"] == {"a": "1,2", "b": "hello world", "empty": ""}
    assert event["pathParameters"] == {"user_id": "7", "order_id": "99"}
    assert event["headers"]["x-custom-header"] == "Value"
    assert event["headers"]["x-multi"] == "one,two"
    assert all(name == name.lower() for name in event["headers"])
    assert event["cookies"] == ["session=abc", "theme=dark"]
    assert "cookie" not in event["headers"]
    assert event["isBase64Encoded"] is False
    assert "body" not in event
    context = event["requestContext"]
    assert context["http"] == {"method": "GET", "path": "/users/7/orders/99", "protocol": "HTTP/1.1",
                               "sourceIp": "127.0.0.1", "userAgent": "gateway-test/1.0"}
    assert context["stage"] == "$default"
    assert context["routeKey"] == event["routeKey"]
    assert abs(context["timeEpoch"] / 1000 - time.time()) < 60


def test_request_id_is_unique_and_returned_in_a_header(client):
    first, second = client.get("/users/1/orders/2"), client.get("/users/1/orders/2")
    first_id = first.json()["requestContext"]["requestId"]
    assert first_id == first.headers["apigw-requestid"]
    assert first_id != second.json()["requestContext"]["requestId"]


def test_optional_fields_are_omitted_when_empty(client):
    """Like API Gateway: no query string, no path parameters, no cookies -> no such keys."""
    event = client.get("/any").json()
    assert event["rawQueryString"] == ""
    for key in ("queryStringParameters", "pathParameters", "cookies", "body"):
        assert key not in event


@pytest.mark.parametrize("content_type", ["text/plain; charset=utf-8", "application/json",
                                          "application/x-www-form-urlencoded", "application/vnd.api+json"])
def test_text_bodies_arrive_as_text(client, content_type):
    body = '{"greeting": "héllo"}' if "json" in content_type else "greeting=h%C3%A9llo"
    event = client.post("/echo", content=body.encode(), headers={"Content-Type": content_type}).json()
    assert event["body"] == body
    assert event["isBase64Encoded"] is False
    assert event["requestContext"]["http"]["method"] == "POST"


@pytest.mark.parametrize("content_type", ["application/octet-stream", "image/png", "text/plain"])
def test_binary_bodies_arrive_base64_encoded(client, content_type):
    """Binary content types, and text that is not UTF-8, are base64-encoded."""
    payload = b"\x89PNG\r\n\x1a\n\x00\xff\xfe" + bytes(range(256))
    event = client.post("/echo", content=payload, headers={"Content-Type": content_type}).json()
    assert event["isBase64Encoded"] is True
    assert base64.b64decode(event["body"]) == payload


def test_greedy_proxy_route_captures_the_rest_of_the_path(client):
    event = client.get("/files/images/2024/cat.jpg").json()
    assert event["routeKey"] == "GET /files/{proxy+}"
    assert event["pathParameters"] == {"proxy": "images/2024/cat.jpg"}
    assert event["rawPath"] == "/files/images/2024/cat.jpg"


@pytest.mark.parametrize("method", ["GET", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"])
def test_any_route_accepts_every_method(client, method):
    response = client.request(method, "/any")
    assert response.status_code == 200
    event = response.json()
    assert event["routeKey"] == "ANY /any"
    assert event["requestContext"]["http"]["method"] == method


# ---- what a handler returns ------------------------------------------------------------


def test_proxy_response_sets_status_headers_body_and_cookies(client):
    response = client.get("/respond/proxy")
    assert response.status_code == 201
    assert response.headers["content-type"] == "text/html"
    assert response.headers["x-thing"] == "yes"
    assert response.text == "<p>made</p>"
    assert response.headers.get_list("set-cookie") == ["session=abc; Path=/; HttpOnly", "theme=dark"]


def test_base64_proxy_body_is_decoded_to_bytes(client):
    response = client.get("/respond/binary")
    assert response.status_code == 200
    assert response.headers["content-type"] == "image/png"
    assert response.content == bytes(range(256))


@pytest.mark.parametrize("kind, status, content_type, body", [
    ("dict", 200, "application/json", {"name": "widget", "tags": ["a", "b"]}),
    ("list", 200, "application/json", [1, "two", {"three": 3}]),
    ("tuple", 200, "application/json", [{"created": "x1"}, 202]),  # a JSON array, as Lambda encodes a tuple
])
def test_json_results(client, kind, status, content_type, body):
    response = client.get(f"/respond/{kind}")
    assert response.status_code == status
    assert response.headers["content-type"].startswith(content_type)
    assert response.json() == body


def test_string_result_is_plain_text(client):
    response = client.get("/respond/string")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    assert response.text == "just text"


def test_none_result_is_204_without_body(client):
    response = client.get("/respond/none")
    assert response.status_code == 204
    assert response.content == b""


@pytest.mark.parametrize("kind, problem", [("bad-status", "statusCode"), ("bad-body", "body"),
                                           ("bad-header", "Latin-1")])
def test_malformed_proxy_response_is_502(client, kind, problem):
    body = assert_json_error(client.get(f"/respond/{kind}"), 502)
    assert problem in body["message"]


def test_a_large_response_crosses_from_the_instance_whole(client):
    response = client.get("/respond/large")
    assert response.status_code == 200
    assert response.content == b"z" * (3 * 1024 * 1024)
    assert client.get("/respond/string").text == "just text"  # the instance is still in step


def test_websockets_are_refused(node):
    from websockets.exceptions import InvalidStatus
    from websockets.sync.client import connect

    with pytest.raises(InvalidStatus) as refused:
        connect(f"ws://127.0.0.1:{node.port}/respond/string", open_timeout=10)
    assert refused.value.response.status_code == 403


# ---- errors ---------------------------------------------------------------------------


def test_unknown_route_is_404_json(client):
    body = assert_json_error(client.get("/no/such/route"), 404)
    assert "/no/such/route" in body["message"]


def test_wrong_method_is_405_json(client):
    response = client.delete("/users/1/orders/2")
    body = assert_json_error(response, 405)
    assert "DELETE" in body["message"]
    assert "GET" in response.headers["allow"]
    assert "PUT" in response.headers["allow"]  # every method of the path, not just the first route's
    assert client.put("/users/1/orders/2").json()["routeKey"] == "PUT /users/{user_id}/orders/{order_id}"


def test_body_over_6_mib_is_413(client):
    assert_json_error(client.post("/echo", content=b"x" * (MAX_BODY + 1)), 413)


def test_chunked_body_over_6_mib_is_413(client):
    """Without a Content-Length the gateway counts the bytes as they stream in."""
    def chunks():
        for _ in range(7):
            yield b"y" * (1024 * 1024)

    assert_json_error(client.post("/echo", content=chunks()), 413)


def test_a_body_in_many_small_chunks_arrives_whole(client):
    """Thousands of small chunks (a slow or hostile client) are joined once, in order."""
    pieces = [f"{i:05d}".encode() for i in range(20_000)]

    def chunks():
        yield from pieces

    response = client.post("/echo", content=chunks(), headers={"Content-Type": "text/plain"})
    assert response.status_code == 200
    assert response.json()["body"] == b"".join(pieces).decode()


def test_body_at_the_limit_is_accepted(client, node):
    # (echoed whole, it would be a response over Lambda's 6 MB limit: tests/faults/test_http_responses.py)
    response = client.post("/length", content=b"z" * MAX_BODY, headers={"Content-Type": "text/plain"})
    assert response.status_code == 200, (response.text, node.log()[-4000:])
    assert response.json() == {"length": MAX_BODY}


def test_a_malformed_json_body_reaches_the_function_unchanged(client):
    """HTTP APIs do not read bodies: the function answers a malformed one as it chooses
    (a route's `request_schema` opts in to checking it: tests/fidelity/test_bodies.py)."""
    response = client.post("/echo", content=b'{"id": ', headers={"Content-Type": "application/json"})
    assert response.status_code == 200, response.text
    assert response.json()["body"] == '{"id": '


def test_handler_exception_is_500_without_internals(client):
    response = client.get("/boom")
    assert_json_error(response, 500)
    assert "secret internal detail" not in response.text
    assert "app.py" not in response.text


def test_instance_crash_is_502_and_the_node_keeps_serving(client):
    assert_json_error(client.get("/crash"), 502)
    assert client.get("/users/1/orders/2").status_code == 200
    # the crashed instance was replaced: the route still answers, and crashes again cleanly
    assert_json_error(client.get("/crash"), 502)
    assert client.get("/respond/dict").status_code == 200


def test_timeout_is_504(client):
    started = time.monotonic()
    assert_json_error(client.get("/slow"), 504)
    assert time.monotonic() - started < 5  # the 1 s timeout, not the 10 s sleep


def _concurrent_get(node: NodeProcess, path: str, count: int) -> list[tuple[httpx.Response, float]]:
    """`count` requests sent at the same moment; each response with the seconds it took."""
    barrier = threading.Barrier(count)

    def one(_):
        with node.client() as c:
            barrier.wait()
            started = time.monotonic()
            response = c.get(path)
            return response, time.monotonic() - started

    with ThreadPoolExecutor(count) as pool:
        return list(pool.map(one, range(count)))


def test_reserved_concurrency_queues_requests_briefly(node, client):
    """Two requests to a function capped at one instance: the second waits its turn, then runs."""
    assert client.get("/capped", params={"seconds": "0"}).status_code == 200  # warm the instance
    results = _concurrent_get(node, "/capped?seconds=0.6", 2)
    assert [response.status_code for response, _ in results] == [200, 200]
    first, second = sorted((response.json() for response, _ in results), key=lambda run: run["started"])
    assert second["started"] >= first["ended"] - 0.01  # never two at once
    assert max(seconds for _, seconds in results) >= 1.0  # the second waited for the first


def test_reserved_concurrency_throttles_after_the_bounded_wait(node, client):
    """Three requests to a capped function busy for 3.5 s: one runs, two get 429 after ~2 s."""
    assert client.get("/capped", params={"seconds": "0"}).status_code == 200
    results = _concurrent_get(node, "/capped?seconds=3.5", 3)
    assert sorted(response.status_code for response, _ in results) == [200, 429, 429]
    for response, seconds in results:
        if response.status_code == 429:
            assert_json_error(response, 429)
            assert 1.8 <= seconds < 3.3  # the node's throttle_wait is 2 s
    assert client.get("/capped", params={"seconds": "0"}).status_code == 200  # the cap frees up again


# ---- ctx services from HTTP handlers -----------------------------------------------------


def test_table_and_queue_from_http_handlers(client):
    item = {"id": "sku-1", "name": "lamp", "price": 12.5}
    created = client.post("/items", json=item)
    assert created.status_code == 201
    assert created.json() == item
    assert client.get("/items/sku-1").json() == item
    assert client.get("/items/sku-missing").status_code == 404
    audited = wait_until(lambda: (r := client.get("/audited/sku-1")).status_code == 200 and r.json(),
                         timeout=15, message="the audit queue consumer to record the item")
    assert audited["eventSource"] == "aws:sqs"
    assert audited["source"] == "http"
    assert audited["messageId"]


def test_context_attributes(client):
    """The Lambda request id is the invocation's own (API Gateway's requestId is another)."""
    body, again = client.get("/context").json(), client.get("/context").json()
    assert str(uuid.UUID(body["aws_request_id"])) == body["aws_request_id"]
    assert body["aws_request_id"] != again["aws_request_id"]
    assert body["function_name"] == "context"
    assert body["memory_limit_in_mb"] == "256"  # a str, as the runtime interface client reads it from the environment
    first, later = body["remaining"]
    assert 2000 < first <= 3000
    assert 0 < later <= first - 150


def test_ctx_invoke_returns_the_result_of_another_function(client):
    assert client.get("/double/21").json() == {"doubled": 42, "by": "double"}


def test_ctx_invoke_async_runs_the_target(client):
    response = client.get("/async_rows/k-42")
    assert response.status_code == 404
    started = client.post("/async/k-42")
    assert started.status_code == 200 and started.json()["id"]
    row = wait_until(lambda: (r := client.get("/async_rows/k-42")).status_code == 200 and r.json(),
                     timeout=15, message="the asynchronous invocation to write its row")
    assert row == {"written_by": "record_row", "key": "k-42"}


# ---- unmodified Lambda handlers ----------------------------------------------------------


def test_lambda_handler_module_behind_a_route(client):
    response = client.get("/legacy")
    assert response.status_code == 200
    body = response.json()
    assert body["legacy"] is True
    assert body["path"] == "/legacy"
    assert body["function"] == "lambda_mod_handler"
    assert body["request_id"]


def test_lambda_handler_module_as_a_function_via_cli(node):
    backend = f"sqlite:///{node.app_path.parent}/state.db"  # the node's own state, shared
    result = squall("invoke", str(node.app_path), "legacy_fn", "--data", '{"rawPath": "/from-cli"}',
                    "--backend", backend, cwd=node.app_path.parent)
    assert result.returncode == 0, result.stderr
    proxy = json.loads(result.stdout)
    assert proxy["statusCode"] == 200
    body = json.loads(proxy["body"])
    assert body == {"legacy": True, "path": "/from-cli", "function": "legacy_fn",
                    "request_id": body["request_id"]}
    assert "REPORT" in result.stderr
