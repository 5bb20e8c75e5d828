"""http_response / proxy_response: a handler's return value mapped to an HTTP response as API
Gateway maps a Lambda proxy integration's (format 2.0), and the ASGI messages sent."""

from __future__ import annotations

import asyncio
import base64
import json

import pytest

from squall.errors import ResponseTooLarge
from squall.gateway.responses import (
    HttpResponse,
    MalformedResponse,
    error_response,
    http_response,
)

JSON = (b"content-type", b"application/json")
TEXT = (b"content-type", b"text/plain; charset=utf-8")


@pytest.mark.parametrize("result, status, body, headers", [
    # Lambda proxy responses
    ({"statusCode": 201, "body": "made", "headers": {"X-Id": "7"}}, 201, b"made", [(b"x-id", b"7"), JSON]),
    ({"statusCode": 200}, 200, b"", [JSON]),
    ({"statusCode": 200, "body": None}, 200, b"", [JSON]),
    ({"statusCode": 404, "body": "", "headers": None}, 404, b"", [JSON]),
    ({"statusCode": 200, "body": "<p>", "headers": {"Content-Type": "text/html"}}, 200, b"<p>",
     [(b"content-type", b"text/html")]),
    ({"statusCode": 200, "body": "x", "headers": {"Content-Length": "999", "X-A": 1}}, 200, b"x",
     [(b"x-a", b"1"), JSON]),  # content-length recomputed, values as strings
    ({"statusCode": 200, "body": "x", "headers": {"X-A": "1", "x-a": "2"}}, 200, b"x",
     [(b"x-a", b"2"), JSON]),  # one value per name, the last wins
    ({"statusCode": 200, "body": base64.b64encode(b"\x00\xff").decode(), "isBase64Encoded": True}, 200,
     b"\x00\xff", [JSON]),
    ({"statusCode": 200, "body": "aGk=", "isBase64Encoded": False}, 200, b"aGk=", [JSON]),
    ({"statusCode": 200, "body": "é", "headers": {"X-Name": "café"}}, 200, "é".encode(),
     [(b"x-name", "café".encode("latin-1")), JSON]),
    ({"statusCode": 200, "multiValueHeaders": {"X-M": ["1", "2"]}, "headers": {"X-S": "s"}}, 200, b"",
     [(b"x-s", b"s"), JSON, (b"x-m", b"1"), (b"x-m", b"2")]),
    ({"statusCode": 302, "cookies": ["a=1; Path=/", "b=2"], "headers": {"Location": "/next"}}, 302, b"",
     [(b"location", b"/next"), JSON, (b"set-cookie", b"a=1; Path=/"), (b"set-cookie", b"b=2")]),
    ({"statusCode": 200}, 200, b"", [JSON]),
    ({"statusCode": 599}, 599, b"", [JSON]),
    ({"statusCode": 200, "isBase64Encoded": None, "body": "aGk="}, 200, b"aGk=", [JSON]),
    # hop-by-hop headers are the gateway's, not the handler's: dropped
    ({"statusCode": 200, "body": "x", "headers": {"Transfer-Encoding": "chunked", "Connection": "close",
                                                 "Keep-Alive": "timeout=1", "Upgrade": "h2c", "TE": "trailers",
                                                 "Trailer": "X-T", "Proxy-Authenticate": "Basic", "X-A": "1"},
      "multiValueHeaders": {"connection": ["keep-alive"], "X-B": ["2"]}}, 200, b"x",
     [(b"x-a", b"1"), JSON, (b"x-b", b"2")]),
    ({"statusCode": 200, "headers": {"X-N": 2, "X-F": 1.5, "X-T": "a\tb"}}, 200, b"",
     [(b"x-n", b"2"), (b"x-f", b"1.5"), (b"x-t", b"a\tb"), JSON]),
    # anything else
    ({"a": 1}, 200, b'{"a": 1}', [JSON]),
    ({}, 200, b"{}", [JSON]),
    ([1, "two"], 200, b'[1, "two"]', [JSON]),
    (3, 200, b"3", [JSON]),
    (2.5, 200, b"2.5", [JSON]),
    (True, 200, b"true", [JSON]),
    ("hello", 200, b"hello", [TEXT]),
    ("", 200, b"", [TEXT]),
    ("ünï", 200, "ünï".encode(), [TEXT]),
    (None, 204, b"", []),
    (("a", "b"), 200, b'["a", "b"]', [JSON]),  # a JSON list (a result arrives decoded from JSON)
    ((1, 2, 3), 200, b"[1, 2, 3]", [JSON]),
])
def test_http_response(result, status, body, headers):
    response = http_response(result)
    assert (response.status, response.body, response.headers) == (status, body, headers)


@pytest.mark.parametrize("result, complaint", [
    ({"statusCode": "200"}, "statusCode"),
    ({"statusCode": None}, "statusCode"),
    ({"statusCode": True}, "statusCode"),
    ({"statusCode": 200.0}, "statusCode"),
    ({"statusCode": 99}, "statusCode"),
    ({"statusCode": 100}, "statusCode"),  # 1xx are interim: never a final response
    ({"statusCode": 101}, "statusCode"),
    ({"statusCode": 199}, "statusCode"),
    ({"statusCode": 600}, "statusCode"),
    ({"statusCode": 200, "headers": {"X-A": "1\r\nSet-Cookie: evil=1"}}, "control character"),
    ({"statusCode": 200, "headers": {"X-A": "1\nx"}}, "control character"),
    ({"statusCode": 200, "headers": {"X-A": "1\x00"}}, "control character"),
    ({"statusCode": 200, "headers": {"X-A\r\nX-B": "1"}}, "not a valid HTTP header name"),
    ({"statusCode": 200, "headers": {"X A": "1"}}, "not a valid HTTP header name"),
    ({"statusCode": 200, "headers": {"": "1"}}, "not a valid HTTP header name"),
    ({"statusCode": 200, "headers": {"X-A": ["1", "2"]}}, "headers values must be strings, not list"),
    ({"statusCode": 200, "headers": {"X-A": None}}, "headers values must be strings, not NoneType"),
    ({"statusCode": 200, "multiValueHeaders": {"X-M": [{"a": 1}]}}, "multiValueHeaders values must be strings"),
    ({"statusCode": 200, "multiValueHeaders": {"X-M": ["1\r\n"]}}, "control character"),
    ({"statusCode": 200, "cookies": ["a=1\r\nX-Evil: 1"]}, "control character"),
    ({"statusCode": 200, "cookies": [1]}, "cookies must be a list of strings"),
    ({"statusCode": 200, "body": "x", "isBase64Encoded": "false"}, "isBase64Encoded must be a boolean"),
    ({"statusCode": 200, "body": "é", "isBase64Encoded": True}, "not base64"),
    ({"statusCode": 200, "body": {"a": 1}}, "body must be a string, not dict"),
    ({"statusCode": 200, "body": 5}, "body must be a string, not int"),
    ({"statusCode": 200, "body": b"x"}, "body must be a string, not bytes"),
    ({"statusCode": 200, "headers": ["X-A", "1"]}, "headers must be an object"),
    ({"statusCode": 200, "headers": {"X-Arrow": "→"}}, "Latin-1"),
    ({"statusCode": 200, "headers": {"X-☃": "1"}}, "not a valid HTTP header name"),
    ({"statusCode": 200, "multiValueHeaders": {"X-M": ["ok", "→"]}}, "Latin-1"),
    ({"statusCode": 200, "cookies": ["name=☃"]}, "Latin-1"),
])
def test_malformed_proxy_responses(result, complaint):
    with pytest.raises(MalformedResponse, match=complaint):
        http_response(result)


@pytest.mark.parametrize("result", [
    {"statusCode": 200, "cookies": "a=1"},
    {"statusCode": 200, "multiValueHeaders": {"X-M": "one"}},
    {"statusCode": 200, "multiValueHeaders": [["X-M", "1"]]},
    {"statusCode": 200, "body": "not base64!", "isBase64Encoded": True},
])
def test_more_malformed_proxy_responses(result):
    with pytest.raises(MalformedResponse):
        http_response(result)


def sent(response: HttpResponse) -> list[dict]:
    messages: list[dict] = []

    async def send(message):
        messages.append(message)

    async def receive():
        raise AssertionError("a response does not receive")

    asyncio.run(response({"type": "http"}, receive, send))
    return messages


def test_a_response_sends_itself_with_its_content_length():
    response = http_response({"statusCode": 201, "body": "hello", "headers": {"X-A": "1", "Content-Length": "1"}})
    start, body = sent(response)
    assert start == {"type": "http.response.start", "status": 201,
                     "headers": [(b"x-a", b"1"), JSON, (b"content-length", b"5")]}
    assert body == {"type": "http.response.body", "body": b"hello"}
    assert response.headers == [(b"x-a", b"1"), JSON]  # sending does not change the response


def test_an_empty_response_sends_a_zero_content_length():
    start, body = sent(http_response({"statusCode": 200}))
    assert (start["status"], start["headers"], body["body"]) == (200, [JSON, (b"content-length", b"0")], b"")


@pytest.mark.parametrize("status", [204, 304])
def test_a_204_or_304_sends_no_body_and_no_content_length(status):
    """Bytes after a 204/304 would be read as the start of the next response."""
    start, body = sent(http_response({"statusCode": status, "body": "stray", "headers": {"ETag": '"1"'}}))
    assert (start["status"], start["headers"], body["body"]) == (status, [(b"etag", b'"1"'), JSON], b"")
    start, body = sent(http_response(None))
    assert (start["status"], start["headers"], body["body"]) == (204, [], b"")


@pytest.mark.parametrize("result", [
    "x" * 101,
    {"statusCode": 200, "body": "x" * 101},
    {"statusCode": 200, "body": "é" * 51},  # 102 bytes as UTF-8
    {"statusCode": 200, "body": base64.b64encode(b"x" * 76).decode(), "isBase64Encoded": True},  # 104 as text
    {"items": "x" * 100},
])
def test_a_response_over_the_payload_limit_is_refused(result):
    with pytest.raises(ResponseTooLarge, match=r"exceeded maximum allowed payload size \(100 bytes\)"):
        http_response(result, max_bytes=100)


def test_a_response_at_the_payload_limit_is_sent():
    assert http_response({"statusCode": 200, "body": "x" * 100}, max_bytes=100).body == b"x" * 100
    assert http_response("x" * 100, max_bytes=100).body == b"x" * 100


def test_error_response():
    response = error_response(502, "malformed Lambda proxy response: x", "rid-1", error="Malformed")
    assert response.status == 502
    assert json.loads(response.body) == {"message": "malformed Lambda proxy response: x", "error": "Malformed"}
    assert response.headers == [JSON, (b"apigw-requestid", b"rid-1")]
    assert error_response(429, "Too Many Requests").headers == [JSON]
