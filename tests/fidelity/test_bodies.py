"""Request bodies on a real node: passed through unread, as HTTP APIs pass them, unless a
route opts in to validation with `request_schema=` (a REST API's request validator).

Without a schema the function gets every body as it was sent (text as text, anything else
base64-encoded with `isBase64Encoded`), so FastAPI behind Mangum answers a malformed JSON
body with its own 422 `json_invalid`. With one, the gateway answers 400 `BadRequestBody`
before the function runs, naming the problem.
"""

from __future__ import annotations

import base64

import pytest

from tests.support import NodeProcess, write_app

API = """
    from fastapi import FastAPI
    from mangum import Mangum
    from pydantic import BaseModel

    api = FastAPI()


    class Item(BaseModel):
        name: str


    @api.post("/api/items")
    def create(item: Item):
        return {"name": item.name}


    handler = Mangum(api, lifespan="off")
"""

APP = """
    import json

    from squall import App

    app = App("bodies")
    app.http("ANY", "/api/{proxy+}", handler="api.handler")

    ORDER = {
        "type": "object",
        "required": ["id", "items"],
        "properties": {
            "id": {"type": "string"},
            "items": {"type": "array", "minItems": 1,
                      "items": {"type": "object", "required": ["quantity"],
                                "properties": {"quantity": {"type": "integer", "minimum": 1}}}},
        },
    }


    @app.http("POST", "/echo")
    def echo(event, ctx):
        return {"body": event.get("body"), "isBase64Encoded": event["isBase64Encoded"]}


    @app.http("POST", "/orders", request_schema=ORDER)
    def place(event, ctx):
        ctx.table("orders").put("last", json.loads(event["body"]))
        return {"statusCode": 201, "body": event["body"]}


    @app.http("GET", "/orders/last")
    def last(event, ctx):
        return {"last": ctx.table("orders").get("last")}
"""


@pytest.fixture(scope="module")
def client(tmp_path_factory):
    directory = tmp_path_factory.mktemp("bodies")
    write_app(directory, API, "api.py")
    with NodeProcess(write_app(directory, APP), backend=f"sqlite:///{directory}/state.db") as node, \
            node.client(timeout=10) as c:
        yield c


@pytest.mark.parametrize(("content", "content_type", "as_text"), [
    (b'{"id": ', "application/json", True),                  # malformed JSON: the function's business
    (b"[" * 5000, "application/json", True),                 # nested past any parser's limit
    (b"name=tea&&=", "application/x-www-form-urlencoded", True),
    (b"\xff\xd8\xff\xe0 a jpeg", "image/jpeg", False),         # binary: base64, as API Gateway sends it
    (b"\xff not utf-8", "text/plain", False),                 # text that is not UTF-8: base64 too
    (bytes(range(256)), "application/octet-stream", False),
])
def test_every_body_reaches_the_function_unchanged(client, content, content_type, as_text):
    response = client.post("/echo", content=content, headers={"content-type": content_type})
    assert response.status_code == 200, response.text
    event = response.json()
    assert event["isBase64Encoded"] is not as_text
    sent = event["body"].encode() if as_text else base64.b64decode(event["body"])
    assert sent == content


def test_fastapi_behind_mangum_answers_a_malformed_body_itself(client):
    response = client.post("/api/items", content=b'{"name": ', headers={"content-type": "application/json"})
    assert response.status_code == 422, response.text
    assert response.json()["detail"][0]["type"] == "json_invalid"
    assert client.post("/api/items", json={"name": "tea"}).json() == {"name": "tea"}


def test_a_body_the_schema_accepts_reaches_the_function(client):
    order = {"id": "o1", "items": [{"quantity": 2}]}
    response = client.post("/orders", json=order)
    assert response.status_code == 201, response.text
    assert response.json() == order


@pytest.mark.parametrize(("content", "detail", "path"), [
    (b'{"id": ', "malformed JSON: ", None),
    (b"", "the request body is empty; this route expects JSON", None),
    (b'{"id": "o2"}', "'items' is a required property", "$"),
    (b'{"id": "o2", "items": [{"quantity": 0}]}', "0 is less than the minimum of 1", "$.items[0].quantity"),
    (b'{"id": 7, "items": [{"quantity": 1}]}', "7 is not of type 'string'", "$.id"),
])
def test_a_body_the_schema_refuses_is_400_before_the_function_runs(client, content, detail, path):
    response = client.post("/orders", content=content, headers={"content-type": "application/json"})
    assert response.status_code == 400, response.text
    body = response.json()
    assert body["message"] == "Invalid request body" and body["error"] == "BadRequestBody"
    assert body["detail"].startswith(detail)
    assert body.get("path") == path
    assert response.headers["apigw-requestid"]
    # the function never ran: what it stored last is not this body (at most the valid o1)
    last = client.get("/orders/last").json()["last"]
    assert last is None or last["id"] == "o1"
