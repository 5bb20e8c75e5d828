"""The invocation pipeline: interceptors chained first-outermost around the runtime."""

from __future__ import annotations

import asyncio
import dataclasses
import re

import pytest

from squall.core.pipeline import Interceptor, InvokeRequest, chain
from squall.errors import FunctionError
from squall.runtime.invocation import Invocation
from tests.unit.support import invocation


class Terminal:
    """The runtime at the end of the chain: records the requests it is given."""

    def __init__(self, log: list[str] | None = None) -> None:
        self.requests: list[InvokeRequest] = []
        self.log = log if log is not None else []

    async def __call__(self, request: InvokeRequest) -> Invocation:
        self.requests.append(request)
        self.log.append("runtime")
        return invocation({"echo": request.event}, request_id=request.request_id, function=request.function,
                          trigger=request.trigger)


class Tracing(Interceptor):
    def __init__(self, name: str, log: list[str]) -> None:
        self.name, self.log = name, log

    async def __call__(self, request, call_next):
        self.log.append(f"{self.name} in")
        result = await call_next(request)
        self.log.append(f"{self.name} out")
        return result


def run(handler, request: InvokeRequest) -> Invocation:
    return asyncio.run(handler(request))


def test_chain_runs_the_first_interceptor_outermost():
    log: list[str] = []
    handler = chain([Tracing("metering", log), Tracing("tracing", log), Tracing("idempotency", log)],
                    Terminal(log))
    result = run(handler, InvokeRequest("f", {"n": 1}))
    assert result.result == {"echo": {"n": 1}}
    assert log == ["metering in", "tracing in", "idempotency in", "runtime",
                   "idempotency out", "tracing out", "metering out"]


def test_an_empty_chain_is_the_terminal():
    terminal = Terminal()
    assert chain([], terminal) is terminal


def test_the_chain_is_composed_once():
    log: list[str] = []
    interceptors: list[Interceptor] = [Tracing("a", log)]
    handler = chain(interceptors, Terminal(log))
    interceptors.append(Tracing("b", log))  # too late for this handler
    run(handler, InvokeRequest("f", None))
    assert log == ["a in", "runtime", "a out"]


class Cache(Interceptor):
    """Answers from its cache without calling the rest of the chain."""

    def __init__(self) -> None:
        self.cached: dict[str, Invocation] = {}

    async def __call__(self, request, call_next):
        key = repr(request.event)
        if key not in self.cached:
            self.cached[key] = await call_next(request)
        return self.cached[key]


def test_an_interceptor_that_short_circuits():
    log: list[str] = []
    terminal = Terminal(log)
    handler = chain([Tracing("outer", log), Cache(), Tracing("inner", log)], terminal)
    first = run(handler, InvokeRequest("f", 1))
    second = run(handler, InvokeRequest("f", 1))
    assert second is first
    assert len(terminal.requests) == 1
    assert log == ["outer in", "inner in", "runtime", "inner out", "outer out",  # first call
                   "outer in", "outer out"]  # the second stops at the cache


class Propagate(Interceptor):
    async def __call__(self, request, call_next):
        request.headers["traceparent"] = "00-abc-def-01"
        return await call_next(request)


class Rebuild(Interceptor):
    """Hands a new request downstream rather than changing the one it was given."""

    async def __call__(self, request, call_next):
        return await call_next(dataclasses.replace(request, headers={**request.headers, "x-hop": "2"},
                                                   event={"wrapped": request.event}))


def test_an_interceptor_changes_the_headers_seen_downstream():
    terminal = Terminal()
    seen: list[dict[str, str]] = []

    class Look(Interceptor):
        async def __call__(self, request, call_next):
            seen.append(dict(request.headers))
            return await call_next(request)

    request = InvokeRequest("f", "e", headers={"x-hop": "1"})
    result = run(chain([Look(), Propagate(), Look(), Rebuild()], terminal), request)
    assert seen == [{"x-hop": "1"}, {"x-hop": "1", "traceparent": "00-abc-def-01"}]
    [downstream] = terminal.requests
    assert downstream.headers == {"x-hop": "2", "traceparent": "00-abc-def-01"}
    assert downstream.request_id == request.request_id
    assert result.result == {"echo": {"wrapped": "e"}}


class Redact(Interceptor):
    """Rewrites the invocation on its way back."""

    async def __call__(self, request, call_next):
        result = await call_next(request)
        return dataclasses.replace(result, result={"redacted": True}, node="edge")


class Fail(Interceptor):
    async def __call__(self, request, call_next):
        result = await call_next(request)
        result.error = FunctionError("rejected by policy", "PolicyError")
        return result


def test_an_interceptor_rewrites_the_invocation():
    log: list[str] = []
    seen: list[Invocation] = []

    class Look(Interceptor):
        async def __call__(self, request, call_next):
            result = await call_next(request)
            seen.append(result)
            return result

    result = run(chain([Look(), Redact()], Terminal(log)), InvokeRequest("f", "secret"))
    assert result.result == {"redacted": True} and result.node == "edge"
    assert seen == [result]  # outer interceptors see the rewritten one

    failed = run(chain([Fail()], Terminal()), InvokeRequest("f", 1))
    assert not failed.ok and failed.outcome == "error" and failed.error.error_type == "PolicyError"


def test_an_error_raised_downstream_reaches_the_outer_interceptors():
    class Boom(Interceptor):
        async def __call__(self, request, call_next):
            raise RuntimeError("boom")

    class Guard(Interceptor):
        async def __call__(self, request, call_next):
            try:
                return await call_next(request)
            except RuntimeError as exc:
                return invocation(error=FunctionError(str(exc)))

    terminal = Terminal()
    result = run(chain([Guard(), Boom()], terminal), InvokeRequest("f", 1))
    assert str(result.error) == "boom" and terminal.requests == []
    with pytest.raises(RuntimeError, match="boom"):
        run(chain([Boom()], terminal), InvokeRequest("f", 1))


def test_invoke_request_defaults():
    a, b = InvokeRequest("f", {}), InvokeRequest("f", {})
    assert (a.trigger, a.source, a.wait, a.headers) == ("invoke", "", None, {})
    assert a.headers is not b.headers
    assert a.request_id != b.request_id
    assert re.fullmatch(r"[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}", a.request_id)


def test_an_interceptor_must_implement_call():
    with pytest.raises(TypeError):
        Interceptor()  # type: ignore[abstract]
