"""Asynchronous invocations (`ctx.invoke_async`, `squall invoke --async`): an internal queue per function.

An implicit source: every function can be invoked asynchronously, so it serves them all
without a declaration. As on Lambda, each function's asynchronous invocation settings
(`FunctionConfig`: Lambda's EventInvokeConfig) decide what becomes of an event:

- a failed attempt is retried `maximum_retry_attempts` times (0 to 2, default 2), 1 s and
  then 2 s later, plus jitter (Lambda waits a minute, then two);
- an event older than `maximum_event_age` seconds is not run again: one found in the queue
  past its age is not invoked, and one whose next retry would come too late is given up
  after the attempt that failed, as Lambda decides it;
- an event that succeeded sends its invocation record (squall.events.destinations) to
  `on_success`; one that failed for good, expired, or that recursive loop detection
  stopped sends it to `on_failure` and goes to the function's dead-letter queue as well,
  as it was sent, with the attributes Lambda adds there (`RequestID`, `ErrorCode`,
  `ErrorMessage`) — Lambda uses an on-failure destination in addition to a DLQ.

Every attempt has the event's message id as request id. A record is sent before its event
is settled (at least once), with the invocation's trace context and lineage.
"""

from __future__ import annotations

import logging
from dataclasses import replace
from typing import TYPE_CHECKING, Any

from squall.backends import Backend, Message, QueueConfig
from squall.backends.protocol import Queues
from squall.core.health import Gate
from squall.core.lifecycle import Service
from squall.core.pipeline import Handler, InvokeRequest
from squall.dispatch.consumer import (
    ConsumerConfig,
    Delivery,
    Disposition,
    Outgoing,
    QueueConsumer,
    Settlement,
    backoff,
    read_ahead,
    single_failure,
)
from squall.dispatch.targets import Target, TargetKind
from squall.dispatch.watcher import QueueWatcher
from squall.errors import RecursiveInvocation
from squall.events.destinations import Condition, Response, bus_event, invocation_record
from squall.observability import lineage
from squall.observability.context import TRACE_ATTRIBUTE, TRACEPARENT, parse_traceparent, trace_attribute
from squall.runtime import wire
from squall.runtime.invocation import Invocation
from squall.services import message_attribute
from squall.sources.base import NodeContext, Source, Trigger

if TYPE_CHECKING:
    from squall.app import FunctionConfig

log = logging.getLogger("squall.async")

#: batches in flight per function and node when the function has no reserved concurrency
CONCURRENCY = 8

#: Lambda keeps the first kilobyte of the error message on a dead-lettered event
ERROR_MESSAGE_BYTES = 1024


def failure_attributes(invocation: Invocation) -> dict[str, Any]:
    """The attributes Lambda gives an event it sends to a function's dead-letter queue:
    the request id, the status code of the invocation (200: the function, not the
    service, failed) and the start of the error message."""
    assert invocation.error is not None
    message = str(invocation.error).encode()[:ERROR_MESSAGE_BYTES].decode(errors="ignore")
    return {"RequestID": message_attribute("RequestID", invocation.request_id),
            "ErrorCode": message_attribute("ErrorCode", 200),
            "ErrorMessage": message_attribute("ErrorMessage", message)}


#: every attempt at an event has its message's id as request id, as Lambda retries an
#: asynchronous invocation under the request id `ctx.invoke_async` returned
ASYNC = Delivery("async", lambda messages: wire.loads(messages[0].body), single_failure, failure_attributes,
                 request_id=lambda messages: messages[0].id)


def invocation_visibility(timeout: float) -> float:
    """A queued invocation's visibility timeout: longer than a function with `timeout` may
    run, so a running one is never delivered twice."""
    return timeout + 30


def invocation_concurrency(reserved_concurrency: int | None) -> int:
    """Queued invocations of a function in flight per node: its reserved concurrency, if any."""
    return CONCURRENCY if reserved_concurrency is None else reserved_concurrency


def async_queue(function: str) -> str:
    """The internal queue holding a function's asynchronous invocations."""
    return f"async.{function}"


def async_dlq(function: str) -> str:
    return f"{async_queue(function)}-dlq"


def queue_async(backend: Queues, function: str, payload: Any, attributes: dict[str, Any] | None = None) -> str:
    """Queue an asynchronous invocation of `function` (payload checked against Lambda's
    256 KB); its request id. What `ctx.invoke_async` and `squall invoke --async` do."""
    from squall.runtime.context import MAX_ASYNC_PAYLOAD, check_payload

    return backend.enqueue(async_queue(function), check_payload(payload, MAX_ASYNC_PAYLOAD, "asynchronous"),
                           attributes)


def attempts(config: FunctionConfig) -> int:
    """How many times an event is tried: once, and `maximum_retry_attempts` more."""
    return config.maximum_retry_attempts + 1


class AsyncConsumer(QueueConsumer):
    """One function's asynchronous invocations, settled by its event age and destinations
    (see the module docstring)."""

    def __init__(self, backend: Backend, invoke: Handler, config: ConsumerConfig, function: FunctionConfig,
                 watcher: QueueWatcher | None = None, ready: Gate | None = None):
        super().__init__(backend, invoke, config, ASYNC, watcher, ready)
        self.clock = backend.clock
        self.maximum_event_age = function.maximum_event_age
        self.on_success = function.destination("on_success")
        self.on_failure = function.destination("on_failure")

    async def _invoke(self, messages: list[Message]) -> Settlement:
        [message] = messages
        age = self.clock() - message.sent_at
        if age < self.maximum_event_age:
            return await super()._invoke(messages)
        log.warning("function %s: event %s is %.0f s old, over its maximum_event_age of %d s: not invoked, it goes "
                    "to %s", self.config.function, message.id, age, self.maximum_event_age, self._failure_route)
        # the function did not run: the record carries the event's own trace context and lineage
        header = message.attributes.get(TRACE_ATTRIBUTE) if message.attributes else None
        outbox = self._record(self.on_failure, message, Condition.EVENT_AGE_EXCEEDED, message.receive_count - 1, None,
                              None if header is None else {TRACE_ATTRIBUTE: header})
        return Settlement(messages, {message.id}, Disposition.POISONED,
                          {"RequestID": message_attribute("RequestID", message.id)}, outbox=outbox)

    def _settlement(self, request: InvokeRequest, invocation: Invocation, messages: list[Message]) -> Settlement:
        settlement = super()._settlement(request, invocation, messages)
        [message] = messages
        error = invocation.error
        ran = not isinstance(error, RecursiveInvocation)
        # what the invocation sends on carries its own context, and its function's hop
        chain = request.headers.get(lineage.LINEAGE)
        context = parse_traceparent(request.headers.get(TRACEPARENT))
        attributes = {TRACE_ATTRIBUTE: trace_attribute(context, lineage.hop(chain, request.function) if ran
                                                       else chain or "")}
        if error is None:
            success = Response(invocation.result)
            return replace(settlement, outbox=self._record(self.on_success, message, Condition.SUCCESS,
                                                           message.receive_count, success, attributes))
        if settlement.disposition is Disposition.PLATFORM:
            return settlement  # given back uncounted: nothing was decided
        condition = Condition.RETRIES_EXHAUSTED
        if settlement.disposition is Disposition.RETRY and message.receive_count < self.config.max_receive_count:
            age = self.clock() - message.sent_at
            if age + backoff(self.config.retry_base, message.receive_count) <= self.maximum_event_age:
                return settlement  # retried
            condition = Condition.EVENT_AGE_EXCEEDED
            settlement = replace(settlement, disposition=Disposition.POISONED)
        response: Response | None = None
        if ran:
            failure = error.to_dict()
            response = Response({"errorMessage": failure["errorMessage"], "errorType": failure["errorType"],
                                 "requestId": request.request_id, "stackTrace": failure["stackTrace"]}, "Unhandled")
        count = message.receive_count if ran else message.receive_count - 1
        return replace(settlement, outbox=self._record(self.on_failure, message, condition, count, response,
                                                       attributes))

    def _record(self, target: Target | None, message: Message, condition: Condition, invoke_count: int,
                response: Response | None, attributes: dict[str, Any] | None) -> tuple[Outgoing, ...]:
        """The invocation record for `target`, if the function has one for this outcome."""
        if target is None:
            return ()
        now = self.clock()
        record = invocation_record(self.config.function, message.id, condition, invoke_count,
                                   wire.loads(message.body), response, now)
        if target.kind is TargetKind.BUS:
            record = bus_event(record, self.config.function, target.name, now)
        return (Outgoing(target, wire.dumps(record).decode(), attributes),)

    @property
    def _failure_route(self) -> str:
        """Where an event that failed for good goes: the dead-letter queue, and on_failure."""
        return self.config.dlq + (f" and {self.on_failure}" if self.on_failure else "")


class AsyncInvokeSource(Source[Trigger]):
    kind = "async"
    trigger = None

    def provision(self, backend: Backend) -> None:
        for name, config in self.app.functions.items():
            backend.queue_declare(async_queue(name), QueueConfig(
                dlq=async_dlq(name), function=name, max_receive_count=attempts(config),
                visibility_timeout=invocation_visibility(config.timeout), internal=True))
            backend.queue_declare(async_dlq(name), QueueConfig(dlq_of=async_queue(name), internal=True))

    def services(self, node: NodeContext) -> list[Service]:
        watcher = node.shared(QueueWatcher, lambda: QueueWatcher(node.backend))
        consumers: list[Service] = []
        for name, config in self.app.functions.items():
            concurrency = invocation_concurrency(config.reserved_concurrency)
            visibility = invocation_visibility(config.timeout)
            consumer = ConsumerConfig(async_queue(name), name, batch_size=1, max_receive_count=attempts(config),
                                      visibility_timeout=visibility, dlq=async_dlq(name), concurrency=concurrency,
                                      retry_base=node.settings.async_retry_base,
                                      read_ahead=read_ahead(visibility, config.timeout))
            consumers.append(AsyncConsumer(node.backend, node.invoke, consumer, config, watcher, node.runtime_ready))
        return consumers

    def describe(self) -> list[str]:
        return []
