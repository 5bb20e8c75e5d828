"""The HTTP gateway: API Gateway HTTP API semantics in front of a node."""

from squall.gateway.protocol import gateway_protocol
from squall.gateway.server import build_gateway
from squall.gateway.settings import GatewaySettings

__all__ = ["GatewaySettings", "build_gateway", "gateway_protocol"]
