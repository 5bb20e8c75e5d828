"""Asynchronous invocations (`ctx.invoke_async`): an internal queue per function.

An implicit source: every function can be invoked asynchronously, so it serves them all
without a declaration. As on Lambda, a failed invocation is retried twice (1 s, then
2 s later, plus jitter) and then kept in the function's dead-letter queue, with the
attributes Lambda adds there (`RequestID`, `ErrorCode`, `ErrorMessage`).
"""

from __future__ import annotations

from typing import Any

from squall.backends import Backend, QueueConfig
from squall.core.lifecycle import Service
from squall.dispatch.consumer import ConsumerConfig, Delivery, QueueConsumer, single_failure
from squall.dispatch.watcher import QueueWatcher
from squall.runtime import wire
from squall.runtime.invocation import Invocation
from squall.services import message_attribute
from squall.sources.base import NodeContext, Source, Trigger

#: Lambda retries a failed asynchronous invocation twice.
ATTEMPTS = 3
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


class AsyncInvokeSource(Source[Trigger]):
    kind = "async"
    trigger = None

    def provision(self, backend: Backend) -> None:
        for name, config in self.app.functions.items():
            backend.queue_declare(async_queue(name), QueueConfig(
                dlq=async_dlq(name), function=name, max_receive_count=ATTEMPTS,
                visibility_timeout=invocation_visibility(config.timeout), internal=True))
            backend.queue_declare(async_dlq(name), QueueConfig(dlq_of=async_queue(name), internal=True))

    def services(self, node: NodeContext) -> list[Service]:
        watcher = node.shared(QueueWatcher, lambda: QueueWatcher(node.backend))
        consumers: list[Service] = []
        for name, config in self.app.functions.items():
            concurrency = invocation_concurrency(config.reserved_concurrency)
            consumer = ConsumerConfig(async_queue(name), name, batch_size=1, max_receive_count=ATTEMPTS,
                                      visibility_timeout=invocation_visibility(config.timeout), dlq=async_dlq(name),
                                      concurrency=concurrency, retry_base=node.settings.async_retry_base)
            consumers.append(QueueConsumer(node.backend, node.invoke, consumer, ASYNC, watcher, node.runtime_ready))
        return consumers

    def describe(self) -> list[str]:
        return []
