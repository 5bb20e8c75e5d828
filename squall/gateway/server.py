"""The gateway's ASGI app: routes from the app's declarations, one invocation per request.

Errors follow API Gateway: 404/405 for unknown routes and methods, 413 for a body over
the limit, 400 for a malformed JSON body, 429 when the function is at its concurrency
limit, 500 when the handler raised, 502 when the instance crashed or returned a malformed
response, 504 on timeout. Every error body is JSON: {"message": ...}.
"""

from __future__ import annotations

import json
import uuid

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from squall.app import HTTP_METHODS, HttpRoute
from squall.gateway.events import MalformedResponse, error_response, http_event, http_response
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


def build_gateway(node: Node, max_body: int = MAX_BODY_BYTES) -> Starlette:
    """One Starlette route per path, dispatching on the method, so a 405 lists every
    method the path accepts in its Allow header."""
    by_path: dict[str, dict[str, HttpRoute]] = {}
    for route in node.app.routes:
        methods = ANY_METHODS if route.method == "ANY" else [route.method]
        for method in methods:
            by_path.setdefault(route.path, {}).setdefault(method, route)
    routes = [Route(starlette_path(path), _endpoint(node, table, max_body), methods=sorted(table))
              for path, table in by_path.items()]
    return Starlette(routes=routes, exception_handlers={HTTPException: _http_error})


async def _http_error(request: Request, exc: HTTPException) -> Response:
    if exc.status_code == 404:
        return error_response(404, f"no route matches {request.method} {request.url.path}", error="RouteNotFound")
    if exc.status_code == 405:
        response = error_response(405, f"method {request.method} is not allowed on {request.url.path}",
                                  error="MethodNotAllowed")
        if exc.headers:
            response.headers.update(exc.headers)
        return response
    return error_response(exc.status_code, exc.detail)


def _endpoint(node: Node, routes: dict[str, HttpRoute], max_body: int):
    async def endpoint(request: Request) -> Response:
        route = routes.get(request.method) or routes["GET"]  # Starlette answers HEAD with GET
        request_id = str(uuid.uuid4())
        declared = request.headers.get("content-length")
        if declared and declared.isdigit() and int(declared) > max_body:
            return _too_large(max_body, request_id)
        body = bytearray()
        async for chunk in request.stream():
            body += chunk
            if len(body) > max_body:
                return _too_large(max_body, request_id)
        if body and request.headers.get("content-type", "").split(";")[0].strip().lower() == "application/json":
            try:
                json.loads(body)
            except ValueError as exc:
                return error_response(400, f"malformed JSON body: {exc}", request_id, error="MalformedJSON")
        event = http_event(request, route, bytes(body), request_id)
        invocation = await node.invoke(route.function, event, "http", wait=node.settings.throttle_wait)
        if not invocation.ok:
            status, message = ERROR_STATUS[invocation.outcome]
            return error_response(status, message, request_id, requestId=invocation.request_id)
        try:
            response = http_response(invocation.result)
        except MalformedResponse as exc:
            return error_response(502, f"malformed Lambda proxy response: {exc}", request_id)
        response.headers["apigw-requestid"] = request_id
        return response

    return endpoint


def _too_large(limit: int, request_id: str) -> Response:
    return error_response(413, f"request body is over the {limit} byte limit", request_id, error="PayloadTooLarge")
