"""What every runtime offers the dispatch layer, and the pieces both runtimes share."""

from __future__ import annotations

import time
from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

from squall.core.health import Gate
from squall.core.lifecycle import Service
from squall.core.pipeline import Handler, InvokeRequest
from squall.errors import InvocationError
from squall.runtime.invocation import Invocation
from squall.runtime.slots import ClusterSlots, Slot

if TYPE_CHECKING:
    from squall.app import App, FunctionConfig


@dataclass
class RuntimeSettings:
    #: seconds an idle instance is kept warm before it is reaped (scale to zero)
    keep_alive: float = 300.0
    #: concurrent instances of a function without reserved_concurrency, per node
    max_instances: int = 64


class FunctionLog(Protocol):
    """Where a runtime puts what functions write (squall.observability.logs.LogSink)."""

    def write(self, function: str, request_id: str, trace_id: str, text: str) -> None: ...


class Runtime(ABC):
    """Runs invocations of an app's functions and reports what each one cost.

    `nested` is the node's pipeline: a handler's `ctx.invoke` goes back through it, so a
    nested invocation is metered (and traced) like any other.
    """

    def __init__(self, app: App, nested: Handler, settings: RuntimeSettings | None = None,
                 slots: ClusterSlots | None = None, node: str = ""):
        self.app = app
        self.settings = settings or RuntimeSettings()
        self.nested = nested
        self.slots = slots
        self.node = node
        #: open while instances can start; queue consumers claim only while it is
        self.ready = Gate()

    async def start(self) -> None:  # noqa: B027 - optional hook; a runtime may need no preparation
        """Prepare (and pre-warm provisioned instances)."""

    async def stop(self) -> None:  # noqa: B027 - optional hook; the inline runtime needs no stop
        """Release every instance."""

    async def invoke(self, request: InvokeRequest) -> Invocation:
        """Run one invocation. Never raises for what the function did: the error is in
        the returned Invocation. `request.wait` bounds the time spent waiting for a free
        instance (None: wait as long as it takes); past it the outcome is `throttled`.
        Raises FunctionNotFound for an unknown function.
        """
        config = self.app.config(request.function)
        start = time.time()
        slot: Slot | None = None
        try:
            if self.slots is not None and config.reserved_concurrency is not None:
                slot = await self.slots.acquire(config, config.reserved_concurrency, request.wait)
            invocation = await self._run(config, request)
        except InvocationError as error:
            invocation = Invocation(request.request_id, request.function, request.trigger, start,
                                    (time.time() - start) * 1000, config.memory_mb, error=error)
        finally:
            if slot is not None and self.slots is not None:
                await self.slots.release(config, slot)
        invocation.node = self.node
        return invocation

    @abstractmethod
    async def _run(self, config: FunctionConfig, request: InvokeRequest) -> Invocation:
        """Run on an instance; raise InvocationError for failures before the handler ran."""

    def services(self) -> list[Service]:
        """The runtime's own background loops (the instance reaper)."""
        return []

    def problem(self) -> str | None:
        """Why the runtime cannot run invocations now (None: it can)."""
        return self.ready.reason

    def instance_counts(self) -> dict[str, dict[str, int]]:
        """Per function: instances alive and busy (for the dashboard and `squall nodes`)."""
        return {}
