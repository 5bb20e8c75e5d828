"""`squall.testing`: test your app in-process, in a few lines.

```python
from squall.testing import Harness
from app import app

def test_create_item():
    with Harness(app) as h:
        assert h.post("/items", json={"id": "1"}).status_code == 201
        h.drain("audit")
        assert h.table("items").get("1") == {"id": "1"}
```

Handlers run inline (so mocks and breakpoints work) on the same dispatch code a node
uses: the gateway's events and status codes, SQS batches, retries and dead letters, on a
temporary SQLite backend whose clock only moves when you call `advance()`. The node's
services do not run in the background: `drain()` drives them one `step()` at a time.
Each handler thread has a current event loop, as a Lambda process has, so ASGI apps
behind Mangum and code calling `asyncio.get_event_loop()` run unmodified; the loops are
closed when the harness is.
"""

from __future__ import annotations

import asyncio
import shutil
import tempfile
import threading
import time
from collections.abc import Coroutine
from dataclasses import dataclass
from typing import Any, TypeVar

import httpx

from squall.app import App
from squall.backends import Message, QueueStats, open_backend
from squall.core.lifecycle import Progress
from squall.core.pipeline import InvokeRequest
from squall.errors import QueueNotFound
from squall.gateway import build_gateway
from squall.node import Node, NodeSettings
from squall.objects import open_objects
from squall.runtime.invocation import Invocation
from squall.services import Bucket, Queue, Table
from squall.sources.events import put_events
from squall.sources.publishing import Publisher, PublishResult, SubscriptionTally, tallies
from squall.sources.topics import app_topic

T = TypeVar("T")

#: Longer than any retry backoff, so advancing by it makes every released message visible.
RETRY_HORIZON = 1200.0


class ManualClock:
    """Starts at the real time; moves only when told to."""

    def __init__(self) -> None:
        self.now = time.time()

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@dataclass
class DrainResult:
    """What `drain()` or `step()` delivered: invocations (batches) and the messages in them."""

    batches: int = 0
    succeeded: int = 0
    failed: int = 0

    @classmethod
    def of(cls, progress: Progress) -> DrainResult:
        return cls(progress.invocations, progress.succeeded, progress.failed)


class Harness:
    def __init__(self, app: App) -> None:
        app.check_destinations()
        self.app = app
        self.clock = ManualClock()
        self._dir = tempfile.mkdtemp(prefix="squall-test-")
        self.backend = open_backend(f"sqlite:///{self._dir}/state.db", clock=self.clock)
        self._objects = open_objects(f"{self._dir}/objects")
        self.node = Node(app, self.backend, f"{self._dir}/objects", NodeSettings(throttle_wait=0.5))
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="squall-harness", daemon=True)
        self._thread.start()
        self._run(self.node.start(background=False))
        self._client = httpx.AsyncClient(transport=httpx.ASGITransport(app=build_gateway(self.node)),
                                         base_url="http://testserver")

    def _run(self, coroutine: Coroutine[Any, Any, T]) -> T:
        return asyncio.run_coroutine_threadsafe(coroutine, self._loop).result()

    # ---- HTTP ---------------------------------------------------------------------

    def request(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        """Send a request through the gateway (httpx arguments: json=, content=, params=, headers=)."""
        return self._run(self._client.request(method, path, **kwargs))

    def get(self, path: str, **kwargs: Any) -> httpx.Response:
        return self.request("GET", path, **kwargs)

    def post(self, path: str, **kwargs: Any) -> httpx.Response:
        return self.request("POST", path, **kwargs)

    def put(self, path: str, **kwargs: Any) -> httpx.Response:
        return self.request("PUT", path, **kwargs)

    def delete(self, path: str, **kwargs: Any) -> httpx.Response:
        return self.request("DELETE", path, **kwargs)

    # ---- functions ----------------------------------------------------------------

    def invoke(self, function: str, payload: Any = None) -> Any:
        """The function's result; raises FunctionError (or another InvocationError)."""
        return self.invocation(function, payload).unwrap()

    def invocation(self, function: str, payload: Any = None) -> Invocation:
        """The full Invocation record (outcome, duration, cold start...)."""
        return self._run(self.node.invoke(InvokeRequest(function, payload)))

    # ---- queues and tables --------------------------------------------------------

    def send(self, queue: str, body: str, delay_seconds: float = 0, attributes: dict | None = None, *,
             group_id: str | None = None, dedup_id: str | None = None) -> str:
        return Queue(self.backend, queue).send(body, delay_seconds, attributes, group_id=group_id, dedup_id=dedup_id)

    def put_events(self, entries: list[dict[str, Any]]) -> dict[str, Any]:
        """PutEvents, as `ctx.put_events` answers it; `drain()` routes and delivers the events."""
        return put_events(self.backend, entries)

    def drain(self, queue: str | None = None, max_batches: int = 10000) -> DrainResult:
        """Deliver messages (of `queue`, or of every queue) until none is left.

        Retries wait for their backoff: the clock is advanced past it, so a message that
        keeps failing ends in its dead-letter queue, exactly as it would on a node.
        """
        services = [s for s in self.node.services.all if s.consumes and (queue is None or queue in s.consumes)]
        if not services:
            raise QueueNotFound(f"no consumer for queue {queue!r}")
        queues = set().union(*(s.consumes for s in services))
        total = Progress()
        waited = False  # the clock was moved past every backoff, and nothing came of it yet
        while total.invocations < max_batches:
            progress = self._run(self.node.services.step(services))
            total += progress
            if progress:
                waited = False
                continue
            if waited or not any(self.backend.queue_stats(q).total for q in queues):
                break  # drained, or what is left cannot be delivered (a throttled function)
            self.clock.advance(RETRY_HORIZON)
            waited = True
        return DrainResult.of(total)

    def step(self) -> DrainResult:
        """One round of every service of the node — queue consumers, metering, retention,
        and whatever the app's sources run — as a node's background loops would."""
        return DrainResult.of(self._run(self.node.services.step()))

    def advance(self, seconds: float) -> DrainResult:
        """Move the backend's clock (delays, visibility timeouts, retries).

        Services that act at a time (schedules) run as the clock passes: it stops at each
        time one of them acts, and what they enqueue (a schedule's asynchronous invocations)
        is delivered before it moves on. Returns what was delivered (nothing for an app
        without schedules).
        """
        timed = [s for s in self.node.services.all if s.produces]
        produced = set().union(*(s.produces for s in timed))
        consumers = [s for s in self.node.services.all if s.consumes & produced]
        target = self.clock.now + seconds
        total = Progress()
        while True:
            wakes = [t for t in (self._run(s.wakes_at()) for s in timed) if t is not None]
            # and at each time something they enqueued becomes visible (a firing enqueued
            # ahead of its time, a retry's backoff)
            if produced:
                now = self.clock.now
                wakes += [t for t in self.backend.queues_next_visible(sorted(produced)).values() if t > now]
            self.clock.now = max(self.clock.now, min([target, *wakes]))
            if timed:
                self._run(self.node.services.step(timed))
                while progress := self._run(self.node.services.step(consumers)):
                    total += progress
            if self.clock.now >= target:
                return DrainResult.of(total)

    def queue_stats(self, queue: str) -> QueueStats:
        return self.backend.queue_stats(queue)

    def dead_letters(self, queue: str) -> list[Message]:
        """Messages in the dead-letter queue of `queue` (`async.<function>` for failed
        asynchronous invocations)."""
        config = self.backend.queue_config(queue)
        if config is None or not config.dlq:
            raise QueueNotFound(f"no dead-letter queue for queue {queue!r}")
        return self.backend.peek(config.dlq, 10000)

    # ---- topics -------------------------------------------------------------------

    def publish(self, topic: str, message: str, attributes: dict[str, Any] | None = None,
                subject: str | None = None, group_id: str | None = None, dedup_id: str | None = None
                ) -> PublishResult:
        """Publish as `ctx.publish` does; `drain()` then delivers to the subscribed functions."""
        return Publisher(self.backend).publish(app_topic(self.app, topic), message, attributes, subject, group_id,
                                               dedup_id)

    def deliveries(self, topic: str) -> dict[str, SubscriptionTally]:
        """What became of the topic's messages, per subscription (`function:NAME`, `queue:NAME`)."""
        return {t.endpoint: t for t in tallies(self.backend, app_topic(self.app, topic))}

    def table(self, name: str) -> Table:
        return Table(self.backend, name)

    def objects(self, bucket: str) -> Bucket:
        return Bucket(self._objects, bucket)

    # ---- lifecycle ----------------------------------------------------------------

    def close(self) -> None:
        self._run(self._client.aclose())
        self._run(self.node.stop())
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join()
        self._loop.close()
        self.backend.close()
        shutil.rmtree(self._dir, ignore_errors=True)

    def __enter__(self) -> Harness:
        return self

    def __exit__(self, *exc_info: Any) -> None:
        self.close()
