"""The inline runtime: handlers run in the caller's process, on worker threads.

Used by `squall.testing` so a user's tests can patch, step through and inspect their
handlers. It keeps the dispatch semantics (events, results, errors, concurrency caps,
metering) but not isolation: a timeout is reported once the handler returns, and memory
limits are not enforced. Each worker thread owns an event loop, as a Lambda process's
main thread has one, so `asyncio.get_event_loop()` (Mangum, for one) works in a handler.
"""

from __future__ import annotations

import asyncio
import contextvars
import threading
import time
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, Any, TypeVar

from squall.backends import Backend
from squall.core.pipeline import Handler, InvokeRequest
from squall.errors import FunctionTimeout
from squall.objects import ObjectStore
from squall.runtime import wire
from squall.runtime.base import Runtime, RuntimeSettings
from squall.runtime.context import Context
from squall.runtime.instance import max_memory_mb
from squall.runtime.invocation import Invocation, run_handler
from squall.runtime.slots import throttled

if TYPE_CHECKING:
    from squall.app import App, FunctionConfig

T = TypeVar("T")


class HandlerThreads:
    """Worker threads for handlers, each with its own event loop, kept for the thread's life.

    A loop is made on a thread's first invocation and set as the thread's current loop
    before every invocation (a handler's `asyncio.run()` unsets it on return; one that
    closed it gets a new one). `close()` cancels what handlers left pending and closes
    every loop, as `asyncio.run` would; it blocks, so call it off the node's loop.
    """

    def __init__(self, workers: int) -> None:
        self._executor = ThreadPoolExecutor(workers, thread_name_prefix="squall-handler")
        self._local = threading.local()
        self._runners: list[asyncio.Runner] = []
        self._lock = threading.Lock()

    async def run(self, fn: Callable[..., T], *args: Any) -> T:
        """`fn(*args)` on a worker thread, in a copy of the caller's context (as `asyncio.to_thread`)."""
        context = contextvars.copy_context()
        return await asyncio.get_running_loop().run_in_executor(self._executor, context.run, self._call, fn, args)

    def _call(self, fn: Callable[..., T], args: tuple[Any, ...]) -> T:
        runner: asyncio.Runner | None = getattr(self._local, "runner", None)
        if runner is None or runner.get_loop().is_closed():
            runner = self._local.runner = asyncio.Runner()
            with self._lock:
                self._runners.append(runner)
        asyncio.set_event_loop(runner.get_loop())
        return fn(*args)

    def close(self) -> None:
        self._executor.shutdown(wait=True)
        for runner in self._runners:
            if not runner.get_loop().is_closed():
                runner.close()
        self._runners.clear()


class InlineRuntime(Runtime):
    def __init__(self, app: App, nested: Handler, backend: Backend, objects: ObjectStore,
                 settings: RuntimeSettings | None = None, node: str = ""):
        super().__init__(app, nested, settings, None, node)
        self.backend = backend
        self.objects = objects
        self._started: set[str] = set()
        self._limits: dict[str, asyncio.Semaphore] = {}
        self._known_queues: set[str] = set()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._threads = HandlerThreads(self.settings.max_instances)

    async def start(self) -> None:
        self._loop = asyncio.get_running_loop()

    async def stop(self) -> None:
        await asyncio.to_thread(self._threads.close)

    async def _run(self, config: FunctionConfig, request: InvokeRequest) -> Invocation:
        limit = self._limits.setdefault(config.name, asyncio.Semaphore(
            config.reserved_concurrency if config.reserved_concurrency is not None else self.settings.max_instances))
        try:
            await asyncio.wait_for(limit.acquire(), request.wait)
        except TimeoutError:
            raise throttled(config.name) from None
        try:
            cold = config.name not in self._started
            began = time.perf_counter()
            handler = self.app.resolve(config.name)
            init_ms = (time.perf_counter() - began) * 1000 if cold else None
            self._started.add(config.name)
            start = time.time()
            ctx = Context(self.app, config.name, request.request_id, start + config.timeout, lambda: self.backend,
                          self._call, self._known_queues, lambda: self.objects, request.headers)
            began = time.perf_counter()
            outcome = await self._threads.run(run_handler, handler, request.event, ctx)
            duration = (time.perf_counter() - began) * 1000
        finally:
            limit.release()
        invocation = Invocation(request.request_id, config.name, request.trigger, start, duration, config.memory_mb,
                                cold=cold, init_ms=init_ms, max_memory_mb=max_memory_mb())
        if duration > config.timeout * 1000:
            invocation.error = FunctionTimeout(f"Task timed out after {config.timeout:.2f} seconds",
                                               "Sandbox.Timedout")
        elif outcome.error is None:
            invocation.result = wire.loads(outcome.payload)
        else:
            invocation.error = outcome.error
        return invocation

    def _call(self, function: str, payload: str, headers: Mapping[str, str]) -> Any:
        """ctx.invoke from a handler thread: run the invocation on the node's loop."""
        assert self._loop is not None
        request = InvokeRequest(function, wire.loads(payload), headers=dict(headers))

        async def nested() -> Invocation:  # run_coroutine_threadsafe takes a coroutine, not any awaitable
            return await self.nested(request)

        return asyncio.run_coroutine_threadsafe(nested(), self._loop).result().unwrap()
