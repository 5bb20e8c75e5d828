"""The gateway's ASGI app: routes from the app's declarations, one invocation per request.

Errors follow API Gateway: 404/405 for unknown routes and methods, 413 for a body over
the limit, 400 for a malformed JSON body, 429 when the function is at its concurrency
limit, 500 when the handler raised, 502 when the instance crashed or returned a malformed
response, 504 on timeout. Every error body is JSON: {"message": ...}.
"""

from __future__ import annotations

import json
from typing import Any

from starlette.routing import Match, Route

from squall.app import HTTP_METHODS, HttpRoute
from squall.aws import request_id as new_request_id
from squall.gateway.events import (
    HttpResponse, MalformedResponse, error_response, http_event, http_response, request_headers,
)
from squall.node import Node

#: Lambda's synchronous invocation payload limit.
MAX_BODY_BYTES = 6 * 1024 * 1024

ERROR_STATUS = {"error": (500, "Internal Server Error"), "timeout": (504, "Endpoint request timed out"),
                "crash": (502, "Internal Server Error"), "oom": (502, "Internal Server Error"),
                "throttled": (429, "Too Many Requests")}


#: What an `ANY` route matches (Starlette's default for methods=None is GET and HEAD only).
ANY_METHODS = sorted(HTTP_METHODS - {"ANY"})


def starlette_path(path: str) -> str:
    """`/files/{proxy+}` (API Gateway's greedy parameter) -> `/files/{proxy:path}`."""
    return path.replace("+}", ":path}")


def build_gateway(node: Node, max_body: int = MAX_BODY_BYTES) -> Gateway:
    """The gateway of a node's app: one route per path, dispatching on the method, so a
    405 lists every method the path accepts in its Allow header."""
    by_path: dict[str, dict[str, HttpRoute]] = {}
    for route in node.app.routes:
        methods = ANY_METHODS if route.method == "ANY" else [route.method]
        for method in methods:
            by_path.setdefault(route.path, {}).setdefault(method, route)
    return Gateway([Route(starlette_path(path), Endpoint(node, table, max_body), methods=sorted(table))
                    for path, table in by_path.items()])


class Gateway:
    """The ASGI app: Starlette's routes match paths (with typed and greedy parameters);
    the matched endpoint is called directly, without a middleware stack per request."""

    def __init__(self, routes: list[Route]):
        self.routes = routes

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            # served with lifespan="off", so the only other kind is a WebSocket: HTTP APIs have none
            if scope["type"] == "websocket":
                await send({"type": "websocket.close", "code": 1000})
            return
        allowed: set[str] = set()
        for route in self.routes:
            match, child_scope = route.matches(scope)
            if match is Match.FULL:
                scope.update(child_scope)
                await route.endpoint(scope, receive, send)
                return
            if match is Match.PARTIAL:
                allowed |= route.methods or set()
        method, path = scope["method"], scope["path"]
        if allowed:
            response = error_response(405, f"method {method} is not allowed on {path}", error="MethodNotAllowed")
            response.headers.append((b"allow", ", ".join(sorted(allowed)).encode()))
        else:
            response = error_response(404, f"no route matches {method} {path}", error="RouteNotFound")
        await response(scope, receive, send)


class Endpoint:
    """The ASGI endpoint of one path: request -> event -> invocation -> response."""

    def __init__(self, node: Node, routes: dict[str, HttpRoute], max_body: int):
        self.node = node
        self.routes = routes
        self.max_body = max_body

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        response = await self.respond(scope, receive)
        if response is not None:
            await response(scope, receive, send)

    async def respond(self, scope: dict[str, Any], receive: Any) -> HttpResponse | None:
        """The response, or None when the client went away before sending its body."""
        route = self.routes.get(scope["method"]) or self.routes["GET"]  # Starlette answers HEAD with GET
        request_id = new_request_id()
        headers, cookies = request_headers(scope)
        declared = headers.get("content-length")
        if declared and declared.isdigit() and int(declared) > self.max_body:
            return _too_large(self.max_body, request_id)
        body = b""
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                return None
            body += message.get("body", b"")
            if len(body) > self.max_body:
                return _too_large(self.max_body, request_id)
            if not message.get("more_body", False):
                break
        if body and headers.get("content-type", "").split(";")[0].strip().lower() == "application/json":
            try:
                json.loads(body)
            except ValueError as exc:
                return error_response(400, f"malformed JSON body: {exc}", request_id, error="MalformedJSON")
        event = http_event(scope, route, headers, cookies, body, request_id)
        invocation = await self.node.invoke(route.function, event, "http", wait=self.node.settings.throttle_wait)
        if not invocation.ok:
            status, message = ERROR_STATUS[invocation.outcome]
            return error_response(status, message, request_id, requestId=invocation.request_id)
        try:
            response = http_response(invocation.result)
        except MalformedResponse as exc:
            return error_response(502, f"malformed Lambda proxy response: {exc}", request_id)
        response.headers.append((b"apigw-requestid", request_id.encode()))
        return response


def _too_large(limit: int, request_id: str) -> HttpResponse:
    return error_response(413, f"request body is over the {limit} byte limit", request_id, error="PayloadTooLarge")
