"""Queue triggers: messages of a durable queue delivered to a function in SQS batches."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any, ClassVar

from squall.backends import Backend, Message, QueueConfig
from squall.backends.fifo import FIFO_SUFFIX, is_fifo
from squall.core.checks import check_number, check_queue_name
from squall.core.lifecycle import Service
from squall.core.pipeline import InvokeRequest
from squall.dispatch.consumer import ConsumerConfig, Delivery, QueueConsumer, batch_failures, read_ahead
from squall.dispatch.watcher import QueueWatcher
from squall.errors import ConfigError
from squall.events.sqs import sqs_event
from squall.observability.spans import FaasTrigger, SpanKind, SpanShape
from squall.runtime.invocation import Invocation
from squall.sources.base import NodeContext, Source, Trigger
from squall.sources.filters import FilteredCounts, RecordFilter, check_filters

#: Lambda's SQS event source limits.
MAX_BATCH_SIZE = 10000
MAX_FIFO_BATCH_SIZE = 10
MAX_VISIBILITY_TIMEOUT = 43200

SQS = Delivery("queue", sqs_event, batch_failures)


@dataclass(frozen=True, kw_only=True)
class QueueTrigger(Trigger):
    """A queue whose messages are delivered to a function in SQS batches.

    A message whose handler fails is retried with backoff (`visibility_timeout`, doubled
    per receive); after `max_receive_count` receives it moves to `dlq` (default
    `<queue>-dlq`, or `<name>-dlq.fifo` for a FIFO queue `<name>.fifo`).

    A FIFO queue is delivered as Lambda's event source mapping delivers SQS FIFO: each
    message group in order, one batch of it in flight at a time, and a failure holds its
    group (not the queue) back until it succeeds or moves to the dead-letter queue, which
    must be FIFO too. `content_based_deduplication` (FIFO only) deduplicates sends that
    give no id by the body's SHA-256.

    `filters` are EventBridge patterns (up to 5, as Lambda's FilterCriteria): a message
    is delivered when one of them matches its record (`record_document`); the others are
    deleted without an invocation and counted.
    """

    kind: ClassVar[str] = "queue"

    queue: str
    batch_size: int = 10
    max_receive_count: int = 5
    visibility_timeout: float = 30
    dlq: str = ""
    max_concurrency: int = 8
    #: event patterns as canonical JSON (dicts or JSON texts are accepted)
    filters: tuple[str, ...] = ()
    content_based_deduplication: bool = False

    def __post_init__(self) -> None:
        check_queue_name(self.queue)
        object.__setattr__(self, "filters", check_filters(f"queue {self.queue!r}", self.filters))
        fifo = is_fifo(self.queue)
        default_dlq = f"{self.queue.removesuffix(FIFO_SUFFIX)}-dlq{FIFO_SUFFIX}" if fifo else f"{self.queue}-dlq"
        if not self.dlq:
            object.__setattr__(self, "dlq", default_dlq)
        check_queue_name(self.dlq)
        if self.dlq == self.queue:
            raise ConfigError(f"queue {self.queue!r} cannot be its own dead-letter queue")
        if is_fifo(self.dlq) != fifo:
            raise ConfigError(f"invalid dlq {self.dlq!r} for queue {self.queue!r}: the dead-letter queue of a "
                              f"{'FIFO' if fifo else 'standard'} queue must be a {'FIFO' if fifo else 'standard'} "
                              "queue too, as on SQS")
        if not isinstance(self.content_based_deduplication, bool):
            raise ConfigError(f"invalid content_based_deduplication {self.content_based_deduplication!r} for queue "
                              f"{self.queue!r}: must be True or False")
        if self.content_based_deduplication and not fifo:
            raise ConfigError(f"content_based_deduplication is only valid for FIFO queues, not {self.queue!r} "
                              "(name it *.fifo)")
        check_number(f"batch_size for {'FIFO ' if fifo else ''}queue {self.queue!r}", self.batch_size, 1,
                     MAX_FIFO_BATCH_SIZE if fifo else MAX_BATCH_SIZE, integer=True)
        check_number(f"max_receive_count for queue {self.queue!r}", self.max_receive_count, 1, 1000, integer=True)
        check_number(f"visibility_timeout for queue {self.queue!r}", self.visibility_timeout, 0,
                     MAX_VISIBILITY_TIMEOUT)
        check_number(f"max_concurrency for queue {self.queue!r}", self.max_concurrency, 1, 1000, integer=True)

    def conflict(self, other: Trigger) -> str | None:
        if isinstance(other, QueueTrigger) and other.queue == self.queue:
            return f"queue {self.queue!r} already has a consumer"
        return None

    def describe(self) -> str:
        filtered = f", {len(self.filters)} filter(s)" if self.filters else ""
        return f"queue {self.queue} -> {self.function} (batch {self.batch_size}, dlq {self.dlq}{filtered})"


def record_document(message: Message) -> dict[str, Any]:
    """The record a filter sees: the SQS record as Lambda delivers it, with `body` parsed
    when it is a JSON object (otherwise the plain string), as Lambda filters it."""
    record: dict[str, Any] = sqs_event([message])["Records"][0]
    body = message.body
    if body.lstrip()[:1] == "{":
        try:
            record["body"] = json.loads(body)
        except ValueError:
            pass  # not JSON after all: matched as the string it is
    return record


def fifo_batch_failures(invocation: Invocation, messages: list[Message]) -> set[str]:
    """`batchItemFailures` on a FIFO queue, as Lambda reads it: a failed message fails every
    later message of its group in the batch too, so the group is retried from there in
    order (Powertools' `SqsFifoPartialProcessor` reports them so itself)."""
    failed = batch_failures(invocation, messages)
    if not failed or len(failed) == len(messages):
        return failed
    broken: set[str | None] = set()
    for m in messages:
        if m.id in failed:
            broken.add(m.group)
        elif m.group in broken:
            failed.add(m.id)
    return failed


SQS_FIFO = Delivery("queue", sqs_event, fifo_batch_failures)


class QueueSource(Source[QueueTrigger]):
    kind = "queue"
    trigger = QueueTrigger

    def provision(self, backend: Backend) -> None:
        for t in self.triggers:
            backend.queue_declare(t.queue, QueueConfig(dlq=t.dlq, function=t.function,
                                                       max_receive_count=t.max_receive_count,
                                                       visibility_timeout=t.visibility_timeout,
                                                       content_based_deduplication=t.content_based_deduplication))
            backend.queue_declare(t.dlq, QueueConfig(dlq_of=t.queue))

    def services(self, node: NodeContext) -> list[Service]:
        watcher = node.shared(QueueWatcher, lambda: QueueWatcher(node.backend))
        consumers: list[QueueConsumer] = []
        for t in self.triggers:
            reserved = self.function(t).reserved_concurrency
            concurrency = t.max_concurrency if reserved is None else min(t.max_concurrency, reserved)
            accept = RecordFilter(f"queue {t.queue!r}", t.filters, record_document) if t.filters else None
            config = ConsumerConfig(t.queue, t.function, t.batch_size, t.max_receive_count, t.visibility_timeout,
                                    t.dlq, concurrency, retry_base=t.visibility_timeout, accept=accept,
                                    read_ahead=read_ahead(t.visibility_timeout, self.function(t).timeout))
            delivery = SQS_FIFO if is_fifo(t.queue) else SQS
            consumers.append(QueueConsumer(node.backend, node.invoke, config, delivery, watcher, node.runtime_ready))
        filtered = {c.config.queue: (lambda c=c: c.filtered) for c in consumers if c.config.accept is not None}
        # first: services stop last to first, so the counts are flushed after the consumers settle
        counts: list[Service] = [FilteredCounts(node.backend, filtered)] if filtered else []
        return [*counts, *consumers]

    def span(self, request: InvokeRequest, invocation: Invocation) -> SpanShape:
        """A CONSUMER span by the messaging conventions, `process {queue}`, linked (by the
        tracer) to every message's producer."""
        records = request.event.get("Records", []) if isinstance(request.event, dict) else []
        attributes: dict[str, Any] = {"messaging.system": "aws_sqs", "messaging.operation.type": "process",
                                      "messaging.operation.name": "process",
                                      "messaging.destination.name": request.source}
        if len(records) == 1:
            attributes["messaging.message.id"] = records[0].get("messageId", "")
        else:
            attributes["messaging.batch.message_count"] = len(records)
        return SpanShape(f"process {request.source}", SpanKind.CONSUMER, FaasTrigger.PUBSUB, attributes)
