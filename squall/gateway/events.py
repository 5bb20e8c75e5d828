"""Requests to API Gateway HTTP API (payload format 2.0) events, and results to responses.

Both directions work on the raw ASGI scope and raw header lists: the gateway runs this
for every request, so it avoids building request and response objects it does not need.
"""

from __future__ import annotations

import base64
import json
import time
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl

from squall.app import HttpRoute
from squall.aws import ACCOUNT

TEXT_TYPES = ("text/", "application/json", "application/xml", "application/javascript",
              "application/x-www-form-urlencoded", "+json", "+xml")

RawHeaders = list[tuple[bytes, bytes]]


def is_text(content_type: str) -> bool:
    base = content_type.split(";", 1)[0].strip().lower()
    return any(base.startswith(t) or base.endswith(t) for t in TEXT_TYPES)


def request_headers(scope: dict[str, Any]) -> tuple[dict[str, str], list[str]]:
    """Headers as HTTP API delivers them: names lower-cased, repeats joined with commas,
    and cookies split out into their own list."""
    headers: dict[str, str] = {}
    cookies: list[str] = []
    for raw_name, raw_value in scope["headers"]:
        name, value = raw_name.decode("latin-1").lower(), raw_value.decode("latin-1")
        if name == "cookie":
            cookies.extend(c.strip() for c in value.split(";") if c.strip())
        elif name in headers:
            headers[name] = f"{headers[name]},{value}"
        else:
            headers[name] = value
    return headers, cookies


def http_event(scope: dict[str, Any], route: HttpRoute, headers: dict[str, str], cookies: list[str],
               body: bytes, request_id: str) -> dict[str, Any]:
    """The event API Gateway sends a Lambda proxy integration (format 2.0)."""
    now = time.time()
    path = scope["path"]
    raw_query = scope.get("query_string", b"").decode("latin-1")
    client = scope.get("client")
    host = headers.get("host", "localhost")
    event: dict[str, Any] = {
        "version": "2.0",
        "routeKey": route.route_key if route.method != "ANY" else f"ANY {route.path}",
        "rawPath": path,
        "rawQueryString": raw_query,
        "headers": headers,
        "requestContext": {
            "accountId": ACCOUNT,
            "apiId": "squall",
            "domainName": host,
            "domainPrefix": host.split(".", 1)[0],
            "http": {
                "method": scope["method"],
                "path": path,
                "protocol": f"HTTP/{scope.get('http_version', '1.1')}",
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
    path_params = scope.get("path_params")
    if path_params:
        event["pathParameters"] = {k: str(v) for k, v in path_params.items()}
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


@dataclass
class HttpResponse:
    """A response ready for the wire; an ASGI app that sends itself."""

    status: int
    body: bytes = b""
    headers: RawHeaders = field(default_factory=list)

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        headers = [*self.headers, (b"content-length", str(len(self.body)).encode())]
        await send({"type": "http.response.start", "status": self.status, "headers": headers})
        await send({"type": "http.response.body", "body": self.body})


JSON = (b"content-type", b"application/json")
TEXT = (b"content-type", b"text/plain; charset=utf-8")


def http_response(result: Any) -> HttpResponse:
    """Map a handler's return value to a response, as HTTP API does for format 2.0.

    A dict with `statusCode` is a Lambda proxy response; any other dict, list, number or
    bool is sent as JSON with status 200; a string as text; a `(body, status)` tuple with
    that status; None as 204.
    """
    if isinstance(result, tuple) and len(result) == 2 and isinstance(result[1], int):
        response = http_response(result[0])
        response.status = result[1]
        return response
    if isinstance(result, dict) and "statusCode" in result:
        return proxy_response(result)
    if result is None:
        return HttpResponse(204)
    if isinstance(result, str):
        return HttpResponse(200, result.encode(), [TEXT])
    return HttpResponse(200, json.dumps(result).encode(), [JSON])


def proxy_response(result: dict[str, Any]) -> HttpResponse:
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
    # one value per name (the last one given wins, as names are case-insensitive)
    single = {str(name).lower(): str(value) for name, value in headers.items()}
    single.pop("content-length", None)  # recomputed from the body
    single.setdefault("content-type", "application/json")
    pairs = list(single.items())
    for name, values in (result.get("multiValueHeaders") or {}).items():
        pairs.extend((str(name).lower(), str(value)) for value in values)
    pairs.extend(("set-cookie", str(cookie)) for cookie in result.get("cookies") or [])
    try:
        raw = [(name.encode("latin-1"), value.encode("latin-1")) for name, value in pairs]
    except UnicodeEncodeError as exc:
        raise MalformedResponse(f"header names and values must be Latin-1: {exc.object!r}") from None
    return HttpResponse(status, content, raw)


def error_response(status: int, message: str, request_id: str | None = None, **extra: Any) -> HttpResponse:
    """API Gateway's JSON error body: {"message": ...}."""
    headers = [JSON]
    if request_id:
        headers.append((b"apigw-requestid", request_id.encode()))
    return HttpResponse(status, json.dumps({"message": message, **extra}).encode(), headers)
