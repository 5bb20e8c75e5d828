"""What recursive loop detection costs each invocation, in the node (prints figures, asserts nothing).

Three costs, each next to its baseline in the same run:

- the pipeline with `RecursionGuard` against the same pipeline without it (Metering over
  a no-op runtime), for a request from outside (no lineage: the HTTP path) and for one in
  a chain (the queue path);
- building a queue batch's request headers from its messages' `AWS.TraceHeader` with the
  lineage read, against reading the trace context alone (what the consumer did before);
- the lineage an instance's first send carries (`hop`), once per invocation that sends.

Run: `python benchmarks/recursion.py [--n 200000]`.
"""

from __future__ import annotations

import argparse
import asyncio
import time
from collections.abc import Callable

from squall.core.pipeline import InvokeRequest, chain
from squall.core.recursion import RecursionGuard
from squall.observability import lineage
from squall.observability.context import SpanContext, message_header, parse_xray, trace_attribute
from squall.observability.metering import Meter, Metering
from squall.observability.recorder import Recorder
from squall.runtime.invocation import Invocation


class NoBackend:
    """Metering's meter needs no backend until it flushes, which this never does."""


async def terminal(request: InvokeRequest) -> Invocation:
    return Invocation(request.request_id, request.function, request.trigger, 0.0, 1.0, 128, result=None)


def pipeline(guard: bool):
    recorder = Recorder()
    links = [Metering(Meter(NoBackend(), "bench"), recorder)]  # type: ignore[arg-type]
    return chain([RecursionGuard(recorder), *links] if guard else links, terminal)


def per_call(n: int, run: Callable[[], object]) -> float:
    """Microseconds per call of `run`, best of three rounds."""
    best = float("inf")
    for _ in range(3):
        start = time.perf_counter()
        for _ in range(n):
            run()
        best = min(best, (time.perf_counter() - start) / n * 1e6)
    return best


def invocations(n: int, headers: dict[str, str], rounds: int = 5) -> tuple[float, float]:
    """Microseconds per invocation with the guard and without, best of interleaved rounds
    (interleaved so a machine busy for a moment skews both alike)."""
    handlers = pipeline(True), pipeline(False)

    async def go() -> tuple[float, float]:
        best = [float("inf"), float("inf")]
        for _ in range(rounds):
            for i, handler in enumerate(handlers):
                start = time.perf_counter()
                for _ in range(n):
                    await handler(InvokeRequest("f", None, headers=dict(headers)))
                best[i] = min(best[i], (time.perf_counter() - start) / n * 1e6)
        return best[0], best[1]

    return asyncio.run(go())


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--n", type=int, default=200_000)
    n = parser.parse_args().n
    chain_lineage = lineage.hop(lineage.hop(None, "g"), "f")
    print(f"{'measure':58} {'us/call':>9} {'baseline':>9} {'ratio':>6}")
    for label, headers in (("invocation, no lineage (HTTP path)", {}),
                           ("invocation, lineage f:1|g:1 (queue path)", {lineage.LINEAGE: chain_lineage})):
        with_guard, without = invocations(n // 10, headers)
        print(f"{label:58} {with_guard:9.3f} {without:9.3f} {with_guard / without:6.2f}")
    context = SpanContext("0af7651916cd43dd8448eb211c80319c", "b7ad6b7169203331", True)
    attributes = {"AWS.TraceHeader": trace_attribute(context, chain_lineage)}
    traced_only = per_call(n, lambda: parse_xray(message_header(attributes)))
    with_lineage = per_call(n, lambda: (parse_xray(h := message_header(attributes)), lineage.from_xray(h)))
    print(f"{'batch of 1: trace context + lineage from AWS.TraceHeader':58} {with_lineage:9.3f} {traced_only:9.3f} "
          f"{with_lineage / traced_only:6.2f}")
    first_send = per_call(n, lambda: lineage.hop(chain_lineage, "f"))
    print(f"{'first send of an invocation: hop(lineage, f)':58} {first_send:9.3f}")


if __name__ == "__main__":
    main()
