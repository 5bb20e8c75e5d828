"""http_event and request_headers: the API Gateway HTTP API (payload format 2.0) event, built
from a raw ASGI scope."""

from __future__ import annotations

import base64
import re
import time

import pytest

from squall.aws import ACCOUNT
from squall.events.apigw import http_event, is_text, request_headers
from squall.sources.http import HttpRoute


def scope(method: str = "GET", path: str = "/items/42", query: bytes = b"", headers=(), **extra):
    return {"type": "http", "method": method, "path": path, "query_string": query, "http_version": "1.1",
            "headers": list(headers), "client": ("10.1.2.3", 54321), **extra}


def event_for(s, route: HttpRoute, body: bytes = b"", request_id: str = "req-1"):
    headers, cookies = request_headers(s)
    return http_event(s, route, headers, cookies, body, request_id)


GET_HEADERS = [
    (b"Host", b"api.example.com"),
    (b"User-Agent", b"curl/8"),
    (b"Cookie", b"session=abc; theme=dark"),
    (b"cookie", b"late=1"),
    (b"X-Multi", b"one"),
    (b"x-multi", b"two"),
    (b"Accept", b"*/*"),
]


def test_get_with_query_cookies_and_path_parameters():
    before = time.time()
    s = scope(query=b"tag=a&tag=b&empty=&q=x%20y", headers=GET_HEADERS, path_params={"id": "42"})
    event = event_for(s, HttpRoute(method="get", path="/items/{id}"))

    assert event["version"] == "2.0"
    assert event["routeKey"] == "GET /items/{id}"
    assert (event["rawPath"], event["rawQueryString"]) == ("/items/42", "tag=a&tag=b&empty=&q=x%20y")
    assert event["queryStringParameters"] == {"tag": "a,b", "empty": "", "q": "x y"}
    assert event["pathParameters"] == {"id": "42"}
    assert event["cookies"] == ["session=abc", "theme=dark", "late=1"]
    assert event["headers"] == {"host": "api.example.com", "user-agent": "curl/8", "x-multi": "one,two",
                                "accept": "*/*",  # names lower-cased, repeats joined, cookies split out
                                "x-forwarded-for": "10.1.2.3", "x-forwarded-proto": "http"}
    assert event["isBase64Encoded"] is False and "body" not in event

    context = event["requestContext"]
    assert context["accountId"] == ACCOUNT
    assert (context["domainName"], context["domainPrefix"]) == ("api.example.com", "api")
    assert context["http"] == {"method": "GET", "path": "/items/42", "protocol": "HTTP/1.1", "sourceIp": "10.1.2.3",
                               "userAgent": "curl/8"}
    assert (context["requestId"], context["routeKey"], context["stage"]) == ("req-1", "GET /items/{id}", "$default")
    assert int(before * 1000) <= context["timeEpoch"] <= int(time.time() * 1000) + 1
    assert re.fullmatch(r"\d\d/[A-Z][a-z]{2}/\d{4}:\d\d:\d\d:\d\d \+0000", context["time"])


def test_a_request_without_query_cookies_or_parameters_has_none_of_those_keys():
    event = event_for(scope(path="/", headers=[]), HttpRoute(method="GET", path="/"))
    assert not {"queryStringParameters", "cookies", "pathParameters", "body"} & event.keys()
    assert event["headers"] == {"x-forwarded-for": "10.1.2.3", "x-forwarded-proto": "http"}  # only those added
    assert event["rawQueryString"] == ""
    assert event["requestContext"]["domainName"] == "localhost"
    assert event["requestContext"]["http"]["userAgent"] == ""


def test_a_request_without_a_client_has_an_empty_source_ip():
    event = event_for(scope(client=None), HttpRoute(method="GET", path="/items/{id}"))
    assert event["requestContext"]["http"]["sourceIp"] == ""


def test_path_parameters_are_strings():
    event = event_for(scope(path_params={"id": 42}), HttpRoute(method="GET", path="/items/{id}"))
    assert event["pathParameters"] == {"id": "42"}


def test_a_binary_body_is_base64_encoded():
    body = bytes(range(256))
    s = scope("POST", "/upload", headers=[(b"content-type", b"application/octet-stream")])
    event = event_for(s, HttpRoute(method="POST", path="/upload"), body)
    assert event["isBase64Encoded"] is True
    assert base64.b64decode(event["body"]) == body


@pytest.mark.parametrize("content_type, body, encoded", [
    (b"application/json", b'{"a": 1}', False),
    (b"application/json; charset=utf-8", b'{"a": "\xc3\xa9"}', False),
    (b"text/plain", "héllo".encode(), False),
    (b"application/vnd.api+json", b"{}", False),
    (b"application/x-www-form-urlencoded", b"a=1&b=2", False),
    (b"image/png", b"\x89PNG", True),
    (b"text/plain", b"\xff\xfe not utf-8", True),  # text that does not decode goes as base64
    (None, b"no content type", False),  # treated as text/plain
])
def test_body_encoding_follows_the_content_type(content_type, body, encoded):
    headers = [] if content_type is None else [(b"content-type", content_type)]
    event = event_for(scope("POST", "/x", headers=headers), HttpRoute(method="POST", path="/x"), body)
    assert event["isBase64Encoded"] is encoded
    assert (base64.b64decode(event["body"]) if encoded else event["body"].encode()) == body


def test_head_request_on_an_any_route():
    s = scope("HEAD", "/health", headers=[(b"host", b"localhost:8000")])
    event = event_for(s, HttpRoute(method="ANY", path="/health"))
    assert event["routeKey"] == "ANY /health"
    assert event["requestContext"]["routeKey"] == "ANY /health"
    assert event["requestContext"]["http"]["method"] == "HEAD"
    assert "body" not in event


def test_head_request_on_a_head_route():
    event = event_for(scope("HEAD", "/health"), HttpRoute(method="HEAD", path="/health"))
    assert event["routeKey"] == "HEAD /health"
    assert event["requestContext"]["http"]["method"] == "HEAD"


@pytest.mark.parametrize("content_type, text", [
    ("text/html", True), ("TEXT/CSV; charset=latin-1", True), ("application/json", True),
    ("application/problem+json", True), ("application/atom+xml", True), ("application/xml", True),
    ("application/javascript", True), ("application/octet-stream", False), ("image/jpeg", False),
    ("multipart/form-data; boundary=x", False), ("", False),
])
def test_is_text(content_type, text):
    assert is_text(content_type) is text


def test_http_event_parses_as_powertools_v2_model():
    models = pytest.importorskip("aws_lambda_powertools.utilities.parser.models")
    s = scope(query=b"tag=a&tag=b", headers=GET_HEADERS, path_params={"id": "42"})
    event = event_for(s, HttpRoute(method="GET", path="/items/{id}"), b"{}")
    parsed = models.APIGatewayProxyEventV2Model.model_validate(event)
    assert parsed.requestContext.http.method == "GET"
    assert parsed.queryStringParameters == {"tag": "a,b"}
    assert parsed.cookies == ["session=abc", "theme=dark", "late=1"]
    binary = event_for(scope("POST", "/u", headers=[(b"content-type", b"image/png")]),
                       HttpRoute(method="POST", path="/u"), b"\x89PNG")
    assert models.APIGatewayProxyEventV2Model.model_validate(binary).isBase64Encoded is True


@pytest.mark.parametrize("sent, forwarded_for", [
    ([], "10.1.2.3"),
    ([(b"X-Forwarded-For", b"203.0.113.7")], "203.0.113.7, 10.1.2.3"),  # appended, as API Gateway does
    ([(b"X-Forwarded-For", b"203.0.113.7, 10.1.2.3")], "203.0.113.7, 10.1.2.3"),  # already the last hop
])
def test_the_forwarded_headers_api_gateway_adds(sent, forwarded_for):
    headers, _ = request_headers(scope(headers=sent, scheme="http", server=("127.0.0.1", 8000)))
    assert headers["x-forwarded-for"] == forwarded_for
    assert headers["x-forwarded-proto"] == "http"  # how the client reached the node
    assert headers["x-forwarded-port"] == "8000"
