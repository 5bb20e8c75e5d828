"""HTTP routes: API Gateway HTTP API routes to functions.

The gateway (`squall.gateway`) serves them; this source only declares them, so it has no
background services and nothing to provision.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from enum import IntEnum
from typing import ClassVar

from squall.core.lifecycle import Service
from squall.errors import ConfigError
from squall.sources.base import NodeContext, Source, Trigger

HTTP_METHODS = frozenset({"GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS", "ANY"})
_SEGMENT = r"([A-Za-z0-9._~\-]+|\{[A-Za-z_][A-Za-z0-9_]*\+?\})"
PATH_PATTERN = re.compile(rf"^/{_SEGMENT}?(/{_SEGMENT})*$")
#: The route key of the catch-all route: what no other route matches.
DEFAULT_ROUTE = "$default"


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
            object.__setattr__(self, "route_key", DEFAULT_ROUTE)
            return
        if not isinstance(self.path, str) or not PATH_PATTERN.match(self.path):
            raise ConfigError(f"invalid route path {self.path!r}: expected '/segment/{{param}}' form "
                              f"or {DEFAULT_ROUTE!r}")
        if "+}" in self.path and not self.path.endswith("+}"):
            raise ConfigError(f"invalid route path {self.path!r}: a greedy {{name+}} parameter must be "
                              "the last segment")
        object.__setattr__(self, "route_key", f"{self.method} {self.path}")

    @property
    def is_default(self) -> bool:
        return self.route_key == DEFAULT_ROUTE

    def conflict(self, other: Trigger) -> str | None:
        if isinstance(other, HttpRoute) and other.route_key == self.route_key:
            return f"route {self.route_key} is declared twice"
        return None

    def describe(self) -> str:
        return f"route {self.method:<7} {self.path} -> {self.function}"


class HttpSource(Source[HttpRoute]):
    kind = "http"
    trigger = HttpRoute

    def services(self, node: NodeContext) -> list[Service]:
        return []
