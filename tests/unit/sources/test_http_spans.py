"""The HTTP source's span shapes: like requests share one, anything that differs gets its own."""

from __future__ import annotations

from squall import App
from squall.core.pipeline import InvokeRequest
from squall.sources import sources_for
from squall.sources.http import MAX_SHAPES, HttpSource
from tests.unit.support import invocation


def handler(event, ctx):
    return None


def http_source() -> HttpSource:
    app = App("shop")
    app.http("GET", "/orders/{id}", handler, name="orders")
    [source] = [s for s in sources_for(app) if isinstance(s, HttpSource)]
    return source


def request(path: str = "/orders/1", address: str = "10.0.0.1", query: str = "") -> InvokeRequest:
    event = {"rawQueryString": query, "requestContext": {"http": {
        "method": "GET", "path": path, "protocol": "HTTP/1.1", "sourceIp": address, "userAgent": "curl/8"}}}
    return InvokeRequest("orders", event, "http", "GET /orders/{id}")


def test_like_requests_share_one_shape_and_a_different_one_gets_its_own():
    source = http_source()
    ok = invocation({"statusCode": 200}, function="orders")
    first = source.span(request(), ok)
    assert source.span(request(), ok) is first
    assert first.name == "GET /orders/{id}" and first.error is None
    assert first.attributes == {"http.request.method": "GET", "url.path": "/orders/1", "url.scheme": "http",
                                "http.response.status_code": 200, "http.route": "/orders/{id}",
                                "network.protocol.version": "1.1", "client.address": "10.0.0.1",
                                "user_agent.original": "curl/8"}
    failed = source.span(request(), invocation({"statusCode": 503}, function="orders"))
    assert failed is not first and failed.error == "503" and failed.attributes["http.response.status_code"] == 503
    assert source.span(request(path="/orders/2"), ok).attributes["url.path"] == "/orders/2"
    assert source.span(request(address="10.0.0.2"), ok).attributes["client.address"] == "10.0.0.2"
    assert source.span(request(query="a=1"), ok).attributes["url.query"] == "a=1"
    assert first.attributes["http.response.status_code"] == 200  # a shape never changes once made


def test_the_shapes_kept_are_bounded():
    source = http_source()
    ok = invocation({"statusCode": 200}, function="orders")
    for n in range(MAX_SHAPES + 10):
        source.span(request(path=f"/orders/{n}"), ok)
    assert len(source._shapes) <= MAX_SHAPES
    assert source.span(request(path="/orders/x"), ok).attributes["url.path"] == "/orders/x"
