"""Queue consumers: claim -> invoke -> ack, retry with backoff, or dead-letter.

The same consumer serves SQS-style queue triggers (batches in the SQS event shape, partial
batch failure) and the internal queues of asynchronous invocations (one event per message,
the payload itself). The semantics follow SQS with a Lambda event source mapping:
at-least-once; a failed message stays invisible for a backoff (the visibility timeout,
doubled per receive, with jitter) and is delivered again; once received
`max_receive_count` times it moves to the dead-letter queue with its attributes.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import random
from dataclasses import dataclass
from typing import Any, Awaitable, Callable

from squall.app import QueueTrigger
from squall.aws import REGION, ACCOUNT, arn
from squall.backends import Backend, Message
from squall.errors import SquallError
from squall.runtime.invocation import Invocation

log = logging.getLogger("squall.queues")

Invoke = Callable[[str, Any, str], Awaitable[Invocation]]

#: SQS caps a message's delay / visibility extension at 15 minutes for retries here.
MAX_BACKOFF = 900.0
IDLE_POLL = (0.005, 0.25)


def sqs_event(messages: list[Message]) -> dict[str, Any]:
    """The event Lambda delivers for an SQS batch."""
    return {"Records": [{
        "messageId": m.id,
        "receiptHandle": m.receipt,
        "body": m.body,
        "attributes": {
            "ApproximateReceiveCount": str(m.receive_count),
            "SentTimestamp": str(int(m.sent_at * 1000)),
            "SenderId": ACCOUNT,
            "ApproximateFirstReceiveTimestamp": str(int(m.first_received_at * 1000)),
        },
        "messageAttributes": m.attributes,
        "md5OfBody": hashlib.md5(m.body.encode()).hexdigest(),
        "eventSource": "aws:sqs",
        "eventSourceARN": arn("sqs", m.queue),
        "awsRegion": REGION,
    } for m in messages]}


def batch_failures(invocation: Invocation, messages: list[Message]) -> set[str]:
    """Ids of the messages to retry, reading `batchItemFailures` as Lambda does.

    A failed invocation fails the whole batch; so does a response naming an id that is
    not in the batch.
    """
    everything = {m.id for m in messages}
    if not invocation.ok:
        return everything
    result = invocation.result
    if not isinstance(result, dict) or "batchItemFailures" not in result:
        return set()
    items = result["batchItemFailures"]
    if not isinstance(items, list):
        return everything
    failed = {item.get("itemIdentifier") if isinstance(item, dict) else None for item in items}
    return failed if failed <= everything else everything


def retry_delay(base: float, receive_count: int) -> float:
    """Exponential backoff with jitter: base * 2^(n-1), plus up to a quarter more."""
    delay = min(base * 2 ** max(0, receive_count - 1), MAX_BACKOFF)
    return delay + random.uniform(0, delay / 4)


@dataclass(frozen=True)
class Delivery:
    """How messages become an event, and which failed, for one kind of queue."""

    event: Callable[[list[Message]], Any]
    failures: Callable[[Invocation, list[Message]], set[str]]
    trigger: str


SQS = Delivery(sqs_event, batch_failures, "queue")
ASYNC = Delivery(lambda messages: json.loads(messages[0].body),
                 lambda invocation, messages: set() if invocation.ok else {messages[0].id}, "async")


class QueueConsumer:
    """Feeds one queue to one function with up to `concurrency` batches in flight."""

    def __init__(self, backend: Backend, invoke: Invoke, trigger: QueueTrigger, concurrency: int,
                 delivery: Delivery = SQS, retry_base: float | None = None):
        self.backend = backend
        self.invoke = invoke
        self.trigger = trigger
        self.concurrency = concurrency
        self.delivery = delivery
        self.retry_base = trigger.visibility_timeout if retry_base is None else retry_base
        self._stopping = asyncio.Event()
        self._tasks: set[asyncio.Task] = set()
        self._runner: asyncio.Task | None = None
        self._unreachable = False

    def start(self) -> None:
        if self.concurrency == 0:
            return  # reserved_concurrency=0 throttles the function: its messages wait, as on Lambda
        self._runner = asyncio.create_task(self._run(), name=f"consumer:{self.trigger.queue}")

    async def stop(self) -> None:
        """Stop claiming and let the batches in flight finish (and be acked)."""
        self._stopping.set()
        if self._runner is not None:
            await self._runner
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)

    def claim(self) -> list[Message]:
        t = self.trigger
        return self.backend.claim(t.queue, t.batch_size, t.visibility_timeout,
                                  max_receives=t.max_receive_count, dlq=t.dlq)

    async def process(self, messages: list[Message]) -> Invocation:
        """Invoke the function with one batch and settle every message."""
        invocation = await self.invoke(self.trigger.function, self.delivery.event(messages), self.delivery.trigger)
        failed = self.delivery.failures(invocation, messages)
        await asyncio.to_thread(self.settle, messages, failed)
        return invocation

    def settle(self, messages: list[Message], failed: set[str]) -> None:
        t = self.trigger
        done = [m.receipt for m in messages if m.id not in failed]
        if done:
            self.backend.ack(t.queue, done)
        for m in messages:
            if m.id not in failed:
                continue
            if m.receive_count >= t.max_receive_count:
                self.backend.dead_letter(t.queue, m.receipt, t.dlq)
            else:
                self.backend.release(t.queue, m.receipt, retry_delay(self.retry_base, m.receive_count))

    async def _run(self) -> None:
        permits = asyncio.Semaphore(self.concurrency)
        idle = IDLE_POLL[0]
        while not self._stopping.is_set():
            await permits.acquire()
            try:
                messages = await asyncio.to_thread(self.claim)
                if self._unreachable:
                    log.warning("queue %s: backend reachable again, consuming", self.trigger.queue)
                    self._unreachable = False
            except SquallError as exc:
                if not self._unreachable:
                    log.warning("queue %s: cannot claim messages, retrying with backoff: %s", self.trigger.queue, exc)
                self._unreachable = True
                messages = []
                idle = 1.0
            if not messages:
                permits.release()
                await self._pause(idle)
                idle = min(idle * 2, IDLE_POLL[1])
                continue
            idle = IDLE_POLL[0]
            task = asyncio.create_task(self._process(messages, permits))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    async def _process(self, messages: list[Message], permits: asyncio.Semaphore) -> None:
        try:
            await self.process(messages)
        except SquallError as exc:  # backend unreachable while settling: messages come back after the timeout
            log.warning("queue %s: cannot settle %d messages: %s", self.trigger.queue, len(messages), exc)
        finally:
            permits.release()

    async def _pause(self, seconds: float) -> None:
        try:
            await asyncio.wait_for(self._stopping.wait(), seconds)
        except asyncio.TimeoutError:
            pass
