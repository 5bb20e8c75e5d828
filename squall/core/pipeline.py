"""The invocation pipeline: every invocation, from any trigger, is one `InvokeRequest`
passed through an ordered chain of interceptors to the runtime.

Sources build requests and never know what the chain holds, so a cross-cutting feature
(metering today; tracing, metrics, destinations, idempotency, loop detection next) is one
`Interceptor` added to the node's list, not code in every source. `headers` is the
request's context map: it crosses the wire into the function instance (where handlers
read it as `ctx.invocation_headers`), which is how a trace context, for one, follows an
event from hop to hop.
"""

from __future__ import annotations

import logging
import time
from abc import ABC, abstractmethod
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field
from functools import partial
from typing import TYPE_CHECKING, Any, NamedTuple

from squall.aws import request_id as new_request_id
from squall.errors import FunctionNotFound, InvocationError
from squall.runtime.invocation import Invocation

if TYPE_CHECKING:
    from squall.observability.context import SpanContext

log = logging.getLogger("squall.pipeline")


class OpenSpan(NamedTuple):
    """An invocation's span from its start to its end: its id, its parent's ("" for a
    root) and its start, in epoch nanoseconds."""

    span_id: str
    parent_id: str
    start_ns: int


@dataclass(slots=True)
class InvokeRequest:
    """One invocation to run.

    `trigger` is the kind of source (`http`, `queue`, `async`, `invoke`, as metering
    records it) and `source` the one that produced it (a route key, a queue name).
    `wait` bounds the wait for a free instance (None: as long as it takes).
    `headers["traceparent"]` is the trace context (W3C): the caller's when the request is
    made, the invocation's own span once tracing has seen it; `links` are the producer
    contexts of the events a batch carries (each queue message's), which a trace links to
    and which, unlike headers, do not follow the invocation's own calls.
    """

    function: str
    event: Any
    trigger: str = "invoke"
    source: str = ""
    request_id: str = field(default_factory=new_request_id)
    wait: float | None = None
    headers: dict[str, str] = field(default_factory=dict)
    links: tuple[SpanContext, ...] = ()
    #: the invocation's trace id, once tracing has seen it ("" without tracing): what its
    #: log lines are tagged with
    trace_id: str = ""
    #: the invocation's span while it runs, if it is sampled: tracing opens it, and closes
    #: it when metering records the invocation (squall.observability.tracing)
    span: OpenSpan | None = None


Handler = Callable[[InvokeRequest], Coroutine[Any, Any, Invocation]]


class Interceptor(ABC):
    """One link of the chain: may change the request, call the rest of the chain (or not),
    and look at or change the invocation it returns. A link with nothing to do after the
    rest of the chain may be a plain method returning `call_next(request)` itself, which
    spares every invocation a coroutine (`RecursionGuard`)."""

    @abstractmethod
    async def __call__(self, request: InvokeRequest, call_next: Handler) -> Invocation: ...


class Contain(Interceptor):
    """Turns an exception raised inside it — by an interceptor, or a bug below — into a
    failed invocation, so the source settles it like any other failure (an HTTP 500, a
    retried message) instead of losing the request. An unknown function still raises."""

    async def __call__(self, request: InvokeRequest, call_next: Handler) -> Invocation:
        start = time.time()
        try:
            return await call_next(request)
        except FunctionNotFound:
            raise
        except Exception as exc:  # noqa: BLE001 - whatever broke, the caller gets an invocation
            log.exception("invocation %s of %s failed in the pipeline", request.request_id, request.function)
            error = InvocationError(f"the invocation failed before it completed: {type(exc).__name__}: {exc}",
                                    "Squall.PipelineError")
            return Invocation(request.request_id, request.function, request.trigger, start,
                              (time.time() - start) * 1000, 0, error=error)


def chain(interceptors: list[Interceptor], terminal: Handler) -> Handler:
    """Compose the interceptors once, first outermost, around `terminal` (the runtime).

    Each link is a `partial` of the interceptor with the rest of the chain, so passing a
    link costs no frame of its own: this runs on every invocation.
    """
    handler = terminal
    for interceptor in reversed(interceptors):
        handler = partial(interceptor.__call__, call_next=handler)
    return handler
