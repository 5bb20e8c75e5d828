"""What the gateway allows a client and a handler: API Gateway's and Lambda's quotas where
they have one, and a few seconds for the timeouts API Gateway does not publish."""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass

from squall.aws import MAX_RESPONSE_BYTES
from squall.errors import ConfigError

#: Lambda's synchronous invocation payload limit, for requests (6 MiB)
MAX_BODY_BYTES = 6 * 1024 * 1024
#: HTTP API's quota "total combined size of request line and header values" (not adjustable)
MAX_HEAD_BYTES = 10_240


@dataclass(frozen=True, slots=True)
class GatewaySettings:
    """The limits of one node's HTTP listener; `squall run` sets them from its options."""

    #: request line plus header values, in bytes (431 over it)
    max_head_bytes: int = MAX_HEAD_BYTES
    #: header fields per request (431 over it); API Gateway publishes no count, this is Envoy's default
    max_headers: int = 100
    #: seconds a client has, from connecting (or from the first byte of a later request on a
    #: kept-alive connection), to send the request line and headers: then 408 and closed
    header_timeout: float = 10.0
    #: seconds a client has, from the end of a request's head, to send its body: then 408 and
    #: closed (API Gateway's integration timeout, 30 s, bounds a whole request the same way)
    body_timeout: float = 30.0
    #: seconds a kept-alive connection may sit idle between requests before it is closed
    idle_timeout: float = 5.0
    #: open connections per node; the first request of one beyond it gets 503 and is closed
    max_connections: int = 1000
    #: request body bytes (413 over it)
    max_body_bytes: int = MAX_BODY_BYTES
    #: response payload bytes (502 `Function.ResponseSizeTooLarge` over it)
    max_response_bytes: int = MAX_RESPONSE_BYTES
    #: the reverse proxies whose own `X-Forwarded-For` / `-Proto` are believed: addresses
    #: and networks, comma-separated, or `*` (uvicorn's `forwarded_allow_ips`)
    forwarded_allow_ips: str = "127.0.0.1"

    def __post_init__(self) -> None:
        for name in ("max_head_bytes", "max_headers", "max_connections", "max_body_bytes", "max_response_bytes"):
            if getattr(self, name) < 1:
                raise ConfigError(f"{name} must be at least 1, not {getattr(self, name)!r}")
        for name in ("header_timeout", "body_timeout", "idle_timeout"):
            if not getattr(self, name) > 0:
                raise ConfigError(f"{name} must be above 0 seconds, not {getattr(self, name)!r}")
        for entry in self.forwarded_allow_ips.split(","):
            if entry.strip() != "*":
                try:
                    ipaddress.ip_network(entry.strip())
                except ValueError:
                    raise ConfigError(f"forwarded_allow_ips: {entry.strip()!r} is not an IP address, a network "
                                      f"or '*'") from None
