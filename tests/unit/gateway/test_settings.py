"""GatewaySettings refuses limits that would switch a protection off; routing_path keeps
an encoded slash inside its segment, as API Gateway does."""

from __future__ import annotations

import pytest

from squall.errors import ConfigError
from squall.gateway import GatewaySettings
from squall.gateway.server import routing_path


def test_the_defaults_are_api_gateways_and_lambdas_limits():
    settings = GatewaySettings()
    assert (settings.max_head_bytes, settings.max_body_bytes, settings.max_response_bytes) == \
        (10_240, 6 * 1024 * 1024, 6_291_556)


@pytest.mark.parametrize("field, value", [("max_head_bytes", 0), ("max_headers", 0), ("max_connections", -1),
                                          ("max_body_bytes", 0), ("max_response_bytes", 0),
                                          ("header_timeout", 0), ("idle_timeout", -1.0),
                                          ("header_timeout", float("nan"))])
def test_a_limit_that_would_disable_itself_is_a_config_error(field, value):
    with pytest.raises(ConfigError, match=field):
        GatewaySettings(**{field: value})


@pytest.mark.parametrize("raw, path", [
    (b"/items/a%2Fb", "/items/a%2Fb"),
    (b"/items/a%2fb", "/items/a%2Fb"),
    (b"/items/a%20b%2F%C3%A9", "/items/a b%2Fé"),
    (b"/a%252Fb", "/a%2Fb"),  # an encoded percent decodes to a literal "%2F"
    (b"/%2F%2F", "/%2F%2F"),
])
def test_routing_path_decodes_every_escape_but_an_encoded_slash(raw, path):
    assert routing_path(raw) == path
