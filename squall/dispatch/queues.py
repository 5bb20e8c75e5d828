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
import contextlib
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
#: most messages one claim takes (at least one whole batch)
CLAIM_LIMIT = 1000


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
    """Feeds one queue to one function with up to `concurrency` batches in flight.

    One loop (the pump) does all the backend work: each turn settles every batch that
    finished since the last turn and claims enough messages for every free slot, both in
    one worker-thread call. Under load a turn serves several batches, so the backend round
    trips and thread hops per message shrink as the rate grows instead of staying at two
    of each per batch.
    """

    def __init__(self, backend: Backend, invoke: Invoke, trigger: QueueTrigger, concurrency: int,
                 delivery: Delivery = SQS, retry_base: float | None = None):
        self.backend = backend
        self.invoke = invoke
        self.trigger = trigger
        self.concurrency = concurrency
        self.delivery = delivery
        self.retry_base = trigger.visibility_timeout if retry_base is None else retry_base
        self._stopping = False
        self._tasks: set[asyncio.Task] = set()
        self._runner: asyncio.Task | None = None
        self._unreachable = False
        #: batches handed to the function and not finished yet
        self._in_flight = 0
        #: finished batches waiting to be settled by the next turn: (messages, ids that failed)
        self._finished: list[tuple[list[Message], set[str]]] = []
        #: set when a batch finishes or stop() is called: the pump has work
        self._wake = asyncio.Event()

    def start(self) -> None:
        if self.concurrency == 0:
            return  # reserved_concurrency=0 throttles the function: its messages wait, as on Lambda
        self._runner = asyncio.create_task(self._run(), name=f"consumer:{self.trigger.queue}")

    async def stop(self) -> None:
        """Stop claiming and let the batches in flight finish (and be acked)."""
        self._stopping = True
        self._wake.set()
        if self._runner is not None:
            await self._runner
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)

    def claim(self, batches: int = 1) -> list[Message]:
        """Up to `batches` batches' worth of messages, oldest first."""
        t = self.trigger
        return self.backend.claim(t.queue, batches * t.batch_size, t.visibility_timeout,
                                  max_receives=t.max_receive_count, dlq=t.dlq)

    async def process(self, messages: list[Message]) -> Invocation:
        """Invoke the function with one batch and settle every message."""
        invocation, failed = await self._invoke(messages)
        await asyncio.to_thread(self.settle, [(messages, failed)])
        return invocation

    async def _invoke(self, messages: list[Message]) -> tuple[Invocation, set[str]]:
        """Invoke the function with one batch: the invocation, and the ids that failed."""
        invocation = await self.invoke(self.trigger.function, self.delivery.event(messages), self.delivery.trigger)
        return invocation, self.delivery.failures(invocation, messages)

    def settle(self, finished: list[tuple[list[Message], set[str]]]) -> None:
        """Acknowledge every message that did not fail, in one call; retry the failed ones
        after a backoff, or dead-letter those out of receives."""
        t = self.trigger
        done = [m.receipt for messages, failed in finished for m in messages if m.id not in failed]
        if done:
            self.backend.ack(t.queue, done)
        for m in (m for messages, failed in finished for m in messages if m.id in failed):
            if m.receive_count >= t.max_receive_count:
                self.backend.dead_letter(t.queue, m.receipt, t.dlq)
            else:
                self.backend.release(t.queue, m.receipt, retry_delay(self.retry_base, m.receive_count))

    def _turn(self, finished: list[tuple[list[Message], set[str]]], batches: int) -> list[Message]:
        """One pump turn in a worker thread: settle, then claim (nothing when `batches` is 0)."""
        self.settle(finished)
        return self.claim(batches) if batches else []

    async def _run(self) -> None:
        """Turn whenever there is something to settle or a slot to fill. After a claim that
        found nothing, the next one waits for the idle backoff; batches finishing meanwhile
        are settled at once, in turns that do not poll."""
        loop = asyncio.get_running_loop()
        idle, poll_at = IDLE_POLL[0], 0.0
        while True:
            self._wake.clear()  # whatever finishes from here on sets it again
            free = 0 if self._stopping else self.concurrency - self._in_flight
            batches = min(free, max(1, CLAIM_LIMIT // self.trigger.batch_size)) if loop.time() >= poll_at else 0
            if not batches and not self._finished:
                if self._stopping and not self._in_flight:
                    return
                await self._pause(poll_at - loop.time() if free else None)
                continue
            finished, self._finished = self._finished, []
            try:
                messages = await asyncio.to_thread(self._turn, finished, batches)
                if self._unreachable:
                    log.warning("queue %s: backend reachable again, consuming", self.trigger.queue)
                    self._unreachable = False
            except SquallError as exc:  # unsettled messages come back after their visibility timeout
                if not self._unreachable:
                    log.warning("queue %s: backend unreachable, retrying with backoff: %s", self.trigger.queue, exc)
                self._unreachable = True
                messages = []
                idle = 1.0
            for start in range(0, len(messages), self.trigger.batch_size):
                self._dispatch(messages[start:start + self.trigger.batch_size])
            if messages:
                idle = IDLE_POLL[0]
            elif batches or self._unreachable:  # nothing to claim: poll again after a pause
                poll_at = loop.time() + idle
                idle = min(idle * 2, IDLE_POLL[1])

    def _dispatch(self, messages: list[Message]) -> None:
        self._in_flight += 1
        task = asyncio.create_task(self._handle(messages))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _handle(self, messages: list[Message]) -> None:
        """Invoke the function with one batch; the pump settles it on its next turn."""
        try:
            _, failed = await self._invoke(messages)
            self._finished.append((messages, failed))
        finally:
            self._in_flight -= 1
            self._wake.set()

    async def _pause(self, seconds: float | None) -> None:
        """Until a batch finishes or stop() is called, or `seconds` pass (None: no limit)."""
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(seconds):
                await self._wake.wait()
