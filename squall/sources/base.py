"""What a trigger kind is made of: a `Trigger` declaration and the `Source` that serves it.

A trigger kind is one module under `squall/sources/` with

- a frozen `Trigger` dataclass: what the user declares (checked in `__post_init__`, so a
  bad declaration fails where it is written, with a `ConfigError` naming the problem);
- a `Source`: given the app's triggers of its kind, it provisions what they need in the
  backend (idempotently: every node and every restart does it again) and hands the node
  the background services that deliver events (`squall.core.lifecycle.Service`);
- a `register(...)` call (built-in kinds in `squall/sources/__init__.py`).

Nothing else in Squall names a trigger kind: the node, its start-up log, the CLI and the
test harness iterate over the registered sources. ARCHITECTURE.md has the recipe.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, ClassVar, Generic, Protocol, TypeVar

from squall.backends import Backend
from squall.core.health import Gate
from squall.core.lifecycle import Service
from squall.core.pipeline import Handler, InvokeRequest
from squall.observability.spans import SpanShape
from squall.runtime.invocation import Invocation

if TYPE_CHECKING:
    from squall.app import App, FunctionConfig
    from squall.node import NodeSettings

S = TypeVar("S", bound=Service)


@dataclass(frozen=True, kw_only=True)
class Trigger:
    """A declaration that events of some kind invoke a function.

    `function` is filled in by `App` once the handler is known (`dataclasses.replace`,
    which checks the fields again).
    """

    #: the kind of source, as `Source.kind` and as metering records it
    kind: ClassVar[str]

    function: str = ""

    def __post_init__(self) -> None:
        """Subclasses check their fields here (calling this one is harmless)."""

    def conflict(self, other: Trigger) -> str | None:
        """Why this trigger cannot be declared beside `other` (None: it can)."""
        return None

    def describe(self) -> str:
        """One line for the node's start-up log."""
        return f"{self.kind} -> {self.function}"


class NodeContext(Protocol):
    """What a source may use of the node it runs on."""

    app: App
    backend: Backend
    settings: NodeSettings

    #: runs an invocation through the node's pipeline
    invoke: Handler
    #: open while the runtime can start instances: a source that pulls work (a queue
    #: consumer) takes none while it is closed
    runtime_ready: Gate

    def shared(self, kind: type[S], factory: Callable[[], S]) -> S:
        """The node's one service of class `kind`, which several sources use: made by
        `factory` on the first request, and started before the services that asked."""
        ...


T = TypeVar("T", bound=Trigger)


class Source(ABC, Generic[T]):
    """Serves every trigger of one kind in an app. See the module docstring."""

    #: the trigger kind; equal to `trigger.kind` unless the source is implicit
    kind: ClassVar[str]
    #: the declaration it serves; None for an implicit source, which serves every function
    trigger: ClassVar[type[Trigger] | None]

    def __init__(self, app: App, triggers: list[T]) -> None:
        self.app = app
        self.triggers = triggers

    def provision(self, backend: Backend) -> None:  # noqa: B027 - most sources need nothing
        """Create what the triggers need in the backend. Idempotent."""

    @abstractmethod
    def services(self, node: NodeContext) -> list[Service]:
        """The background services that deliver this source's events on `node`."""

    def retention(self) -> dict[str, float]:
        """Seconds each of the source's streams keeps its records, for the node's stream
        retention (streams not named keep the default)."""
        return {}

    def describe(self) -> list[str]:
        """Lines for the node's start-up log."""
        return [trigger.describe() for trigger in self.triggers]

    def span(self, request: InvokeRequest, invocation: Invocation) -> SpanShape | None:
        """How an invocation from this source shows in a trace (`squall.observability.tracing`):
        its span's name and kind, `faas.trigger`, and the attributes of the trigger's own
        conventions. None: a plain FaaS span (trigger `other`). Runs for every traced
        invocation, so it only reads what the request and invocation hold."""
        return None

    def function(self, trigger: T) -> FunctionConfig:
        return self.app.config(trigger.function)
