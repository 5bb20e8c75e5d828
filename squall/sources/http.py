"""HTTP routes: API Gateway HTTP API routes to functions.

The gateway (`squall.gateway`) serves them; this source only declares them, so it has no
background services and nothing to provision.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import IntEnum, StrEnum
from typing import Any, ClassVar

from squall.core.lifecycle import Service
from squall.core.pipeline import InvokeRequest
from squall.errors import ConfigError
from squall.observability.spans import FaasTrigger, SpanKind, SpanShape
from squall.runtime.invocation import Invocation
from squall.sources.base import NodeContext, Source, Trigger

HTTP_METHODS = frozenset({"GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS", "ANY"})
_SEGMENT = r"([A-Za-z0-9._~\-]+|\{[A-Za-z_][A-Za-z0-9_]*\+?\})"
PATH_PATTERN = re.compile(rf"^/{_SEGMENT}?(/{_SEGMENT})*$")
#: The route key of the catch-all route: what no other route matches.
DEFAULT_ROUTE = "$default"


class PayloadFormat(StrEnum):
    """The event a route's function gets and the response rules it answers by, as an API
    Gateway Lambda integration's `payloadFormatVersion` sets them."""

    #: the REST API / Lambda proxy event (`httpMethod`, `multiValueHeaders`, ...); the
    #: handler must return a proxy response (`statusCode`, ...)
    V1 = "1.0"
    #: the HTTP API event (`routeKey`, `rawPath`, ...); any result is mapped to a response
    V2 = "2.0"


def payload_format(value: Any, where: str) -> PayloadFormat:
    """`value` as a PayloadFormat, or a ConfigError naming it and `where` it was given."""
    try:
        return PayloadFormat(value)
    except ValueError:
        raise ConfigError(f"invalid payload_format {value!r} for {where}: expected "
                          f"{' or '.join(repr(f.value) for f in PayloadFormat)}") from None


def check_request_schema(schema: Any, route_key: str) -> None:
    """A request schema must be a valid JSON Schema (checked against its draft's
    metaschema by `jsonschema`) and JSON itself, since the node gets it in the app's
    manifest. jsonschema is imported only by apps that declare a schema."""
    if not isinstance(schema, Mapping):
        raise ConfigError(f"request_schema of route {route_key} must be a JSON Schema object, "
                          f"not {type(schema).__name__}")
    from jsonschema import SchemaError, validators

    try:
        json.dumps(schema)
        validators.validator_for(schema).check_schema(schema)
    except SchemaError as exc:
        where = "".join(f"[{part!r}]" for part in exc.path)
        raise ConfigError(f"invalid request_schema of route {route_key}: {exc.message}"
                          f"{f' (at {where})' if where else ''}") from None
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"request_schema of route {route_key} is not JSON: {exc}") from None


class Segment(IntEnum):
    """How specific one path segment is, most specific first."""

    LITERAL = 0
    PARAMETER = 1
    GREEDY = 2


def specificity(path: str) -> tuple[bool, tuple[Segment, ...]]:
    """The order in which paths that match a request are tried, as API Gateway HTTP APIs
    select a route whatever the declaration order: full matches (exact segments before
    parameters, left to right) before greedy `{proxy+}` paths, the longest greedy prefix
    first. Two full matches of one request have as many segments, so the tuples compare
    segment by segment."""
    segments = tuple(Segment.GREEDY if part.endswith("+}") else Segment.PARAMETER if part.startswith("{")
                     else Segment.LITERAL for part in path.split("/")[1:] if part)
    return bool(segments) and segments[-1] is Segment.GREEDY, segments


@dataclass(frozen=True, kw_only=True)
class HttpRoute(Trigger):
    """`method path` -> function, as an API Gateway HTTP API route key; `ANY $default` is
    the catch-all route (route key `$default`)."""

    kind: ClassVar[str] = "http"

    method: str
    path: str
    #: the event and response rules of the route's integration ("1.0" or "2.0" is converted)
    payload_format: PayloadFormat | str = PayloadFormat.V2
    #: a JSON Schema every request body must satisfy (checked by the gateway, before the
    #: function runs); None: bodies pass through unchecked, as on an HTTP API
    request_schema: Mapping[str, Any] | None = field(default=None, hash=False)
    #: `METHOD /path`, as API Gateway names a route (kept: every request reads it)
    route_key: str = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if not isinstance(self.method, str) or self.method.upper() not in HTTP_METHODS:
            raise ConfigError(f"invalid HTTP method {self.method!r}: expected one of {sorted(HTTP_METHODS)}")
        object.__setattr__(self, "method", self.method.upper())
        if self.path == DEFAULT_ROUTE:
            if self.method != "ANY":
                raise ConfigError(f"the {DEFAULT_ROUTE} route takes every method: declare it as ANY, "
                                  f"not {self.method}")
            route_key = DEFAULT_ROUTE
        else:
            if not isinstance(self.path, str) or not PATH_PATTERN.match(self.path):
                raise ConfigError(f"invalid route path {self.path!r}: expected '/segment/{{param}}' form "
                                  f"or {DEFAULT_ROUTE!r}")
            if "+}" in self.path and not self.path.endswith("+}"):
                raise ConfigError(f"invalid route path {self.path!r}: a greedy {{name+}} parameter must be "
                                  "the last segment")
            route_key = f"{self.method} {self.path}"
        object.__setattr__(self, "route_key", route_key)
        object.__setattr__(self, "payload_format", payload_format(self.payload_format, f"route {route_key}"))
        if self.request_schema is not None:
            check_request_schema(self.request_schema, route_key)

    @property
    def is_default(self) -> bool:
        return self.route_key == DEFAULT_ROUTE

    def conflict(self, other: Trigger) -> str | None:
        if isinstance(other, HttpRoute) and other.route_key == self.route_key:
            return f"route {self.route_key} is declared twice"
        return None

    def describe(self) -> str:
        notes = [f"payload {self.payload_format}"] if self.payload_format is not PayloadFormat.V2 else []
        if self.request_schema is not None:
            notes.append("request schema")
        suffix = f" ({', '.join(notes)})" if notes else ""
        return f"route {self.method:<7} {self.path} -> {self.function}{suffix}"


class HttpSource(Source[HttpRoute]):
    kind = "http"
    trigger = HttpRoute

    def __init__(self, app: Any, triggers: list[HttpRoute]) -> None:
        super().__init__(app, triggers)
        self._formats = {t.route_key: t.payload_format for t in triggers}
        self._shapes: dict[tuple[Any, ...], SpanShape] = {}

    def services(self, node: NodeContext) -> list[Service]:
        return []

    def span(self, request: InvokeRequest, invocation: Invocation) -> SpanShape:
        """A SERVER span by the HTTP server conventions: `{method} {route}`, and the status
        the gateway answers with (an error's, the proxy response's `statusCode`, else 200;
        a REST route's result without one is a 502). A 5xx is an error of the span. Like
        requests (one route, path, status and client) share one shape, made once."""
        event = request.event if type(request.event) is dict else {}
        context = event.get("requestContext") or {}
        source = request.source
        v1 = self._formats.get(source) is PayloadFormat.V1
        if v1:
            http = context
            identity = context.get("identity") or {}
            method = event.get("httpMethod") or "_OTHER"
            query = ""
        else:
            http = identity = context.get("http") or {}
            method = http.get("method") or "_OTHER"
            query = event.get("rawQueryString") or ""
        key = (source, method, http.get("path", ""), _status(invocation, v1), query, http.get("protocol", ""),
               identity.get("sourceIp") or "", identity.get("userAgent") or "")
        shape = self._shapes.get(key)
        if shape is None:
            if len(self._shapes) >= MAX_SHAPES:
                self._shapes.clear()
            shape = self._shapes[key] = _shape(*key)
        return shape


#: the most span shapes an HTTP source keeps made (past that, it starts again)
MAX_SHAPES = 4096


def _shape(source: str, method: str, path: str, status: int, query: str, protocol: str, address: str,
           agent: str) -> SpanShape:
    attributes: dict[str, Any] = {"http.request.method": method, "url.path": path, "url.scheme": "http",
                                  "http.response.status_code": status}
    route = "" if source == DEFAULT_ROUTE else source.partition(" ")[2]
    if route:
        attributes["http.route"] = route
    if query:
        attributes["url.query"] = query
    if protocol.startswith("HTTP/"):
        attributes["network.protocol.version"] = protocol[5:]
    if address:
        attributes["client.address"] = address
    if agent:
        attributes["user_agent.original"] = agent
    return SpanShape(f"{method} {route}" if route else method, SpanKind.SERVER, FaasTrigger.HTTP, attributes,
                     str(status) if status >= 500 else None)


def _status(invocation: Invocation, rest: bool) -> int:
    if invocation.error is not None:
        return invocation.error.http_status
    result = invocation.result
    status = result.get("statusCode") if isinstance(result, dict) else None
    if isinstance(status, int) and not isinstance(status, bool):
        return status
    return 502 if rest else 200
