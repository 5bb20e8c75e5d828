"""RecursionGuard: the 17th invocation of a function in one chain is not run."""

from __future__ import annotations

import asyncio
import logging

from squall.core.pipeline import InvokeRequest, chain
from squall.core.recursion import MESSAGE, RecursionGuard
from squall.errors import RecursiveInvocation
from squall.observability.lineage import LINEAGE, function_key
from squall.observability.recorder import Recorder
from squall.runtime.invocation import Invocation

ran: list[str] = []


async def runtime(request: InvokeRequest) -> Invocation:
    ran.append(request.request_id)
    return Invocation(request.request_id, request.function, request.trigger, 0.0, 1.0, 128, result="ok")


def invoke(recorder: Recorder, lineage: str | None) -> Invocation:
    headers = {} if lineage is None else {LINEAGE: lineage}
    handler = chain([RecursionGuard(recorder)], runtime)
    return asyncio.run(handler(InvokeRequest("f", None, "queue", "loop", headers=headers)))


def test_up_to_sixteen_runs_pass_and_the_seventeenth_is_stopped(caplog):
    recorder = Recorder()
    ran.clear()
    assert invoke(recorder, None).ok and invoke(recorder, f"{function_key('f')}:15").ok
    assert invoke(recorder, f"{function_key('g')}:40").ok  # another function's count is not f's
    assert len(ran) == 3
    with caplog.at_level(logging.WARNING, "squall.recursion"):
        stopped = invoke(recorder, f"{function_key('g')}:2|{function_key('f')}:16")
    assert len(ran) == 3  # never reached the runtime
    assert isinstance(stopped.error, RecursiveInvocation) and not stopped.error.retryable
    assert stopped.error.error_type == "RecursiveInvocationException" and str(stopped.error) == MESSAGE
    assert f"function f: {MESSAGE} Request {stopped.request_id} (queue loop)" in caplog.text
    assert recorder.snapshot().recursion_dropped == {"f": 1}
