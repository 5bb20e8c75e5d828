"""Requests to API Gateway HTTP API (payload format 2.0) events, and results to responses."""

from __future__ import annotations

import base64
import json
import time
import uuid
from typing import Any
from urllib.parse import parse_qsl

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from squall.app import HttpRoute
from squall.aws import ACCOUNT

TEXT_TYPES = ("text/", "application/json", "application/xml", "application/javascript",
              "application/x-www-form-urlencoded", "+json", "+xml")


def is_text(content_type: str) -> bool:
    base = content_type.split(";", 1)[0].strip().lower()
    return any(base.startswith(t) or base.endswith(t) for t in TEXT_TYPES)


def http_event(request: Request, route: HttpRoute, body: bytes, request_id: str | None = None) -> dict[str, Any]:
    """The event API Gateway sends a Lambda proxy integration (format 2.0)."""
    headers: dict[str, str] = {}
    cookies: list[str] = []
    for raw_name, raw_value in request.scope["headers"]:
        name, value = raw_name.decode("latin-1").lower(), raw_value.decode("latin-1")
        if name == "cookie":
            cookies.extend(c.strip() for c in value.split(";") if c.strip())
        elif name in headers:
            headers[name] = f"{headers[name]},{value}"
        else:
            headers[name] = value
    now = time.time()
    request_id = request_id or str(uuid.uuid4())
    raw_query = request.scope.get("query_string", b"").decode("latin-1")
    client = request.scope.get("client")
    event: dict[str, Any] = {
        "version": "2.0",
        "routeKey": route.route_key if route.method != "ANY" else f"ANY {route.path}",
        "rawPath": request.scope["path"],
        "rawQueryString": raw_query,
        "headers": headers,
        "requestContext": {
            "accountId": ACCOUNT,
            "apiId": "squall",
            "domainName": headers.get("host", "localhost"),
            "domainPrefix": headers.get("host", "localhost").split(".", 1)[0],
            "http": {
                "method": request.method,
                "path": request.scope["path"],
                "protocol": f"HTTP/{request.scope.get('http_version', '1.1')}",
                "sourceIp": client[0] if client else "",
                "userAgent": headers.get("user-agent", ""),
            },
            "requestId": request_id,
            "routeKey": route.route_key,
            "stage": "$default",
            "time": time.strftime("%d/%b/%Y:%H:%M:%S +0000", time.gmtime(now)),
            "timeEpoch": int(now * 1000),
        },
        "isBase64Encoded": False,
    }
    if cookies:
        event["cookies"] = cookies
    if raw_query:
        query: dict[str, str] = {}
        for key, value in parse_qsl(raw_query, keep_blank_values=True):
            query[key] = f"{query[key]},{value}" if key in query else value
        event["queryStringParameters"] = query
    if request.path_params:
        event["pathParameters"] = {k: str(v) for k, v in request.path_params.items()}
    if body:
        if is_text(headers.get("content-type", "text/plain")):
            try:
                event["body"] = body.decode("utf-8")
            except UnicodeDecodeError:
                event["body"], event["isBase64Encoded"] = base64.b64encode(body).decode(), True
        else:
            event["body"], event["isBase64Encoded"] = base64.b64encode(body).decode(), True
    return event


class MalformedResponse(ValueError):
    """The handler returned a proxy response API Gateway could not use."""


def http_response(result: Any) -> Response:
    """Map a handler's return value to a response, as HTTP API does for format 2.0.

    A dict with `statusCode` is a Lambda proxy response; any other dict, list, number or
    bool is sent as JSON with status 200; a string as text; a `(body, status)` tuple with
    that status; None as 204.
    """
    if isinstance(result, tuple) and len(result) == 2 and isinstance(result[1], int):
        response = http_response(result[0])
        response.status_code = result[1]
        return response
    if isinstance(result, dict) and "statusCode" in result:
        return proxy_response(result)
    if result is None:
        return Response(status_code=204)
    if isinstance(result, str):
        return Response(result, media_type="text/plain; charset=utf-8")
    return Response(json.dumps(result), media_type="application/json")


def proxy_response(result: dict[str, Any]) -> Response:
    status = result.get("statusCode")
    if isinstance(status, bool) or not isinstance(status, int) or not 100 <= status <= 599:
        raise MalformedResponse(f"statusCode must be an integer from 100 to 599, not {status!r}")
    body = result.get("body")
    if body is None:
        content = b""
    elif isinstance(body, str):
        content = base64.b64decode(body) if result.get("isBase64Encoded") else body.encode()
    else:
        raise MalformedResponse(f"body must be a string, not {type(body).__name__}")
    headers = result.get("headers") or {}
    if not isinstance(headers, dict):
        raise MalformedResponse("headers must be an object")
    response = Response(content, status_code=status)
    if "content-type" not in {k.lower() for k in headers}:
        response.headers["content-type"] = "application/json"
    for name, value in headers.items():
        response.headers[str(name)] = str(value)
    for name, values in (result.get("multiValueHeaders") or {}).items():
        for value in values:
            response.headers.append(str(name), str(value))
    for cookie in result.get("cookies") or []:
        response.headers.append("set-cookie", str(cookie))
    return response


def error_response(status: int, message: str, request_id: str | None = None, **extra: Any) -> JSONResponse:
    body = {"message": message, **extra}
    headers = {"apigw-requestid": request_id} if request_id else None
    return JSONResponse(body, status_code=status, headers=headers)
