"""A route's Lambda integration: how its requests become events and its results
responses, by its payload format, and the validator of its request bodies, if any.

Built once per route with the gateway, so a request pays only for what its route uses.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, Generic, TypeVar

from starlette.types import Scope

from squall.events.apigw import http_event, request_headers
from squall.events.apigw_v1 import RestHeaders, rest_event, rest_headers
from squall.gateway.responses import HttpResponse, http_response, rest_response
from squall.sources.http import HttpRoute, PayloadFormat

if TYPE_CHECKING:
    from squall.gateway.validation import BodyValidator

#: a format's parsed request headers
Head = TypeVar("Head")


class Integration(ABC, Generic[Head]):
    """One route's integration (see the module docstring)."""

    def __init__(self, route: HttpRoute):
        self.route = route
        self.validator: BodyValidator | None = None
        if route.request_schema is not None:  # jsonschema is imported only by apps that use it
            from squall.gateway.validation import BodyValidator

            self.validator = BodyValidator(route.request_schema)

    @abstractmethod
    def headers(self, scope: Scope) -> tuple[Head, Mapping[str, str]]:
        """The request's headers as the event carries them, and by lower-case name (the
        last value) for the gateway's own checks."""

    @abstractmethod
    def event(self, scope: Scope, head: Head, body: bytes, request_id: str) -> dict[str, Any]:
        """The event the function gets."""

    @abstractmethod
    def response(self, result: Any, max_bytes: int) -> HttpResponse:
        """The response to the handler's result; MalformedResponse or ResponseTooLarge."""


class HttpApiIntegration(Integration[tuple[dict[str, str], list[str]]]):
    """Payload format 2.0: the HTTP API event; results mapped as HTTP APIs infer them."""

    def headers(self, scope: Scope) -> tuple[tuple[dict[str, str], list[str]], Mapping[str, str]]:
        headers, cookies = request_headers(scope)
        return (headers, cookies), headers

    def event(self, scope: Scope, head: tuple[dict[str, str], list[str]], body: bytes,
              request_id: str) -> dict[str, Any]:
        return http_event(scope, self.route, head[0], head[1], body, request_id)

    def response(self, result: Any, max_bytes: int) -> HttpResponse:
        return http_response(result, max_bytes)


class RestIntegration(Integration[RestHeaders]):
    """Payload format 1.0: the REST API (Lambda proxy) event; results must be proxy responses."""

    def headers(self, scope: Scope) -> tuple[RestHeaders, Mapping[str, str]]:
        head = rest_headers(scope)
        return head, head.lower

    def event(self, scope: Scope, head: RestHeaders, body: bytes, request_id: str) -> dict[str, Any]:
        return rest_event(scope, self.route, head, body, request_id)

    def response(self, result: Any, max_bytes: int) -> HttpResponse:
        return rest_response(result, max_bytes)


def integration_for(route: HttpRoute) -> Integration[Any]:
    """The integration of a route, by its payload format."""
    if route.payload_format is PayloadFormat.V1:
        return RestIntegration(route)
    return HttpApiIntegration(route)
