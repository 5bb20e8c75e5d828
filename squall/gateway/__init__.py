"""The HTTP gateway: API Gateway HTTP API semantics in front of a node."""

from squall.gateway.server import build_gateway

__all__ = ["build_gateway"]
