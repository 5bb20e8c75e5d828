"""Payload format 1.0 on a real node: the REST API (Lambda proxy) event, parsed strictly with
Powertools' `APIGatewayProxyEventModel`, and 1.0's response rules (a proxy response is
required; `multiValueHeaders` merged with `headers`, taking a name's values alone).

The app is 1.0 app-wide (`App(..., payload_format="1.0")`) with one route back on 2.0; its
catch-all is an unmodified Powertools `APIGatewayRestResolver` app, and one route runs a
handler in the style of AWS's Terraform samples, which read `headers['X-Forwarded-For']`
and `requestContext['httpMethod']`.
"""

from __future__ import annotations

import base64
import json

import pytest
from aws_lambda_powertools.utilities.parser.models import APIGatewayProxyEventModel

from tests.support import NodeProcess, write_app

RESOLVER = """
    from aws_lambda_powertools.event_handler import APIGatewayRestResolver

    app = APIGatewayRestResolver()


    @app.get("/todos/<todo_id>")
    def todo(todo_id):
        event = app.current_event
        return {"todo": todo_id, "resource": event.resource, "method": event.http_method,
                "tags": event.multi_value_query_string_parameters.get("tag")}


    @app.post("/todos")
    def create():
        return {"created": app.current_event.json_body}, 201


    def handler(event, context):
        return app.resolve(event, context)
"""

#: in the style of AWS's Terraform sample handlers for API Gateway (REST, Lambda proxy)
SAMPLE = """
    import json


    def lambda_handler(event, context):
        body = {
            "message": "Hello from Lambda!",
            "sourceIp": event["headers"]["X-Forwarded-For"],
            "method": event["requestContext"]["httpMethod"],
        }
        return {"statusCode": 200, "headers": {"Content-Type": "application/json"}, "body": json.dumps(body)}
"""

APP = """
    import json

    from squall import App

    app = App("rest", payload_format="1.0")
    app.http("ANY", "/{proxy+}", handler="resolver.handler")
    app.http("GET", "/hello", handler="sample.lambda_handler")


    @app.http("ANY", "/echo/{id}")
    @app.http("ANY", "$default")
    def echo(event, ctx):
        return {"statusCode": 200, "headers": {"Content-Type": "application/json"}, "body": json.dumps(event)}


    @app.http("GET", "/v2", payload_format="2.0")
    def v2(event, ctx):
        return {"version": event["version"]}         # 2.0 infers a response from a bare object


    @app.http("GET", "/bare")
    def bare(event, ctx):
        return {"version": event["version"]}         # 1.0 does not


    @app.http("GET", "/text")
    def text(event, ctx):
        return "hello"


    @app.http("GET", "/headers")
    def headers(event, ctx):
        return {"statusCode": 201, "body": "",
                "headers": {"X-One": "single", "X-Both": "from headers", "Content-Type": "text/plain"},
                "multiValueHeaders": {"X-Both": ["m1", "m2"], "Set-Cookie": ["a=1", "b=2"]},
                "cookies": ["ignored=1"]}
"""


@pytest.fixture(scope="module")
def client(tmp_path_factory):
    directory = tmp_path_factory.mktemp("payload_v1")
    write_app(directory, RESOLVER, "resolver.py")
    write_app(directory, SAMPLE, "sample.py")
    with NodeProcess(write_app(directory, APP), backend=f"sqlite:///{directory}/state.db") as node, \
            node.client(timeout=10) as c:
        yield c


def echoed(client, method: str, path: str, **request) -> tuple[dict, APIGatewayProxyEventModel]:
    response = client.request(method, path, **request)
    assert response.status_code == 200, response.text
    event = response.json()
    return event, APIGatewayProxyEventModel.model_validate(event)


def test_the_event_is_the_rest_api_event_and_parses_strictly(client):
    event, model = echoed(client, "GET", "/echo/42?tag=a&tag=b&q=tea",
                          headers=[("X-Custom-Header", "one"), ("X-Custom-Header", "two"), ("Cookie", "s=1; t=2")])
    assert event["version"] == "1.0"
    assert (event["resource"], event["path"], event["httpMethod"]) == ("/echo/{id}", "/echo/42", "GET")
    # header names keep the client's spelling; repeats are lists, the plain map has the last
    assert event["headers"]["X-Custom-Header"] == "two"
    assert event["multiValueHeaders"]["X-Custom-Header"] == ["one", "two"]
    assert event["headers"]["Cookie"] == "s=1; t=2" and "cookies" not in event
    assert event["headers"]["X-Forwarded-For"] == "127.0.0.1"
    assert event["headers"]["X-Forwarded-Proto"] == "http"
    assert event["multiValueHeaders"]["X-Forwarded-Port"] == [str(client.base_url.port)]
    assert event["queryStringParameters"] == {"tag": "b", "q": "tea"}
    assert event["multiValueQueryStringParameters"] == {"tag": ["a", "b"], "q": ["tea"]}
    assert event["pathParameters"] == {"id": "42"}
    assert event["stageVariables"] is None and event["body"] is None and event["isBase64Encoded"] is False
    context = event["requestContext"]
    assert (context["httpMethod"], context["path"], context["resourcePath"]) == ("GET", "/echo/42", "/echo/{id}")
    assert context["stage"] == "$default" and context["protocol"] == "HTTP/1.1" and context["resourceId"] is None
    assert context["extendedRequestId"] == context["requestId"]
    identity = context["identity"]
    assert identity["sourceIp"] == "127.0.0.1" and identity["userAgent"].startswith("python-httpx/")
    assert {k for k, v in identity.items() if v is not None} == {"sourceIp", "userAgent"}
    assert model.requestContext.requestTimeEpoch.year >= 2024


def test_without_query_or_parameters_the_maps_are_null(client):
    event, _ = echoed(client, "GET", "/")  # the greedy route needs a segment: this is $default's
    assert event["resource"] == event["requestContext"]["resourcePath"] == "$default"
    assert event["queryStringParameters"] is None and event["multiValueQueryStringParameters"] is None
    assert event["pathParameters"] is None


def test_bodies_are_text_or_base64_as_in_format_2(client):
    event, model = echoed(client, "POST", "/echo/1", json={"name": "tea"})
    assert json.loads(event["body"]) == {"name": "tea"} and event["isBase64Encoded"] is False
    payload = bytes(range(256))
    event, model = echoed(client, "PUT", "/echo/1", content=payload, headers={"Content-Type": "image/png"})
    assert event["isBase64Encoded"] is True and base64.b64decode(event["body"]) == payload
    assert model.httpMethod == "PUT"


def test_the_powertools_rest_resolver_runs_unmodified_on_the_greedy_route(client):
    response = client.get("/todos/7?tag=x&tag=y")
    assert response.status_code == 200, response.text
    assert response.json() == {"todo": "7", "resource": "/{proxy+}", "method": "GET", "tags": ["x", "y"]}
    created = client.post("/todos", json={"title": "tea"})
    assert created.status_code == 201 and created.json() == {"created": {"title": "tea"}}
    missing = client.get("/todos")
    assert missing.status_code == 404  # the resolver's own 404, through the greedy route


def test_an_aws_sample_handler_reads_what_the_rest_api_sends(client):
    response = client.get("/hello")
    assert response.status_code == 200, response.text
    assert response.json() == {"message": "Hello from Lambda!", "sourceIp": "127.0.0.1", "method": "GET"}


@pytest.mark.parametrize(("path", "kind"), [("/bare", "an object without statusCode"), ("/text", "str")])
def test_a_result_that_is_not_a_proxy_response_is_502(client, path, kind):
    response = client.get(path)
    assert response.status_code == 502
    assert response.json()["message"] == ("malformed Lambda proxy response: payload format 1.0 needs a proxy "
                                          f"response with a statusCode, not {kind}")


def test_a_route_may_keep_format_2_in_a_1_0_app(client):
    response = client.get("/v2")
    assert response.status_code == 200 and response.json() == {"version": "2.0"}


def test_multi_value_headers_merge_with_headers_and_take_a_name_alone(client):
    response = client.get("/headers")
    assert response.status_code == 201
    assert response.headers.get_list("x-both") == ["m1", "m2"]  # not "from headers" too
    assert response.headers["x-one"] == "single" and response.headers["content-type"] == "text/plain"
    assert response.headers.get_list("set-cookie") == ["a=1", "b=2"]  # `cookies` is a 2.0 field: not read
