"""The event API Gateway sends a Lambda proxy integration (HTTP API, payload format 2.0).

Built from the raw ASGI scope and header list: the gateway runs this for every request,
so it avoids building request objects it does not need.
"""

from __future__ import annotations

import base64
import functools
import time
from typing import Any
from urllib.parse import parse_qsl

from starlette.types import Scope

from squall.aws import ACCOUNT
from squall.sources.http import HttpRoute

TEXT_TYPES = ("text/", "application/json", "application/xml", "application/javascript",
              "application/x-www-form-urlencoded", "+json", "+xml")

def is_text(content_type: str) -> bool:
    base = content_type.split(";", 1)[0].strip().lower()
    return any(base.startswith(t) or base.endswith(t) for t in TEXT_TYPES)


@functools.lru_cache(maxsize=2)
def _request_time(second: int) -> str:
    """`requestContext.time`, formatted once per second rather than once per request."""
    return time.strftime("%d/%b/%Y:%H:%M:%S +0000", time.gmtime(second))


def request_headers(scope: Scope) -> tuple[dict[str, str], list[str]]:
    """Headers as HTTP API delivers them: names lower-cased, repeats joined with commas,
    cookies split out into their own list, and the `x-forwarded-*` headers API Gateway adds.

    `x-forwarded-proto` and `-port` say how the client reached the node (uvicorn has
    already taken them from a trusted proxy's own headers: `FORWARDED_ALLOW_IPS`, loopback
    by default), so frameworks behind Mangum build `http://` URLs on a plain-HTTP node;
    `x-forwarded-for` gets the client's address appended, as API Gateway appends it."""
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
    client, server = scope.get("client"), scope.get("server")
    if client:
        forwarded = headers.get("x-forwarded-for")
        if not forwarded:
            headers["x-forwarded-for"] = client[0]
        elif forwarded.rsplit(",", 1)[-1].strip() != client[0]:
            headers["x-forwarded-for"] = f"{forwarded}, {client[0]}"
    scheme = headers["x-forwarded-proto"] = scope.get("scheme", "http")
    if server:  # an ASGI server may leave the port out (None): the scheme's default then
        headers["x-forwarded-port"] = str(server[1] or (443 if scheme == "https" else 80))
    return headers, cookies


def http_event(scope: Scope, route: HttpRoute, headers: dict[str, str], cookies: list[str],
               body: bytes, request_id: str) -> dict[str, Any]:
    """The event API Gateway sends a Lambda proxy integration (format 2.0)."""
    now = time.time()
    path = scope["path"]
    raw_query = scope.get("query_string", b"").decode("latin-1")
    client = scope.get("client")
    host = headers.get("host", "localhost")
    event: dict[str, Any] = {
        "version": "2.0",
        "routeKey": route.route_key,
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
            "time": _request_time(int(now)),
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
