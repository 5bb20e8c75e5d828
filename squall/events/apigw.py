"""The event API Gateway sends a Lambda proxy integration (HTTP API, payload format 2.0),
and what the 1.0 format (`apigw_v1`) shares with it: the body's encoding, the forwarded
headers, the request time.

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
def request_time(second: int) -> str:
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
    forwarded_for, proto, port = forwarded(scope, headers.get("x-forwarded-for"))
    if forwarded_for:
        headers["x-forwarded-for"] = forwarded_for
    headers["x-forwarded-proto"] = proto
    if port:
        headers["x-forwarded-port"] = port
    return headers, cookies


def forwarded(scope: Scope, forwarded_for: str | None) -> tuple[str | None, str, str | None]:
    """The `x-forwarded-for`, `-proto` and `-port` values API Gateway sets, given the
    request's own `x-forwarded-for` (the client's address is appended unless it is
    already last). None where the server gave no client address or port."""
    client, server = scope.get("client"), scope.get("server")
    if client:
        if not forwarded_for:
            forwarded_for = client[0]
        elif forwarded_for.rsplit(",", 1)[-1].strip() != client[0]:
            forwarded_for = f"{forwarded_for}, {client[0]}"
    scheme = scope.get("scheme", "http")
    # an ASGI server may leave the port out (None): the scheme's default then
    port = str(server[1] or (443 if scheme == "https" else 80)) if server else None
    return forwarded_for, scheme, port


def encode_body(body: bytes, content_type: str) -> tuple[str | None, bool]:
    """`(body, isBase64Encoded)` as API Gateway puts a request body in an event: text
    content types as text, anything else (or text that is not UTF-8) base64-encoded;
    an empty body is None."""
    if not body:
        return None, False
    if is_text(content_type):
        try:
            return body.decode("utf-8"), False
        except UnicodeDecodeError:
            pass
    return base64.b64encode(body).decode(), True


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
            "time": request_time(int(now)),
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
        event["body"], event["isBase64Encoded"] = encode_body(body, headers.get("content-type", "text/plain"))
    return event
