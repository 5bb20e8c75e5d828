"""Handler results to HTTP responses, as API Gateway maps a Lambda proxy integration's.

Responses are built as raw ASGI messages: the gateway runs this for every request.
"""

from __future__ import annotations

import base64
import binascii
import json
from dataclasses import dataclass, field
from typing import Any

from starlette.types import Receive, Scope, Send

RawHeaders = list[tuple[bytes, bytes]]


class MalformedResponse(ValueError):
    """The handler returned a proxy response API Gateway could not use."""


@dataclass
class HttpResponse:
    """A response ready for the wire; an ASGI app that sends itself."""

    status: int
    body: bytes = b""
    headers: RawHeaders = field(default_factory=list)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
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
    elif isinstance(body, str) and result.get("isBase64Encoded"):
        try:
            content = base64.b64decode(body, validate=True)
        except binascii.Error as exc:
            raise MalformedResponse(f"body is marked isBase64Encoded but is not base64: {exc}") from None
    elif isinstance(body, str):
        content = body.encode()
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
    if multi := result.get("multiValueHeaders"):  # most responses have neither: no work for them
        if not isinstance(multi, dict):
            raise MalformedResponse("multiValueHeaders must be an object of lists")
        for name, values in multi.items():
            if not isinstance(values, list):
                raise MalformedResponse("multiValueHeaders must be an object of lists")
            pairs.extend((str(name).lower(), str(value)) for value in values)
    if cookies := result.get("cookies"):
        if not isinstance(cookies, list):
            raise MalformedResponse("cookies must be a list of strings")
        pairs.extend(("set-cookie", str(cookie)) for cookie in cookies)
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
