"""Handler results to HTTP responses, as API Gateway maps a Lambda proxy integration's.

Responses are built as raw ASGI messages: the gateway runs this for every request.
"""

from __future__ import annotations

import base64
import json
import re
from dataclasses import dataclass, field
from typing import Any, TypeVar

from starlette.types import Receive, Scope, Send

from squall.errors import ResponseTooLarge
from squall.gateway.settings import MAX_RESPONSE_BYTES
from squall.sources.http import PayloadFormat

RawHeaders = list[tuple[bytes, bytes]]
Payload = TypeVar("Payload", str, bytes)


class MalformedResponse(ValueError):
    """The handler returned a proxy response API Gateway could not use."""


#: statuses whose responses have no body (RFC 9110 §6.4.1): no bytes, no content-length
NO_BODY = frozenset({204, 304})


@dataclass
class HttpResponse:
    """A response ready for the wire; an ASGI app that sends itself."""

    status: int
    body: bytes = b""
    headers: RawHeaders = field(default_factory=list)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if self.status in NO_BODY:  # stray bytes here would be read as the start of the next response
            await send({"type": "http.response.start", "status": self.status, "headers": self.headers})
            await send({"type": "http.response.body", "body": b""})
            return
        headers = [*self.headers, (b"content-length", str(len(self.body)).encode())]
        await send({"type": "http.response.start", "status": self.status, "headers": headers})
        await send({"type": "http.response.body", "body": self.body})


JSON = (b"content-type", b"application/json")
TEXT = (b"content-type", b"text/plain; charset=utf-8")

#: headers of one connection, not of the response (RFC 9110 §7.6.1), and the length the
#: gateway computes itself: a handler setting them would corrupt the framing, so they are dropped
HOP_BY_HOP = frozenset({"connection", "keep-alive", "proxy-authenticate", "proxy-authorization",
                        "proxy-connection", "te", "trailer", "transfer-encoding", "upgrade", "content-length"})
#: a header name is an RFC 9110 token; a value has no control characters but tab (no CR/LF)
HEADER_NAME = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")
HEADER_VALUE = re.compile(r"[^\x00-\x08\x0a-\x1f\x7f]*")
#: header values a handler may give besides strings: sent as their str()
SCALARS = (int, float)


def http_response(result: Any, max_bytes: int = MAX_RESPONSE_BYTES) -> HttpResponse:
    """Map a handler's return value to a response, as HTTP API does for format 2.0.

    A dict with `statusCode` is a Lambda proxy response; any other dict, list, number or
    bool is sent as JSON with status 200; a string as text; None as 204. A body over
    `max_bytes` raises ResponseTooLarge.
    """
    if isinstance(result, dict) and "statusCode" in result:
        return proxy_response(result, max_bytes)
    if result is None:
        return HttpResponse(204)
    if isinstance(result, str):
        return HttpResponse(200, _within(result.encode(), max_bytes), [TEXT])
    return HttpResponse(200, _within(json.dumps(result).encode(), max_bytes), [JSON])


def rest_response(result: Any, max_bytes: int = MAX_RESPONSE_BYTES) -> HttpResponse:
    """Map a handler's return value to a response as format 1.0 does: it must be a Lambda
    proxy response (an object with `statusCode`); nothing is inferred, so a bare object,
    string or None is malformed (API Gateway's 502)."""
    if not isinstance(result, dict) or "statusCode" not in result:
        kind = "an object without statusCode" if isinstance(result, dict) else type(result).__name__
        raise MalformedResponse(f"payload format 1.0 needs a proxy response with a statusCode, not {kind}")
    return proxy_response(result, max_bytes, PayloadFormat.V1)


def _within(payload: Payload, max_bytes: int) -> Payload:
    """The payload (bytes, or base64 text) if it is within Lambda's limit. Lambda measures
    the whole JSON result; its body is all of it that matters at this size."""
    if len(payload) > max_bytes:
        raise ResponseTooLarge(f"Response payload size ({len(payload)} bytes) exceeded maximum allowed payload size "
                               f"({max_bytes} bytes).", "Function.ResponseSizeTooLarge")
    return payload


def _status(status: Any) -> int:
    """A final status: 1xx are interim responses, which a Lambda proxy response cannot be."""
    if isinstance(status, bool) or not isinstance(status, int) or not 200 <= status <= 599:
        raise MalformedResponse(f"statusCode must be an integer from 200 to 599, not {status!r}")
    return status


def proxy_response(result: dict[str, Any], max_bytes: int = MAX_RESPONSE_BYTES,
                   payload_format: PayloadFormat = PayloadFormat.V2) -> HttpResponse:
    """A Lambda proxy response as API Gateway sends it. `headers` and `multiValueHeaders`
    are merged; in format 1.0 a name in both takes the `multiValueHeaders` values alone
    (API Gateway's rule), and `cookies`, a 2.0 field, is not read."""
    status = _status(result.get("statusCode"))
    body = result.get("body")
    encoded = result.get("isBase64Encoded")
    if encoded is not None and not isinstance(encoded, bool):
        raise MalformedResponse(f"isBase64Encoded must be a boolean, not {type(encoded).__name__}")
    if body is None:
        content = b""
    elif not isinstance(body, str):
        raise MalformedResponse(f"body must be a string, not {type(body).__name__}")
    elif encoded:
        _within(body, max_bytes)  # Lambda counts the base64 text
        try:
            content = base64.b64decode(body, validate=True)
        except ValueError as exc:  # binascii.Error, or a str with non-ASCII characters
            raise MalformedResponse(f"body is marked isBase64Encoded but is not base64: {exc}") from None
    else:
        content = _within(body.encode(), max_bytes)
    headers = result.get("headers") or {}
    if not isinstance(headers, dict):
        raise MalformedResponse("headers must be an object")
    # one value per name (the last one given wins, as names are case-insensitive)
    single = {_name(name): _value(value, "headers") for name, value in headers.items()}
    multi_pairs: list[tuple[str, str]] = []
    if multi := result.get("multiValueHeaders"):  # most responses have neither: no work for them
        if not isinstance(multi, dict):
            raise MalformedResponse("multiValueHeaders must be an object of lists")
        for name, values in multi.items():
            if not isinstance(values, list):
                raise MalformedResponse("multiValueHeaders must be an object of lists")
            multi_pairs.extend((_name(name), _value(value, "multiValueHeaders")) for value in values)
        if payload_format is PayloadFormat.V1:
            replaced = {name for name, _ in multi_pairs}
            single = {name: value for name, value in single.items() if name not in replaced}
    if "content-type" not in single and not (multi_pairs and any(name == "content-type" for name, _ in multi_pairs)):
        single["content-type"] = "application/json"
    pairs = list(single.items())
    if multi_pairs:
        pairs.extend(multi_pairs)
    if payload_format is PayloadFormat.V2 and (cookies := result.get("cookies")):
        if not isinstance(cookies, list) or not all(isinstance(cookie, str) for cookie in cookies):
            raise MalformedResponse("cookies must be a list of strings")
        pairs.extend(("set-cookie", _value(cookie, "cookies")) for cookie in cookies)
    try:
        raw = [(name.encode("latin-1"), value.encode("latin-1")) for name, value in pairs if name not in HOP_BY_HOP]
    except UnicodeEncodeError as exc:
        raise MalformedResponse(f"header names and values must be Latin-1: {exc.object!r}") from None
    return HttpResponse(status, content, raw)


def _name(name: Any) -> str:
    if not isinstance(name, str) or not HEADER_NAME.fullmatch(name):
        raise MalformedResponse(f"header name {name!r} is not a valid HTTP header name")
    return name.lower()


def _value(value: Any, where: str) -> str:
    if isinstance(value, str):
        text = value
    elif isinstance(value, SCALARS):  # bool is an int: True is sent as "True", as str() gives
        text = str(value)
    else:
        raise MalformedResponse(f"{where} values must be strings, not {type(value).__name__}")
    if not HEADER_VALUE.fullmatch(text):
        raise MalformedResponse(f"{where} value {text!r} has a control character (CR, LF or NUL)")
    return text


def error_response(status: int, message: str, request_id: str | None = None, **extra: Any) -> HttpResponse:
    """API Gateway's JSON error body: {"message": ...}."""
    headers = [JSON]
    if request_id:
        headers.append((b"apigw-requestid", request_id.encode()))
    return HttpResponse(status, json.dumps({"message": message, **extra}).encode(), headers)
