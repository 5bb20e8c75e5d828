"""The app's declarations as data: what the zygote sends and the node rebuilds."""

from __future__ import annotations

import dataclasses
import functools
import json

import pytest

from squall import App
from squall.errors import AppLoadError
from squall.manifest import Remote, describe, restore


class Handler:
    def __call__(self, event, ctx):
        return 1


def declared() -> App:
    app = App("shop", root="/srv/shop")
    app.function(Handler(), name="obj", timeout=5, memory_mb=256, log_format="JSON", application_log_level="DEBUG",
                 system_log_level="WARN", environment={"TABLE": "t"}, ephemeral_storage_mb=1024)
    app.function(functools.partial(lambda a, e, c: a, 1), name="part", reserved_concurrency=2,
                 provisioned_concurrency=1)

    @app.http("GET", "/items/{id}")
    def get_item(event, ctx):
        return 1

    @app.on_queue("orders", batch_size=3, dlq="orders-failed", visibility_timeout=40)
    def take(event, ctx):
        return 1

    return app


def test_a_manifest_round_trips_every_declaration_through_json():
    app = declared()
    rebuilt = restore(json.loads(json.dumps(describe(app))))
    assert rebuilt.name == "shop" and rebuilt.root == "/srv/shop"
    assert rebuilt.triggers == app.triggers
    for name, config in app.functions.items():
        again = rebuilt.functions[name]
        assert dataclasses.replace(again, handler=config.handler) == config  # every option, the logging ones too
        assert isinstance(again.handler, Remote)
    assert rebuilt.functions["obj"].handler.description.endswith("Handler")


def test_the_node_cannot_call_a_handler():
    rebuilt = restore(describe(declared()))
    with pytest.raises(RuntimeError, match="runs only in a function instance"):
        rebuilt.functions["obj"].handler({}, None)


@pytest.mark.parametrize("manifest", [
    {},
    {"name": "shop", "functions": [{"name": "f"}], "triggers": []},
    {"name": "bad name!", "functions": [], "triggers": []},
    {"name": "shop", "functions": [], "triggers": [{"kind": "no-such-kind", "module": "squall", "fields": {}}]},
    {"name": "shop", "functions": [], "triggers": [{"kind": "http", "module": "squall.sources.http",
                                                    "fields": {"method": "GET", "path": "no-slash"}}]},
])
def test_a_malformed_manifest_is_one_app_load_error(manifest):
    with pytest.raises(AppLoadError):
        restore(manifest)
