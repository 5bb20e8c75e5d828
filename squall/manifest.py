"""An app's declarations as data: how a node learns an app without running its code.

The zygote imports the app (it has to: instances are forked from it) and sends the node
`describe(app)` as JSON; the node rebuilds an `App` from it with `restore`. The node
never imports the app file, so nothing an app does at import time (module-level code, a
module in the app directory named like a standard one) runs in the node, outside every
limit.

Functions arrive with their limits and a handler the node cannot call (`Remote`).
Triggers arrive as their kind's dataclass, rebuilt (and so checked again) from its
fields. A trigger kind's source runs in the node, so it must be installed code: a kind
whose module lives in the app's directory is refused with a clear error.
"""

from __future__ import annotations

import dataclasses
import importlib
import sys
from pathlib import Path
from typing import Any

from squall.app import FUNCTION_OPTIONS, App, FunctionConfig
from squall.errors import AppLoadError, ConfigError, SquallError
from squall.runtime.environment import handler_name
from squall.sources import Trigger, source_for


class Remote:
    """The handler of a function as the node sees it: a name. It runs only in instances."""

    def __init__(self, description: str):
        self.description = description

    def __call__(self, event: Any, context: Any) -> Any:
        raise RuntimeError(f"{self.description} runs only in a function instance, not in the node")

    def __repr__(self) -> str:
        return f"Remote({self.description!r})"


def describe(app: App) -> dict[str, Any]:
    """The app's declarations as JSON-ready data."""
    functions = []
    for config in app.functions.values():
        functions.append({"name": config.name, "handler": handler_name(config),
                          **{k: getattr(config, k) for k in FUNCTION_OPTIONS}})
    triggers = []
    for trigger in app.triggers:
        kind = type(trigger)
        fields = {f.name: getattr(trigger, f.name) for f in dataclasses.fields(trigger) if f.init}
        triggers.append({"kind": kind.kind, "module": kind.__module__,
                         "file": getattr(sys.modules.get(kind.__module__), "__file__", None), "fields": fields})
    return {"name": app.name, "root": app.root, "functions": functions, "triggers": triggers}


def restore(manifest: dict[str, Any]) -> App:
    """The App a manifest describes, for a node: AppLoadError (one line) if it cannot be."""
    try:
        app = App(manifest["name"], root=manifest.get("root"))
        for entry in manifest["functions"]:
            limits = {k: entry[k] for k in FUNCTION_OPTIONS}
            app.functions[entry["name"]] = FunctionConfig(entry["name"], Remote(entry["handler"]), **limits)
        for entry in manifest["triggers"]:
            app.triggers.append(_trigger(entry, app.root))
    except SquallError as exc:
        raise AppLoadError(f"the app's declarations cannot be used by the node: {exc}") from None
    except (KeyError, TypeError, ValueError) as exc:
        raise AppLoadError(f"malformed app manifest: {type(exc).__name__}: {exc}") from None
    return app


def _trigger(entry: dict[str, Any], root: str | None) -> Trigger:
    """Rebuild one trigger, importing its kind's module if the node does not have it."""
    module = entry["module"]
    if module not in sys.modules:
        origin = entry.get("file")
        if root and origin and Path(origin).resolve().is_relative_to(Path(root).resolve()):
            raise ConfigError(f"trigger kind {entry['kind']!r} is defined in the app ({Path(origin).name}); a "
                              f"source runs in the node, so it must be installed code (a package on the path)")
        try:
            importlib.import_module(module)
        except ImportError as exc:
            raise ConfigError(f"trigger kind {entry['kind']!r} comes from module {module!r}, which the node "
                              f"cannot import: {exc}") from None
    kind = _trigger_class(entry["kind"])
    fields = {k: _frozen(v) for k, v in entry["fields"].items()}
    trigger = kind(**fields)
    source_for(trigger)
    return trigger


def _trigger_class(kind: str) -> type[Trigger]:
    from squall.sources import registered

    source = registered(kind)
    if source is None or source.trigger is None:
        raise ConfigError(f"no source is registered for trigger kind {kind!r}")
    return source.trigger


def _frozen(value: Any) -> Any:
    """JSON gives lists; a frozen trigger holds tuples."""
    return tuple(_frozen(v) for v in value) if isinstance(value, list) else value
