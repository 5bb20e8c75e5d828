"""A node: one process that runs an app's triggers, dispatch and runtime on a backend.

`squall dev` and `squall run` serve a node behind the HTTP gateway; `squall invoke` and
the test harness drive one directly. Several nodes may share a distributed backend.
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import time
import uuid
from dataclasses import dataclass, field
from typing import Any

from squall.app import App, QueueTrigger
from squall.backends import Backend, QueueConfig
from squall.dispatch.queues import ASYNC, SQS, QueueConsumer
from squall.metering import Meter
from squall.objects import open_objects
from squall.runtime.base import ClusterSlots, Runtime, RuntimeSettings
from squall.runtime.inline import InlineRuntime
from squall.runtime.invocation import Invocation
from squall.runtime.process import ProcessRuntime
from squall.services import async_queue

log = logging.getLogger("squall.node")

#: Lambda retries a failed asynchronous invocation twice.
ASYNC_ATTEMPTS = 3


@dataclass
class NodeSettings:
    runtime: RuntimeSettings = field(default_factory=RuntimeSettings)
    #: seconds an HTTP request waits for a free instance before a 429
    throttle_wait: float = 2.0
    #: first retry delay of a failed asynchronous invocation (doubles per attempt)
    async_retry_base: float = 1.0
    #: seconds between heartbeats in the node registry (the TTL is three times this)
    heartbeat: float = 2.0
    #: start queue consumers (the test harness drains queues by hand instead)
    consume: bool = True
    node_id: str = field(default_factory=lambda: f"{socket.gethostname()}-{os.getpid()}-{uuid.uuid4().hex[:6]}")


class Node:
    def __init__(self, app: App, backend: Backend, objects_url: str, settings: NodeSettings | None = None,
                 app_ref: str | None = None):
        """With `app_ref` functions run in forked instances; without, inline (tests)."""
        self.app = app
        self.backend = backend
        self.objects_url = objects_url
        self.settings = settings or NodeSettings()
        node_id = self.settings.node_id
        slots = ClusterSlots(backend, node_id) if backend.distributed else None
        self.runtime: Runtime
        if app_ref is None:
            self.runtime = InlineRuntime(app, backend, open_objects(objects_url), self.settings.runtime,
                                         self.invoke, node_id)
        else:
            self.runtime = ProcessRuntime(app, app_ref, backend.url, objects_url, self.settings.runtime,
                                          self.invoke, slots, node_id)
        self.meter = Meter(backend, node_id)
        self.consumers = [self._consumer(t) for t in app.queue_triggers]
        self.consumers += [self._async_consumer(name) for name in app.functions]
        self.started = time.time()
        self._heartbeat: asyncio.Task | None = None

    def _consumer(self, trigger: QueueTrigger) -> QueueConsumer:
        reserved = self.app.config(trigger.function).reserved_concurrency
        concurrency = trigger.max_concurrency if reserved is None else min(trigger.max_concurrency, reserved)
        return QueueConsumer(self.backend, self.invoke, trigger, concurrency, SQS)

    def _async_consumer(self, function: str) -> QueueConsumer:
        config = self.app.config(function)
        trigger = QueueTrigger(async_queue(function), function, batch_size=1, max_receive_count=ASYNC_ATTEMPTS,
                               visibility_timeout=config.timeout + 30, dlq=f"{async_queue(function)}-dlq")
        concurrency = 8 if config.reserved_concurrency is None else config.reserved_concurrency
        return QueueConsumer(self.backend, self.invoke, trigger, concurrency, ASYNC,
                             retry_base=self.settings.async_retry_base)

    async def start(self) -> None:
        await asyncio.to_thread(self._declare_queues)
        await self.runtime.start()
        self.meter.start()
        if self.settings.consume:
            for consumer in self.consumers:
                consumer.start()
        self._heartbeat = asyncio.create_task(self._heartbeat_forever())

    def _declare_queues(self) -> None:
        for name, config in self.app.declared_queues().items():
            self.backend.queue_declare(name, QueueConfig(**config))
        for consumer in self.consumers:
            if consumer.delivery is ASYNC:
                self.backend.queue_declare(consumer.trigger.queue,
                                           QueueConfig(**consumer.trigger.queue_config(), internal=True))
                self.backend.queue_declare(consumer.trigger.dlq, QueueConfig(dlq_of=consumer.trigger.queue, internal=True))

    async def stop(self) -> None:
        """Graceful: stop claiming, finish batches in flight, flush metering, leave."""
        await asyncio.gather(*(c.stop() for c in self.consumers))
        if self._heartbeat is not None:
            self._heartbeat.cancel()
        await self.runtime.stop()
        await self.meter.stop()
        try:
            await asyncio.to_thread(self.backend.node_remove, self.settings.node_id)
        except Exception as exc:  # noqa: BLE001 - leaving the registry is best effort; the TTL expires
            log.warning("could not deregister node: %s", exc)

    async def invoke(self, function: str, event: Any, trigger: str = "invoke",
                     wait: float | None = None) -> Invocation:
        """Run one invocation and meter it. Raises FunctionNotFound for an unknown name."""
        invocation = await self.runtime.invoke(function, event, trigger=trigger, wait=wait)
        self.meter.record(invocation)
        if not invocation.ok:
            log.info("%s %s %s: %s", function, invocation.request_id, invocation.outcome, invocation.error)
        return invocation

    def info(self) -> dict[str, Any]:
        """What this node reports in the registry (`squall nodes`)."""
        counts = self.runtime.instance_counts()
        return {"app": self.app.name, "pid": os.getpid(), "host": socket.gethostname(), "started": self.started,
                "instances": sum(c["instances"] for c in counts.values()),
                "busy": sum(c["busy"] for c in counts.values()),
                "invocations": self.meter.counts["invocations"]}

    async def _heartbeat_forever(self) -> None:
        interval = self.settings.heartbeat
        while True:
            try:
                await asyncio.to_thread(self.backend.node_heartbeat, self.settings.node_id, self.info(), interval * 3)
            except Exception as exc:  # noqa: BLE001 - a missed heartbeat is retried; the node keeps serving
                log.warning("heartbeat failed: %s", exc)
            await asyncio.sleep(interval)
