"""Recursive loop detection: an event chain that would run a function a 17th time is stopped.

`RecursionGuard` is the outermost interceptor. It reads the lineage the request's event
carries (`headers["lineage"]`, squall.observability.lineage): if the chain has already run
the function `MAX_INVOCATIONS` times, the invocation is not run and fails with
`RecursiveInvocationException`, which no source retries — a queue dead-letters the
message, an asynchronous invocation goes to its on-failure destination and dead-letter
queue, `ctx.invoke` raises it. The stop is logged in Lambda's words and counted
(`squall_recursive_invocations_dropped_total`, Lambda's `RecursiveInvocationsDropped`);
being outside metering, it is not an invocation, as on Lambda.

A request without lineage (any event from outside the platform) costs one lookup.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Coroutine
from typing import Any

from squall.core.pipeline import Handler, Interceptor, InvokeRequest
from squall.errors import RecursiveInvocation
from squall.observability.lineage import LINEAGE, MAX_INVOCATIONS, invocations
from squall.observability.recorder import Recorder
from squall.runtime.invocation import Invocation

log = logging.getLogger("squall.recursion")

#: Lambda's message for a stopped invocation (RecursiveInvocationException)
MESSAGE = ("Lambda has detected your function being invoked in a recursive loop with other AWS resources and "
           "stopped your function's invocation.")


class RecursionGuard(Interceptor):
    def __init__(self, recorder: Recorder | None = None):
        """`recorder`: where the stops are counted (None: observability off)."""
        self.recorder = recorder

    def __call__(self, request: InvokeRequest, call_next: Handler) -> Coroutine[Any, Any, Invocation]:
        """The rest of the chain's coroutine itself for a request within its limit (every
        invocation passes here: no frame of its own), else the stop's."""
        lineage = request.headers.get(LINEAGE)
        if not lineage or invocations(lineage, request.function) < MAX_INVOCATIONS:
            return call_next(request)
        return self._stop(request)

    async def _stop(self, request: InvokeRequest) -> Invocation:
        log.warning("function %s: %s Request %s (%s %s) was dropped after %d invocations in its chain.",
                    request.function, MESSAGE, request.request_id, request.trigger, request.source or "-",
                    MAX_INVOCATIONS)
        if self.recorder is not None:
            self.recorder.recursion_dropped(request.function)
        return Invocation(request.request_id, request.function, request.trigger, time.time(), 0.0, 0,
                          error=RecursiveInvocation(MESSAGE, "RecursiveInvocationException"))
