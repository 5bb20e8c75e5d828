"""The event of payload format 1.0: what a REST API's Lambda proxy integration sends, and
an HTTP API's with `payloadFormatVersion` 1.0.

Unlike 2.0, header names keep the client's spelling (the gateway's protocol records it
under `HEADER_NAMES`; without it, as under an ASGI test client, names are lower-case),
repeated headers and query parameters come as lists in `multiValue*` (their plain maps
hold the last value), cookies stay in the `Cookie` header, and absent maps are null.
The `X-Forwarded-*` headers API Gateway adds are spelt as it spells them.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qsl

from starlette.types import Scope

from squall.aws import ACCOUNT
from squall.events.apigw import encode_body, forwarded, request_time
from squall.sources.http import HttpRoute

#: the scope key of the request's header names as the client spelt them, in the order of
#: `scope["headers"]` (whose names ASGI lower-cases)
HEADER_NAMES = "squall.header_names"

#: `requestContext.identity` of a request with no IAM or Cognito caller: every field null
#: but the address and the user agent, as API Gateway sends it
_NO_CALLER = dict.fromkeys(("accessKey", "accountId", "apiKey", "apiKeyId", "caller", "cognitoAuthenticationProvider",
                            "cognitoAuthenticationType", "cognitoIdentityId", "cognitoIdentityPoolId",
                            "principalOrgId", "user", "userArn"))


@dataclass(slots=True)
class RestHeaders:
    """A request's headers as format 1.0 delivers them."""

    #: the client's spelling -> the last value
    headers: dict[str, str]
    #: the client's spelling -> every value, in order
    multi: dict[str, list[str]]
    #: lower-case name -> the last value, for the gateway's own look-ups
    lower: dict[str, str]


def rest_headers(scope: Scope) -> RestHeaders:
    """Group the request's headers case-insensitively under the first spelling the client
    used, and set the forwarded headers as API Gateway does."""
    spellings: list[bytes] = scope.get(HEADER_NAMES) or [name for name, _ in scope["headers"]]
    multi: dict[str, list[str]] = {}
    names: dict[str, str] = {}  # lower-case -> spelling
    for spelling, (raw_name, raw_value) in zip(spellings, scope["headers"], strict=True):
        lower = raw_name.decode("latin-1")
        name = names.setdefault(lower, spelling.decode("latin-1"))
        multi.setdefault(name, []).append(raw_value.decode("latin-1"))

    def take(lower: str) -> list[str]:
        """Remove a header the gateway sets itself; its values, if the client sent it."""
        name = names.pop(lower, None)
        return multi.pop(name) if name else []

    chain = ", ".join(take("x-forwarded-for"))
    take("x-forwarded-proto")
    take("x-forwarded-port")
    forwarded_for, proto, port = forwarded(scope, chain or None)
    if forwarded_for:
        multi["X-Forwarded-For"] = [forwarded_for]
    multi["X-Forwarded-Proto"] = [proto]
    if port:
        multi["X-Forwarded-Port"] = [port]
    headers = {name: values[-1] for name, values in multi.items()}
    lower_map = {name.lower(): value for name, value in headers.items()}
    return RestHeaders(headers, multi, lower_map)


def rest_event(scope: Scope, route: HttpRoute, head: RestHeaders, body: bytes, request_id: str) -> dict[str, Any]:
    """The format 1.0 event of a request that `route` matched."""
    now = time.time()
    path = scope["path"]
    method = scope["method"]
    client = scope.get("client")
    host = head.lower.get("host", "localhost")
    resource = route.route_key if route.is_default else route.path
    query: dict[str, list[str]] = {}
    raw_query = scope.get("query_string", b"").decode("latin-1")
    for key, value in parse_qsl(raw_query, keep_blank_values=True):
        query.setdefault(key, []).append(value)
    path_params = scope.get("path_params")
    text, encoded = encode_body(body, head.lower.get("content-type", "text/plain"))
    return {
        "version": "1.0",
        "resource": resource,
        "path": path,
        "httpMethod": method,
        "headers": head.headers,
        "multiValueHeaders": head.multi,
        "queryStringParameters": {key: values[-1] for key, values in query.items()} if query else None,
        "multiValueQueryStringParameters": query or None,
        "requestContext": {
            "accountId": ACCOUNT,
            "apiId": "squall",
            "domainName": host,
            "domainPrefix": host.split(".", 1)[0],
            "extendedRequestId": request_id,
            "httpMethod": method,
            "identity": {**_NO_CALLER, "sourceIp": client[0] if client else "",
                         "userAgent": head.lower.get("user-agent", "")},
            "path": path,
            "protocol": f"HTTP/{scope.get('http_version', '1.1')}",
            "requestId": request_id,
            "requestTime": request_time(int(now)),
            "requestTimeEpoch": int(now * 1000),
            "resourceId": None,
            "resourcePath": resource,
            "stage": "$default",
        },
        "pathParameters": {k: str(v) for k, v in path_params.items()} if path_params else None,
        "stageVariables": None,
        "body": text,
        "isBase64Encoded": encoded,
    }
