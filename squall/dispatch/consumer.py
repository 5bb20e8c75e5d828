"""Queue consumers: claim -> invoke -> settle (ack, retry with backoff, or dead-letter).

One consumer class serves every source whose events wait in a durable queue: SQS-style
queue triggers (batches in the SQS event shape, partial batch failure) and asynchronous
invocations (one event per message, the payload itself) today; topic subscriptions and
bus rules next. What differs between them is a `Delivery`. The semantics follow SQS
with a Lambda event source mapping: at-least-once; a failed message stays invisible for
a backoff (the first retry delay, doubled per receive, with jitter) and is delivered
again; once received `max_receive_count` times it moves to the dead-letter queue.

On a FIFO queue each claim is one batch: the backend hands out a message group only while
none of it is in flight, so a group never spans two batches running at once.
"""

from __future__ import annotations

import asyncio
import collections
import itertools
import logging
import random
import time
from collections.abc import Callable
from dataclasses import dataclass
from enum import Enum
from typing import TYPE_CHECKING, Any

from squall.aws import request_id as new_request_id
from squall.backends import Backend, Message
from squall.backends.fifo import is_fifo
from squall.backends.protocol import Clock, DeadLetter, Release
from squall.core.health import Gate
from squall.core.lifecycle import Progress, Service
from squall.core.pipeline import Handler, InvokeRequest
from squall.dispatch.targets import Target, deliver
from squall.errors import BackendUnavailable
from squall.observability import lineage
from squall.observability.context import TRACEPARENT, message_header, parse_xray
from squall.runtime.invocation import Invocation

if TYPE_CHECKING:
    from squall.dispatch.watcher import QueueWatcher

log = logging.getLogger("squall.queues")

#: retries are capped at 15 minutes, SQS's longest delay
MAX_BACKOFF = 900.0
#: most messages one claim takes (at least one whole batch)
CLAIM_LIMIT = 1000
#: seconds before a consumer that found the backend unreachable tries again
UNREACHABLE_RETRY = 1.0
#: seconds before a message that met no runtime (a platform failure) is delivered again
PLATFORM_RETRY = 1.0
#: most seconds a batch claimed ahead may wait for a free slot (`read_ahead`); older, it is
#: given back unrun. A consumer reads ahead only while its last batch ran in under half of
#: it, so a batch claimed ahead waits about one invocation: giving batches back is rare,
#: which matters, as under overload every one given back is claimed again
READ_AHEAD_HOLD = 10.0
#: seconds a finished batch waits to be settled with others while the consumer reads ahead
SETTLE_WITHIN = 0.1


@dataclass(frozen=True)
class ConsumerConfig:
    """How one queue is fed to one function."""

    queue: str
    function: str
    batch_size: int
    max_receive_count: int
    visibility_timeout: float
    dlq: str
    #: batches in flight at once on this node
    concurrency: int
    #: delay before the first retry of a failed message (doubles per receive)
    retry_base: float
    #: which messages to deliver (an event source mapping's filter); the others are deleted
    #: without an invocation and counted in `QueueConsumer.filtered`. None: every message.
    accept: Callable[[Message], bool] | None = None
    #: seconds after its send a failed message is no longer retried but dead-lettered (an
    #: event's maximum age, as EventBridge's retry policy has it). None: no limit.
    max_age: float | None = None
    #: seconds a batch claimed ahead may wait for a free slot (see `read_ahead`); 0 claims
    #: no more than there are slots
    read_ahead: float = 0.0


def read_ahead(visibility_timeout: float, function_timeout: float) -> float:
    """How long a batch claimed ahead may wait for a slot: short enough that it still runs
    to its timeout before it is visible again, and at most `READ_AHEAD_HOLD`."""
    return max(0.0, min(READ_AHEAD_HOLD, visibility_timeout - function_timeout))


@dataclass(frozen=True)
class Delivery:
    """How messages become an event, and which of them failed, for one kind of source."""

    #: the trigger kind metering records
    trigger: str
    event: Callable[[list[Message]], Any]
    failures: Callable[[Invocation, list[Message]], set[str]]
    #: message attributes a failed invocation adds to the messages it dead-letters
    dead_letter_attributes: Callable[[Invocation], dict[str, Any]] | None = None
    #: the request id of a batch's invocation (by default a new one for every attempt)
    request_id: Callable[[list[Message]], str] = lambda messages: new_request_id()


def batch_failures(invocation: Invocation, messages: list[Message]) -> set[str]:
    """Ids of the messages to retry, reading `batchItemFailures` as Lambda does.

    A failed invocation fails the whole batch; so does a response naming an id that is
    not in the batch, or a malformed list. A missing, null or empty list is a success.
    """
    result = invocation.result
    items = result.get("batchItemFailures") if invocation.ok and isinstance(result, dict) else None
    if invocation.ok and items is None:
        return set()
    everything = {m.id for m in messages}
    if not isinstance(items, list):
        return everything
    failed: set[str] = set()
    for item in items:
        identifier = item.get("itemIdentifier") if isinstance(item, dict) else None
        if not isinstance(identifier, str) or identifier not in everything:
            return everything
        failed.add(identifier)
    return failed


def single_failure(invocation: Invocation, messages: list[Message]) -> set[str]:
    """One message per invocation: it failed if the invocation did."""
    return set() if invocation.ok else {messages[0].id}


def backoff(base: float, receive_count: int) -> float:
    """The wait before the next receive of a message received `receive_count` times:
    base * 2^(n-1), capped (`retry_delay` adds the jitter)."""
    return min(base * 2 ** max(0, receive_count - 1), MAX_BACKOFF)


def retry_delay(base: float, receive_count: int) -> float:
    """Exponential backoff with jitter: `backoff`, plus up to a quarter more."""
    delay = backoff(base, receive_count)
    return delay + random.uniform(0, delay / 4)


class Disposition(Enum):
    """What becomes of a batch's failed messages."""

    #: retried after a backoff, or dead-lettered once out of receives
    RETRY = "retry"
    #: dead-lettered at once: an event that cannot be delivered, which no retry can fix
    POISONED = "poisoned"
    #: given back with their receive uncounted: no instance could run them (the platform failed)
    PLATFORM = "platform"
    #: given back at once with their receive uncounted: claimed ahead and never run
    UNUSED = "unused"


@dataclass(frozen=True, slots=True)
class Outgoing:
    """An event a finished batch sends: `body` (JSON text) to `target`, with system attributes."""

    target: Target
    body: str
    attributes: dict[str, Any] | None = None


@dataclass(frozen=True, slots=True)
class Settlement:
    """How one batch ended: the ids that failed, and what becomes of them."""

    messages: list[Message]
    failed: set[str]
    disposition: Disposition = Disposition.RETRY
    #: added to the failed messages if they go to the dead-letter queue (`Delivery`)
    dead_letter_attributes: dict[str, Any] | None = None
    #: messages the filter dropped: acknowledged, never invoked
    filtered: bool = False
    #: events to send once the batch ended, before it is settled (destination records)
    outbox: tuple[Outgoing, ...] = ()


Finished = list[Settlement]


class QueueConsumer(Service):
    """Feeds one queue to one function with up to `concurrency` batches in flight.

    On a node, one loop (the pump) does all the backend work: each turn settles every
    batch that finished since the last turn and claims enough messages for every free
    slot, both in one worker-thread call, so under load the round trips per message
    shrink as the rate grows. An idle consumer makes no calls at all: once a claim comes
    back short it waits until the node's `QueueWatcher` wakes it (a message was sent, or
    one becomes visible). The harness drives `step()` instead: claim one round, run those
    batches to the end and settle them.

    While batches run quickly the pump reads ahead, as Lambda's pollers hold a batch until
    the function has room: it claims up to `concurrency` batches more than the slots, a
    finished batch's slot goes to the next of them at once (no backend call between), and
    the finished ones are settled together when those run out, so a busy consumer turns
    once per `concurrency` batches instead of once per batch or two. A batch claimed ahead
    waits at most `config.read_ahead` seconds for a slot, else it is given back uncounted, as
    it is when the consumer stops. FIFO queues are not read ahead (a claim there is one batch).
    """

    def __init__(self, backend: Backend, invoke: Handler, config: ConsumerConfig, delivery: Delivery,
                 watcher: QueueWatcher | None = None, ready: Gate | None = None, clock: Clock = time.time):
        """`ready` is the runtime's gate: while it is closed (no instance can start) the
        consumer claims nothing, so no message spends a receive on an invocation that
        cannot run. `clock`: the backend's, which a message's age is measured by."""
        self.backend = backend
        self.clock = clock
        self.invoke = invoke
        self.config = config
        self.delivery = delivery
        self.watcher = watcher
        self.ready = ready
        self.name = f"consumer:{config.queue}"
        self.consumes = frozenset({config.queue})
        self.fifo = is_fifo(config.queue)
        self._stopping = False
        self._tasks: set[asyncio.Task[None]] = set()
        self._runner: asyncio.Task[None] | None = None
        self._unreachable = False
        #: messages the filter dropped (deleted without an invocation) since the consumer started
        self.filtered = 0
        #: batches handed to the function and not finished yet
        self._in_flight = 0
        #: finished batches waiting to be settled by the next turn: (messages, ids that failed)
        self._finished: Finished = []
        #: whether the pump should claim (it was woken, or its last claim came back full)
        self._wanted = True
        #: wake() calls so far: a wake during a turn keeps the pump claiming after it
        self._wakes = 0
        #: set when a batch finishes, wake() or stop() is called: the pump has work
        self._wake = asyncio.Event()
        #: batches claimed and not started yet (a slot was not free): (when claimed, batch)
        self._ready: collections.deque[tuple[float, list[Message]]] = collections.deque()
        #: whether this consumer may read ahead at all, and whether it does now (its last
        #: batch ran quickly)
        self._can_read_ahead = not self.fifo and config.read_ahead > 0
        self._read_ahead = False
        #: when the finished batches waiting for the ready ones to run out are settled anyway
        self._settle_by = 0.0
        self._timer: asyncio.TimerHandle | None = None

    # ---- lifecycle -------------------------------------------------------------------

    async def start(self) -> None:
        if self.config.concurrency == 0:
            return  # reserved_concurrency=0 throttles the function: its messages wait, as on Lambda
        if self.watcher is not None:
            self.watcher.watch(self.config.queue, self)
        self._runner = asyncio.create_task(self._run(), name=self.name)

    async def stop(self) -> None:
        """Stop claiming and let the batches in flight finish (and be acked)."""
        self._stopping = True
        self._wake.set()
        if self.watcher is not None:
            self.watcher.unwatch(self.config.queue)
        if self._runner is not None:
            await self._runner
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)

    async def step(self) -> Progress:
        """Claim one batch, run it to the end and settle it: one batch at a time, so a
        test sees its handlers run in a fixed order."""
        if self.config.concurrency == 0:
            return Progress()
        claimed = await asyncio.to_thread(self.claim)
        messages, dropped = self._filter(claimed)
        settlements = [dropped] if dropped.messages else []
        if messages:
            settlements.append(await self._invoke(messages))
        if not settlements:
            return Progress()
        await asyncio.to_thread(self.settle, settlements)
        failed = sum(len(s.failed) for s in settlements)
        return Progress(int(bool(messages)), len(claimed) - failed, failed)

    def wake(self) -> None:
        """A message may be visible: claim on the next turn."""
        self._wakes += 1
        self._wanted = True
        self._wake.set()

    # ---- backend work (worker threads) -----------------------------------------------

    def claim(self, batches: int = 1) -> list[Message]:
        """Up to `batches` batches' worth of messages, oldest first."""
        c = self.config
        return self.backend.claim(c.queue, batches * c.batch_size, c.visibility_timeout,
                                  max_receives=c.max_receive_count, dlq=c.dlq)

    def settle(self, finished: Finished, batches: int = 0) -> list[Message]:
        """Settle every finished message and claim up to `batches` batches' worth, in one
        backend call: acknowledge what did not fail, retry the failed ones after a backoff,
        or dead-letter those out of receives (or past their age). Each batch's outbox is
        sent first, so what it sends goes out at least once."""
        c = self.config
        for send in (send for batch in finished for send in batch.outbox):
            deliver(self.backend, send.target, send.body, send.attributes)  # sent at least once: before the ack
        acks: list[str] = []
        releases: list[Release] = []
        dead: list[DeadLetter] = []
        for batch in finished:
            if batch.filtered:
                self.filtered += len(batch.messages)
            for m in batch.messages:
                if m.id not in batch.failed:
                    acks.append(m.receipt)
                elif batch.disposition in (Disposition.PLATFORM, Disposition.UNUSED):
                    delay = PLATFORM_RETRY if batch.disposition is Disposition.PLATFORM else 0.0
                    releases.append(Release(m.receipt, delay, uncount=True))
                elif (batch.disposition is Disposition.POISONED or m.receive_count >= c.max_receive_count
                      or (c.max_age is not None and self.clock() - m.sent_at >= c.max_age)):
                    dead.append(DeadLetter(m.receipt, batch.dead_letter_attributes))
                else:
                    releases.append(Release(m.receipt, retry_delay(c.retry_base, m.receive_count)))
        if not (acks or releases or dead or batches):
            return []
        return self.backend.settle(c.queue, acks, releases, dead, dlq=c.dlq, claim=batches * c.batch_size,
                                   visibility_timeout=c.visibility_timeout, max_receives=c.max_receive_count)

    def _turn(self, finished: Finished, batches: int) -> list[Message]:
        """One pump turn: settle and claim in one call (nothing claimed when `batches` is 0)."""
        if not self.fifo:
            return self.settle(finished, batches)
        # a claim per batch on FIFO (see _batches)
        batch = self.settle(finished, min(batches, 1))
        claimed = list(batch)
        for _ in range(batches - 1):
            if len(batch) < self.config.batch_size:
                break  # a short claim took everything claimable now
            batch = self.claim()
            claimed += batch
        return claimed

    # ---- the pump --------------------------------------------------------------------

    async def _invoke(self, messages: list[Message]) -> Settlement:
        """Invoke the function with one batch; how it ended. A batch whose event cannot be
        built or delivered is poison: it goes to the dead-letter queue now, with the
        reason logged, instead of failing every retry."""
        try:
            event = self.delivery.event(messages)
        except (ValueError, RecursionError) as exc:
            return self._poisoned(messages, f"the event cannot be built: {type(exc).__name__}: {exc}")
        request = InvokeRequest(self.config.function, event, self.delivery.trigger, source=self.config.queue,
                                request_id=self.delivery.request_id(messages))
        # the trace context each message was sent in: the batch continues the first one's
        # trace and links to all (a message sent untraced carries none, and costs a lookup);
        # the lineage of their chains, for recursive loop detection, travels in the same header
        headers = [header for m in messages if m.attributes and (header := message_header(m.attributes))]
        if headers:
            contexts = tuple(context for header in headers if (context := parse_xray(header)))
            if contexts:
                request.headers[TRACEPARENT] = contexts[0].traceparent()
                request.links = contexts
            chains = [lineage.from_xray(header) for header in headers]
            if chain := chains[0] if len(chains) == 1 else lineage.merge(chains):
                request.headers[lineage.LINEAGE] = chain
        invocation = await self.invoke(request)
        return self._settlement(request, invocation, messages)

    def _settlement(self, request: InvokeRequest, invocation: Invocation, messages: list[Message]) -> Settlement:
        """How a batch that was invoked ends (a source may add to it: destinations)."""
        error = invocation.error
        if error is not None and error.platform:
            return Settlement(messages, {m.id for m in messages}, Disposition.PLATFORM)
        annotate = self.delivery.dead_letter_attributes
        attributes = annotate(invocation) if annotate is not None and error is not None else None
        if error is not None and not error.retryable:
            return self._poisoned(messages, f"{error.error_type}: {error}", attributes)
        return Settlement(messages, self.delivery.failures(invocation, messages), dead_letter_attributes=attributes)

    def _poisoned(self, messages: list[Message], reason: str,
                  attributes: dict[str, Any] | None = None) -> Settlement:
        log.error("queue %s: %d message(s) %s cannot be delivered to %s and go to %s: %s", self.config.queue,
                  len(messages), ", ".join(m.id for m in messages), self.config.function, self.config.dlq, reason)
        return Settlement(messages, {m.id for m in messages}, Disposition.POISONED, attributes)

    def _filter(self, messages: list[Message]) -> tuple[list[Message], Settlement]:
        """The messages to deliver, and the settlement of those the filter drops."""
        accept = self.config.accept
        if accept is None or not messages:
            return messages, Settlement([], set(), filtered=True)
        kept: list[Message] = []
        dropped: list[Message] = []
        for m in messages:
            (kept if accept(m) else dropped).append(m)
        return kept, Settlement(dropped, set(), filtered=True)

    def _batches(self, messages: list[Message]) -> list[list[Message]]:
        size = self.config.batch_size
        if not self.fifo:
            return [messages[start:start + size] for start in range(0, len(messages), size)]
        # each message group's messages come together, from one claim of at most a batch (a
        # group in flight gives nothing to the next claim): packing whole groups in order
        # never splits one, and makes no more batches than there were claims
        batches: list[list[Message]] = []
        for _, group in itertools.groupby(messages, key=lambda m: m.group):
            run = list(group)
            if not batches or len(batches[-1]) + len(run) > size:
                batches.append([])
            batches[-1] += run
        return batches

    async def _run(self) -> None:
        """Turn whenever there is something to settle, or a free slot while claiming is wanted.

        While batches claimed ahead are ready, nothing is claimed, and what finished waits
        (up to `SETTLE_WITHIN`) to be settled with the rest when they run out."""
        loop = asyncio.get_running_loop()
        while True:
            self._wake.clear()  # whatever happens from here on sets it again
            if self.fifo and self._finished:
                self._wanted = True  # settling a batch unblocks its message groups
            self._fill_slots()  # gives back what waited too long, and everything when stopping
            capacity = self.config.concurrency * (2 if self._read_ahead else 1)
            free = (0 if self._stopping or self._ready or not self._runtime_ready()
                    else capacity - self._in_flight)
            batches = min(free, max(1, CLAIM_LIMIT // self.config.batch_size)) if self._wanted else 0
            settle = bool(self._finished) and (not self._ready or not self._wanted or loop.time() >= self._settle_by)
            if not batches and not settle:
                if self._stopping and not self._in_flight and not self._finished:
                    if self._timer is not None:
                        self._timer.cancel()
                    return
                self._wake_by(loop)
                await self._wake.wait()
                continue
            finished, self._finished = self._finished, []
            wakes = self._wakes
            try:
                messages = await asyncio.to_thread(self._turn, finished, batches)
            except Exception as exc:  # noqa: BLE001 - unsettled messages come back after their visibility timeout
                self._turn_failed(exc)
                continue
            if self._unreachable:
                log.warning("queue %s: backend reachable again, consuming", self.config.queue)
                self._unreachable = False
            kept, dropped = self._filter(messages)
            if dropped.messages:
                self._finish(dropped)  # acknowledged on the next turn, with what finishes
            now = loop.time()
            self._ready.extend((now, batch) for batch in self._batches(kept))
            if batches and len(messages) < batches * self.config.batch_size and self._wakes == wakes:
                self._wanted = False  # the queue had no more visible messages: wait to be woken
                if not messages and self.watcher is not None:
                    self.watcher.recheck()  # woken for a message not visible yet (delayed): learn when

    def _runtime_ready(self) -> bool:
        """Whether instances can start; if not, claim again once they can."""
        if self.ready is None or self.ready.is_open:
            return True
        self.ready.when_open(self.wake)
        return False

    def _turn_failed(self, exc: Exception) -> None:
        """Log (once per outage when the backend is down) and try again in a moment."""
        if not isinstance(exc, BackendUnavailable):
            log.error("queue %s: turn failed, retrying: %s: %s", self.config.queue, type(exc).__name__, exc)
        elif not self._unreachable:
            log.warning("queue %s: backend unreachable, retrying with backoff: %s", self.config.queue, exc)
            self._unreachable = True
        self._wanted = False
        asyncio.get_running_loop().call_later(UNREACHABLE_RETRY, self.wake)

    def _fill_slots(self) -> None:
        """Start ready batches in the free slots; give back those that waited too long for
        one (and stop reading ahead), and every ready batch once stopping."""
        now = asyncio.get_running_loop().time()
        while self._ready:
            claimed, batch = self._ready[0]
            waited_too_long = self._can_read_ahead and now - claimed > self.config.read_ahead
            if not (self._stopping or waited_too_long or self._in_flight < self.config.concurrency):
                return
            self._ready.popleft()
            if self._stopping or waited_too_long:
                self._read_ahead = False
                self._finish(Settlement(batch, {m.id for m in batch}, Disposition.UNUSED))
                continue
            self._in_flight += 1
            task = asyncio.create_task(self._handle(batch))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    def _finish(self, settlement: Settlement) -> None:
        """Hand a batch that ended to the pump's next turn."""
        if not self._finished:
            self._settle_by = asyncio.get_running_loop().time() + SETTLE_WITHIN
        self._finished.append(settlement)

    def _wake_by(self, loop: asyncio.AbstractEventLoop) -> None:
        """While batches are ready or finished, make sure the pump looks again when the
        first of them is due (a ready batch's hold, a finished one's settle)."""
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        due = [self._settle_by] if self._finished else []
        if self._ready:
            due.append(self._ready[0][0] + self.config.read_ahead)
        if due:
            self._timer = loop.call_at(min(due), self._wake.set)

    async def _handle(self, messages: list[Message]) -> None:
        """Invoke the function with one batch; the pump settles it on its next turn, and
        the slot goes to the next ready batch now."""
        loop = asyncio.get_running_loop()
        began = loop.time()
        try:
            settlement = await self._invoke(messages)
            self._finish(settlement)  # after the await: the pump may have swapped the list
        finally:
            self._in_flight -= 1
            self._read_ahead = self._can_read_ahead and loop.time() - began < self.config.read_ahead / 2
            self._fill_slots()
            self._wake.set()
