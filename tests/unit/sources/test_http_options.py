"""The http route options `payload_format=` and `request_schema=`, checked at declaration."""

from __future__ import annotations

import json

import pytest

from squall import App
from squall.errors import ConfigError
from squall.manifest import describe, restore
from squall.sources.http import PayloadFormat


def handler(event, ctx):
    return None


def test_payload_format_is_app_wide_unless_a_route_sets_its_own():
    app = App("shop", payload_format="1.0")
    app.http("GET", "/a", handler, name="a")
    app.http("GET", "/b", handler, name="b", payload_format="2.0")
    assert [route.payload_format for route in app.routes] == [PayloadFormat.V1, PayloadFormat.V2]
    assert App("plain").payload_format is PayloadFormat.V2


def test_a_bad_payload_format_names_the_value_and_where():
    with pytest.raises(ConfigError, match=r"invalid payload_format '3.0' for app 'shop': expected '1.0' or '2.0'"):
        App("shop", payload_format="3.0")
    with pytest.raises(ConfigError, match=r"invalid payload_format 1 for route GET /a"):
        App("shop").http("GET", "/a", handler, payload_format=1)


@pytest.mark.parametrize(("schema", "complaint"), [
    ({"type": "nope"}, r"invalid request_schema of route POST /orders: 'nope' is not valid .* \(at \['type'\]\)"),
    ({"required": "id"}, r"'id' is not of type 'array' \(at \['required'\]\)"),
    (["not", "an", "object"], r"request_schema of route POST /orders must be a JSON Schema object, not list"),
    ({"default": {1, 2}}, r"request_schema of route POST /orders is not JSON"),
])
def test_a_bad_request_schema_is_refused_naming_the_route(schema, complaint):
    with pytest.raises(ConfigError, match=complaint):
        App("shop").http("POST", "/orders", handler, request_schema=schema)


def test_the_options_reach_the_node_through_the_manifest():
    app = App("shop", payload_format="1.0")
    app.http("POST", "/orders", handler, request_schema={"type": "object", "required": ["id"]})
    [route] = restore(json.loads(json.dumps(describe(app)))).routes  # as the zygote sends it
    assert route.payload_format is PayloadFormat.V1
    assert route.request_schema == {"type": "object", "required": ["id"]}
    assert route.describe() == "route POST    /orders -> handler (payload 1.0, request schema)"
