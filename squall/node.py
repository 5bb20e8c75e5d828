"""A node: one process that runs an app's sources, pipeline and runtime on a backend.

`squall dev` and `squall run` serve a node behind the HTTP gateway; `squall invoke` and
the test harness drive one directly. Several nodes may share a distributed backend.

The node knows no trigger kind. It asks every registered source (`squall.sources`) to
provision the backend and for its services, runs every invocation through one pipeline
(`squall.core.pipeline`: recursion detection, metering, then `NodeSettings.interceptors`), and starts
its services in order (`squall.core.lifecycle`): metering, retention, the instance
reaper, services shared by sources, the sources' own, and last the heartbeat, so a node
shows up in the registry only once it consumes.
"""

from __future__ import annotations

import asyncio
import os
import socket
import sys
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, TextIO, TypeVar

from squall.app import App
from squall.backends import Backend
from squall.cluster import Heartbeat
from squall.core.lifecycle import Service, Services
from squall.core.pipeline import Contain, Handler, Interceptor, InvokeRequest, chain
from squall.core.recursion import RecursionGuard
from squall.core.retention import DAY, Retention
from squall.errors import AppLoadError, FunctionError, FunctionNotFound
from squall.manifest import restore
from squall.objects import open_objects
from squall.observability.emf import METRICS_STREAM, EmfMetrics
from squall.observability.logs import LOGS_STREAM, LogSink
from squall.observability.metering import INVOCATIONS_STREAM, Meter, Metering
from squall.observability.recorder import Recorder
from squall.observability.settings import ObservabilitySettings
from squall.observability.tracing import tracing_for
from squall.runtime.base import Runtime, RuntimeSettings
from squall.runtime.inline import InlineRuntime
from squall.runtime.invocation import Invocation
from squall.runtime.process import ProcessRuntime, Zygote
from squall.runtime.slots import ClusterSlots
from squall.sources import Source, sources_for

S = TypeVar("S", bound=Service)


@dataclass
class NodeSettings:
    runtime: RuntimeSettings = field(default_factory=RuntimeSettings)
    #: seconds an HTTP request waits for a free instance before a 429
    throttle_wait: float = 2.0
    #: first retry delay of a failed asynchronous invocation (doubles per attempt)
    async_retry_base: float = 1.0
    #: seconds between heartbeats in the node registry (the TTL is three times this)
    heartbeat: float = 2.0
    #: seconds metering records are kept
    metering_retention: float = DAY
    #: traces, metrics and the stored function log
    observability: ObservabilitySettings = field(default_factory=ObservabilitySettings)
    #: interceptors every invocation passes through after metering, outermost first
    interceptors: list[Interceptor] = field(default_factory=list)
    node_id: str = field(default_factory=lambda: f"{socket.gethostname()}-{os.getpid()}-{uuid.uuid4().hex[:6]}")


class Node:
    def __init__(self, app: App, backend: Backend, objects_url: str, settings: NodeSettings | None = None,
                 zygote: Zygote | None = None, output: TextIO | None = None):
        """With a started `zygote` functions run in forked instances (see `Node.load`);
        without, inline, in this process (the test harness). `output`: where the
        functions' log is printed (default: stdout)."""
        self.app = app
        self.backend = backend
        self.objects_url = objects_url
        self.settings = settings or NodeSettings()
        node_id = self.settings.node_id
        observability = self.settings.observability
        #: the invocation counters behind /metrics, and the functions' EMF metrics (fed by the log sink)
        self.recorder = Recorder() if observability.enabled else None
        self.custom_metrics = EmfMetrics(backend, node_id) if observability.enabled else None
        #: what functions write: printed, and stored for `squall logs`
        self.logs = LogSink(backend, node_id, output or sys.stdout, store=observability.enabled,
                            listeners=[self.custom_metrics] if self.custom_metrics else [])
        self.runtime: Runtime
        if zygote is None:
            self.runtime = InlineRuntime(app, self._nested, backend, open_objects(objects_url),
                                         self.settings.runtime, node_id)
        else:
            slots = ClusterSlots(backend, node_id, backend.clock) if backend.distributed else None
            self.runtime = ProcessRuntime(app, self._nested, zygote, self.logs, self.settings.runtime, slots, node_id)
        #: open while the runtime can start instances (queue consumers claim only then)
        self.runtime_ready = self.runtime.ready
        self.meter = Meter(backend, node_id, recorder=self.recorder)
        self.sources: list[Source[Any]] = sources_for(app)
        #: spans of every invocation (None with observability off)
        tracing = tracing_for(self, observability) if observability.enabled else None
        metering = Metering(self.meter, [tracing.close] if tracing else None)  # which ends the span too
        # an interceptor of the settings that raises fails its invocation (metered), not the node
        extra = [Contain(), *self.settings.interceptors] if self.settings.interceptors else []
        #: run one invocation through the pipeline (FunctionNotFound for an unknown name); the
        #: composed chain itself, not a method around it: every invocation passes here
        # recursive loop detection first: a stopped invocation never ran, so it is not metered
        self.invoke: Handler = chain([RecursionGuard(self.recorder), metering, *([tracing] if tracing else []), *extra],
                                     self.runtime.invoke)
        self._shared: dict[type[Service], Service] = {}
        own = [service for source in self.sources for service in source.services(self)]
        self.services = Services([
            self.meter,
            self.logs,
            *([self.custom_metrics] if self.custom_metrics else []),
            *([tracing.tracer] if tracing else []),
            Retention(backend, node_id, {INVOCATIONS_STREAM: self.settings.metering_retention,
                                         LOGS_STREAM: observability.log_retention,
                                         METRICS_STREAM: self.settings.metering_retention,
                                         **(tracing.retention if tracing else {}),
                                         **{stream: seconds for source in self.sources
                                            for stream, seconds in source.retention().items()}},
                      caps=tracing.caps if tracing else None),
            *self.runtime.services(),
            *self._shared.values(),
            *own,
            Heartbeat(backend, node_id, self.info, self.settings.heartbeat),
        ])
        self.started = time.time()

    @classmethod
    async def load(cls, app_ref: str, backend: Backend, objects_url: str,
                   settings: NodeSettings | None = None, output: TextIO | None = None) -> Node:
        """A node for the app at `app_ref`, learnt without running its code here: the
        zygote imports it and describes it (squall.manifest). AppLoadError if it does not
        load. `output`: where the functions' log goes (default: stdout)."""
        zygote = Zygote(app_ref, backend.url, objects_url, output)
        try:
            app = restore(await zygote.start())
        except AppLoadError:
            await zygote.stop()
            raise
        return cls(app, backend, objects_url, settings, zygote=zygote, output=output)

    def shared(self, kind: type[S], factory: Callable[[], S]) -> S:
        """The one service of class `kind` that several sources use (see NodeContext)."""
        if kind not in self._shared:
            self._shared[kind] = factory()
        service = self._shared[kind]
        assert isinstance(service, kind)
        return service

    async def start(self, background: bool = True) -> None:
        """Provision every source, start the runtime and, unless `background` is False
        (the harness and `squall invoke` drive the node themselves), every service."""
        await asyncio.to_thread(self._provision)
        await self.runtime.start()
        if background:
            await self.services.start()

    def _provision(self) -> None:
        for source in self.sources:
            source.provision(self.backend)

    async def stop(self) -> None:
        """Graceful: every service stops taking work and settles (consumers ack what is in
        flight, metering flushes, the node leaves the registry), then the instances go."""
        await self.services.stop()
        await self.runtime.stop()

    async def _nested(self, request: InvokeRequest) -> Invocation:
        """A handler's `ctx.invoke`, back through the pipeline. A function this node does
        not know (the instance checked the name against its own app, which a restarted
        zygote may have loaded from a changed file, or it skipped the check) fails the
        call, as Lambda's Invoke does, rather than the calling invocation."""
        try:
            return await self.invoke(request)
        except FunctionNotFound as exc:
            return Invocation(request.request_id, request.function, request.trigger, time.time(), 0.0, 0,
                              error=FunctionError(str(exc), "ResourceNotFoundException"))

    def problems(self) -> dict[str, str]:
        """What keeps this node from doing its job, by part (empty: healthy)."""
        found = {"runtime": self.runtime.problem(), "backend": self.backend.problem()}
        return {part: problem for part, problem in found.items() if problem}

    def info(self) -> dict[str, Any]:
        """What this node reports in the registry (`squall nodes`)."""
        counts = self.runtime.instance_counts()
        problems = self.problems()
        return {"app": self.app.name, "pid": os.getpid(), "host": socket.gethostname(), "started": self.started,
                "instances": sum(c["instances"] for c in counts.values()),
                "busy": sum(c["busy"] for c in counts.values()),
                "invocations": self.meter.invocations,
                "healthy": not problems, "problems": problems}
