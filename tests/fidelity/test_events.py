"""Every event a real node delivers parses with aws-lambda-powertools' parser models.

Powertools' pydantic models are an independent statement of what Lambda sends; a handler
that parses its event with them must get zero validation errors on Squall. One node per
backend serves HTTP handlers that answer with the event they got and a queue consumer that
stores the records it got; the tests send through the node and parse what came back.
"""

from __future__ import annotations

import base64
import hashlib
import json
import uuid

import pytest
from aws_lambda_powertools.utilities.parser.models import APIGatewayProxyEventV2Model, SqsModel

from squall.services import Table
from tests.support import NodeProcess, wait_until, write_app

APP = """
    import json

    from squall import App

    app = App("events")


    def echo(event, ctx):
        return {"statusCode": 200, "headers": {"content-type": "application/json"}, "body": json.dumps(event)}


    for number, (method, path) in enumerate(
            [("GET", "/items"), ("POST", "/items"), ("GET", "/items/{id}"), ("ANY", "/files/{proxy+}")]):
        app.http(method, path, echo, name=f"echo{number}")


    @app.http("POST", "/send")
    def send(event, ctx):
        \"\"\"Send {"body", "attributes"} to the `events` queue; answers the message id.\"\"\"
        request = json.loads(event["body"])
        return {"messageId": ctx.queue("events").send(request["body"], attributes=request.get("attributes"))}


    @app.on_queue("events", visibility_timeout=5)
    def consume(event, ctx):
        ctx.table("batches").put(event["Records"][0]["body"], event)
"""

#: a Lambda record carries binary attributes base64-encoded
JPEG = base64.b64encode(b"\xff\xd8\xff\xe0 not really a jpeg").decode()


@pytest.fixture(scope="module", params=["sqlite", "redis"])
def url(request, tmp_path_factory) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path_factory.mktemp('events')}/state.db"
    server = request.getfixturevalue("redis_server")
    import redis

    redis.Redis.from_url(f"redis://127.0.0.1:{server.port}/15").flushdb()
    return f"redis://127.0.0.1:{server.port}/15"


@pytest.fixture(scope="module")
def node(url, tmp_path_factory):
    with NodeProcess(write_app(tmp_path_factory.mktemp("app"), APP), backend=url) as running:
        yield running


def http_event(node: NodeProcess, method: str, path: str, **request) -> APIGatewayProxyEventV2Model:
    """The event the node delivered for this request, parsed strictly."""
    with node.client() as client:
        response = client.request(method, path, **request)
    assert response.status_code == 200, response.text
    return APIGatewayProxyEventV2Model.model_validate(response.json())


def batch(node: NodeProcess, state, body: str, attributes: dict | None = None) -> tuple[str, dict]:
    """Send one message through the node; (its id, the SQS event the consumer got for it)."""
    with node.client() as client:
        response = client.post("/send", json={"body": body, "attributes": attributes})
    assert response.status_code == 200, response.text
    event = wait_until(lambda: Table(state, "batches").get(body), timeout=10, message=f"delivery of {body!r}")
    return response.json()["messageId"], event


def test_get_with_query_string_and_cookies_parses_as_http_api_v2(node):
    event = http_event(node, "GET", "/items?color=blue&size=9&size=10",
                       headers={"cookie": "session=abc; theme=dark", "x-custom": "1"})
    assert event.routeKey == "GET /items" and event.rawPath == "/items"
    assert event.rawQueryString == "color=blue&size=9&size=10"
    assert event.queryStringParameters == {"color": "blue", "size": "9,10"}
    assert event.cookies == ["session=abc", "theme=dark"]
    assert event.headers["x-custom"] == "1"
    assert event.requestContext.http.method == "GET" and event.requestContext.http.sourceIp
    assert event.body is None and event.isBase64Encoded is False


def test_post_with_a_json_body_parses_as_http_api_v2(node):
    event = http_event(node, "POST", "/items", json={"name": "tea", "price": 4.5})
    assert event.requestContext.http.method == "POST"
    assert event.isBase64Encoded is False and json.loads(event.body or "") == {"name": "tea", "price": 4.5}


def test_post_with_a_binary_body_parses_as_http_api_v2_with_base64(node):
    payload = bytes(range(256))
    event = http_event(node, "POST", "/items", content=payload, headers={"content-type": "application/octet-stream"})
    assert event.isBase64Encoded is True and base64.b64decode(event.body or "") == payload


def test_path_parameters_parse_as_http_api_v2(node):
    event = http_event(node, "GET", "/items/ab%20c")
    assert event.routeKey == "GET /items/{id}" and event.pathParameters == {"id": "ab c"}


def test_greedy_proxy_path_parses_as_http_api_v2(node):
    event = http_event(node, "DELETE", "/files/a/b/c.txt")
    assert event.routeKey == "ANY /files/{proxy+}" and event.pathParameters == {"proxy": "a/b/c.txt"}
    assert event.requestContext.http.method == "DELETE" and event.requestContext.http.path == "/files/a/b/c.txt"


def test_sqs_batch_without_attributes_parses_as_sqs_model(node, state):
    message_id, event = batch(node, state, "plain")
    [record] = SqsModel.model_validate(event).Records
    assert record.messageId == message_id and str(uuid.UUID(message_id)) == message_id  # a UUID, as SQS gives
    assert record.md5OfBody == hashlib.md5(b"plain").hexdigest()
    assert record.messageAttributes == {} and record.md5OfMessageAttributes is None
    assert "md5OfMessageAttributes" not in event["Records"][0]  # absent, as on SQS, not null


def test_sqs_batch_with_attributes_parses_as_sqs_model_with_their_md5(node, state):
    attributes = {"kind": "new", "count": 3, "photo": {"dataType": "Binary.jpeg", "binaryValue": JPEG}}
    message_id, event = batch(node, state, "with attributes ☃", attributes)
    [record] = SqsModel.model_validate(event).Records
    assert record.messageId == message_id and str(uuid.UUID(message_id)) == message_id
    assert record.md5OfBody == hashlib.md5("with attributes ☃".encode()).hexdigest()
    assert {name: (a.dataType, a.stringValue, a.binaryValue) for name, a in record.messageAttributes.items()} == {
        "kind": ("String", "new", None), "count": ("Number", "3", None), "photo": ("Binary.jpeg", None, JPEG)}
    # the digest moto's SQS gives these attributes (name order, length-prefixed, binary decoded)
    assert record.md5OfMessageAttributes == "2890830bb2ad9f098c63b4d1f680cd3f"
