"""Helpers of the unit tests: invocations and messages made by hand, a counting backend
proxy, and waiting on a running loop."""

from __future__ import annotations

import asyncio
import inspect
from collections.abc import Callable
from typing import Any

from squall.backends import Backend, Message
from squall.errors import InvocationError
from squall.runtime.invocation import Invocation


def invocation(result: Any = None, error: InvocationError | None = None, **fields: Any) -> Invocation:
    """A finished invocation of function `f`, successful unless `error` is given."""
    values: dict[str, Any] = dict(request_id="req-1", function="f", trigger="queue", start=1_700_000_000.0,
                                  duration_ms=12.5, memory_mb=128)
    values.update(fields)
    return Invocation(result=result, error=error, **values)


def message(id: str = "m1", body: str = "{}", receive_count: int = 1, queue: str = "q") -> Message:
    """A received message that no backend has seen (for the pure functions)."""
    return Message(id=id, queue=queue, body=body, attributes={}, receipt=f"r-{id}", receive_count=receive_count,
                   sent_at=1_700_000_000.0, first_received_at=1_700_000_001.0)


class CountingBackend:
    """Stands for a backend: records the name of every method called (from any thread),
    and raises an exception queued with `fail_once` instead of calling through."""

    def __init__(self, backend: Backend) -> None:
        self._backend = backend
        self.calls: list[str] = []
        self._failures: dict[str, list[BaseException]] = {}

    def fail_once(self, method: str, exc: BaseException) -> None:
        self._failures.setdefault(method, []).append(exc)

    def __getattr__(self, name: str) -> Any:
        attr = getattr(self._backend, name)
        if not inspect.ismethod(attr):  # the clock, the URL
            return attr

        def call(*args: Any, **kwargs: Any) -> Any:
            self.calls.append(name)
            if self._failures.get(name):
                raise self._failures[name].pop(0)
            return attr(*args, **kwargs)

        return call


async def until(predicate: Callable[[], bool], timeout: float = 5.0, what: str = "condition") -> None:
    """Let the loop run until `predicate()` holds; AssertionError after `timeout` seconds."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not predicate():
        if loop.time() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.002)
