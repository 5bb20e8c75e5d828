"""The gateway's ASGI app: routes from the app's declarations, one invocation per request.

Routes are selected as API Gateway HTTP APIs select them, whatever their declaration
order: the most specific full match, then greedy `{proxy+}` paths, then `$default`.
Bodies pass through to the function unread, as on an HTTP API, unless the route declares
a `request_schema`. Errors follow API Gateway: 404/405 for unknown routes and methods when
there is no `$default` route, 413 for a body over the limit, 400 for a body a route's
schema refuses (a REST API's request validation), 429 when the function is at its
concurrency limit, 500 when the handler raised, 502 when the
instance crashed or returned a malformed or oversized response, 504 on timeout. Every
error body is JSON: {"message": ...}. (What is refused before a request reaches this app,
408/417/431/503, is in `protocol.py`.)
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any
from urllib.parse import unquote

from starlette.convertors import PathConvertor, register_url_convertor
from starlette.routing import Match, Route
from starlette.types import Receive, Scope, Send

from squall.aws import request_id as new_request_id
from squall.core.pipeline import InvokeRequest
from squall.errors import ResponseTooLarge
from squall.gateway.integrations import Integration, integration_for
from squall.gateway.responses import HttpResponse, MalformedResponse, error_response
from squall.gateway.settings import GatewaySettings
from squall.node import Node
from squall.observability.context import TRACEPARENT, TRACESTATE
from squall.sources.http import HTTP_METHODS, HttpRoute, specificity

#: What an `ANY` route matches (Starlette's default for methods=None is GET and HEAD only).
ANY_METHODS = sorted(HTTP_METHODS - {"ANY"})


class GreedyConvertor(PathConvertor):
    """`{proxy+}`: at least one character, so `/{proxy+}` does not match `/` (on API Gateway
    a greedy variable needs a segment to catch); Starlette's `path` also matches nothing."""

    regex = ".+"


register_url_convertor("greedy", GreedyConvertor())


def starlette_path(path: str) -> str:
    """`/files/{proxy+}` (API Gateway's greedy parameter) -> `/files/{proxy:greedy}`."""
    return path.replace("+}", ":greedy}")


ENCODED_SLASH = re.compile("%2f", re.IGNORECASE)


def routing_path(raw_path: bytes) -> str:
    """The path routes match: percent-escapes decoded except `%2F`, which API Gateway keeps
    encoded, so `/items/a%2Fb` matches `/items/{id}` with `id` = `a%2Fb`. (uvicorn's
    `path` decodes every escape, so an encoded slash would split a segment.)"""
    return "%2F".join(unquote(part) for part in ENCODED_SLASH.split(raw_path.decode("latin-1")))


def build_gateway(node: Node, settings: GatewaySettings | None = None) -> Gateway:
    """The gateway of a node's app: one route per path, dispatching on the method, so a
    405 lists every method the path accepts in its Allow header. Paths are tried most
    specific first (`specificity`), and on one path a method's own route beats `ANY`."""
    settings = settings or GatewaySettings()
    by_path: dict[str, dict[str, HttpRoute]] = {}
    default: Endpoint | None = None
    for route in sorted(node.app.routes, key=lambda r: r.method == "ANY"):
        if route.is_default:
            default = Endpoint(node, dict.fromkeys(ANY_METHODS, route), settings)
            continue
        table = by_path.setdefault(route.path, {})
        for method in ANY_METHODS if route.method == "ANY" else [route.method]:
            table.setdefault(method, route)
    return Gateway([Route(starlette_path(path), Endpoint(node, by_path[path], settings), methods=sorted(by_path[path]))
                    for path in sorted(by_path, key=specificity)], default)


class Gateway:
    """The ASGI app: Starlette's routes match paths (with typed and greedy parameters);
    the matched endpoint is called directly, without a middleware stack per request.
    What no route matches in full goes to the `$default` route when there is one."""

    def __init__(self, routes: list[Route], default: Endpoint | None = None):
        self.routes = routes
        self.default = default

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            # served with lifespan="off", so the only other kind is a WebSocket: HTTP APIs have none
            if scope["type"] == "websocket":
                await send({"type": "websocket.close", "code": 1000})
            return
        raw_path = scope.get("raw_path")
        if raw_path and b"%" in raw_path:
            scope["path"] = routing_path(raw_path)
        allowed: set[str] = set()
        for route in self.routes:
            match, child_scope = route.matches(scope)
            if match is Match.FULL:
                scope.update(child_scope)
                await route.endpoint(scope, receive, send)
                return
            if match is Match.PARTIAL:
                allowed |= route.methods or set()
        if self.default is not None:
            await self.default(scope, receive, send)
            return
        method, path = scope["method"], scope["path"]
        if allowed:
            response = error_response(405, f"method {method} is not allowed on {path}", error="MethodNotAllowed")
            response.headers.append((b"allow", ", ".join(sorted(allowed)).encode()))
        else:
            response = error_response(404, f"no route matches {method} {path}", error="RouteNotFound")
        await response(scope, receive, send)


class Endpoint:
    """The ASGI endpoint of one path: request -> event -> invocation -> response."""

    def __init__(self, node: Node, routes: dict[str, HttpRoute], settings: GatewaySettings):
        self.node = node
        built: dict[int, Integration[Any]] = {}  # one per route, though an ANY route serves every method
        self.integrations: dict[str, Integration[Any]] = {}
        for method, route in routes.items():
            if id(route) not in built:
                built[id(route)] = integration_for(route)
            self.integrations[method] = built[id(route)]
        self.max_body = settings.max_body_bytes
        self.max_response = settings.max_response_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        response = await self.respond(scope, receive)
        if response is not None:
            await response(scope, receive, send)

    async def respond(self, scope: Scope, receive: Receive) -> HttpResponse | None:
        """The response, or None when the client went away before sending its body."""
        # Starlette answers HEAD with GET; the $default table holds GET, for any other method
        integration = self.integrations.get(scope["method"]) or self.integrations["GET"]
        route = integration.route
        request_id = new_request_id()
        head, headers = integration.headers(scope)
        declared = headers.get("content-length")
        if declared and declared.isdigit() and int(declared) > self.max_body:
            return _too_large(self.max_body, request_id)
        chunks: list[bytes] = []  # joined once: `body +=` per chunk is quadratic
        size = 0
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                return None
            chunk = message.get("body", b"")
            chunks.append(chunk)
            size += len(chunk)
            if size > self.max_body:
                return _too_large(self.max_body, request_id)
            if not message.get("more_body", False):
                break
        body = chunks[0] if len(chunks) == 1 else b"".join(chunks)
        if integration.validator is not None and (invalid := integration.validator.problem(body)):
            return error_response(400, "Invalid request body", request_id, error="BadRequestBody",
                                  detail=invalid.detail, **({"path": invalid.path} if invalid.path else {}))
        event = integration.event(scope, head, body, request_id)
        invocation = await self.node.invoke(InvokeRequest(route.function, event, "http", route.route_key,
                                                          wait=self.node.settings.throttle_wait,
                                                          headers=trace_context(headers)))
        error = invocation.error
        if error is None:
            try:
                response = integration.response(invocation.result, self.max_response)
            except ResponseTooLarge as exc:
                error = exc
            except MalformedResponse as exc:
                return error_response(502, f"malformed Lambda proxy response: {exc}", request_id)
        if isinstance(error, ResponseTooLarge):  # over Lambda's 6 MB: found by the runtime, or here
            return error_response(502, str(error), request_id, error=error.error_type, requestId=invocation.request_id)
        if error is not None:
            return error_response(error.http_status, error.http_message, request_id, requestId=invocation.request_id)
        response.headers.append((b"apigw-requestid", request_id.encode()))
        return response


def trace_context(headers: Mapping[str, str]) -> dict[str, str]:
    """The caller's W3C trace context (`traceparent`, `tracestate`), which the invocation
    continues (tracing checks it: a malformed one starts a new trace)."""
    traceparent = headers.get(TRACEPARENT)
    if not traceparent:
        return {}
    tracestate = headers.get(TRACESTATE)
    return {TRACEPARENT: traceparent, TRACESTATE: tracestate} if tracestate else {TRACEPARENT: traceparent}


def _too_large(limit: int, request_id: str) -> HttpResponse:
    return error_response(413, f"request body is over the {limit} byte limit", request_id, error="PayloadTooLarge")
