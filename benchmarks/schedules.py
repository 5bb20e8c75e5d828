"""Schedules benchmark: 1,000 schedules firing every minute on one `squall run` node.

Writes an app of 1,000 schedules, `cron(* * * * ? *)`, spread over 10 functions (100
named schedules each, `reserved_concurrency=4`), starts one real `squall run` node on
SQLite and then one on a throwaway redis-server, and on each lets the schedules fire for
`--warmup` minute boundaries (1), then measures `--minutes` more (2). The warm-up boundary
is the node's first firing, which also cold-starts every function's instances (a new
deployment's first minute; an app that fires every minute keeps them warm, with the
keep-alive of 300 s): its lateness is printed, marked, and left out of the figure. Each
handler records its lateness as AWS would count it: `time.time()` at the handler's start
minus the event's `time` (the scheduled minute).
It prints it, one line in the function log read back with `squall logs` (`--record log`,
the default), or stores it with `ctx.table().put` (`--record table`): a backend write in
every handler, which with 4 instances a function makes the handlers' own speed (on Redis
two round trips each, on a machine this busy milliseconds apiece) part of the figure.
The path measured is the whole one: the node's schedule service claims the due timers,
fires each into the function's asynchronous-invocation queue, the consumers claim them
and an instance runs the handler.

Baseline, in the same run and over the same minutes: this script's own asyncio loop with
1,000 `loop.call_at` timers per minute boundary, each recording how late its callback ran
(what a plain in-process timer loop achieves on this machine, while the node works).

Also printed: the node process's own CPU (its threads, not the zygote's or the instances')
from 1 s before each boundary to 9 s after it, per firing: what one asynchronous
invocation costs the node, from the timer to the settled message.

Target: p99 lateness under 1 s.

    python benchmarks/schedules.py [--minutes 2] [--warmup 1] [--schedules 1000] [--functions 10]
                                   [--concurrency 4] [--record log|table] [--backend sqlite|redis]...
"""

from __future__ import annotations

import os
import sys

_HERE = os.path.dirname(os.path.abspath(__file__))
sys.path[:] = [p for p in sys.path if os.path.abspath(p or ".") != _HERE] + [_HERE]

import argparse  # noqa: E402
import asyncio  # noqa: E402
import shutil  # noqa: E402
import subprocess  # noqa: E402
import tempfile  # noqa: E402
import textwrap  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

from _support import (  # noqa: E402
    PYTHON,
    child,
    free_port,
    percentile,
    process_cpu,
    squall_run,
    throwaway_redis,
    warn_if_busy,
)

from squall.backends import open_backend  # noqa: E402

APP = '''
import time
from datetime import datetime

from squall import App

app = App("schedules-bench")


def record(event, ctx):
    started = time.time()
    scheduled = datetime.fromisoformat(event["time"].replace("Z", "+00:00")).timestamp()
    if {table}:
        ctx.table("lateness").put(event["id"], {{"late": started - scheduled, "time": event["time"]}})
    else:
        print(f"LATE {{started - scheduled:.6f}} {{event['time']}}")


for f in range({functions}):
    for s in range({per_function}):
        app.schedule("cron(* * * * ? *)", record, name=f"job{{f}}", schedule_name=f"s{{f}}-{{s}}",
                     reserved_concurrency={concurrency})
'''


async def baseline(count: int, boundaries: list[float]) -> list[float]:
    """Lateness of `count` asyncio timers at each boundary (loop.call_at on the wall clock)."""
    loop = asyncio.get_running_loop()
    late: list[float] = []
    done = asyncio.Event()
    remaining = count * len(boundaries)

    def fire(boundary: float) -> None:
        nonlocal remaining
        late.append(time.time() - boundary)
        remaining -= 1
        if not remaining:
            done.set()

    for boundary in boundaries:
        for _ in range(count):
            loop.call_at(loop.time() + (boundary - time.time()), fire, boundary)
    await done.wait()
    return late


async def node_cpu(pid: int, boundaries: list[float]) -> float:
    """CPU seconds the node spent from 1 s before to 9 s after each boundary, summed."""
    spent = 0.0
    for boundary in boundaries:
        await asyncio.sleep(max(0.0, boundary - 1 - time.time()))
        before = process_cpu(pid)
        await asyncio.sleep(max(0.0, boundary + 9 - time.time()))
        spent += process_cpu(pid) - before
    return spent


async def observe(count: int, boundaries: list[float], pid: int) -> tuple[list[float], float]:
    """The baseline timers' lateness, and the node's CPU seconds around the boundaries."""
    late, cpu = await asyncio.gather(baseline(count, boundaries), node_cpu(pid, boundaries))
    return late, cpu


def summary(name: str, values: list[float]) -> str:
    ms = [v * 1000 for v in values]
    return (f"{name:<28} n={len(ms):>5}  p50={percentile(ms, 50):8.1f} ms  p99={percentile(ms, 99):8.1f} ms  "
            f"max={max(ms):8.1f} ms")


def iso(boundary: float) -> str:
    """A boundary as the scheduled event's `time` gives it."""
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(boundary))


def measure(url: str, directory: Path, args: argparse.Namespace
            ) -> tuple[list[float], list[tuple[str, float]], float, set[str]]:
    """One node on `url`: the baseline timers' lateness, the handlers' with their scheduled
    times, warm-up boundaries included (short if some firings did not arrive within 20 s
    of the last boundary), the node's CPU seconds around the measured boundaries, and
    their scheduled times."""
    app = directory / "app.py"
    app.write_text(textwrap.dedent(APP.format(functions=args.functions, concurrency=args.concurrency,
                                              per_function=args.schedules // args.functions,
                                              table=args.record == "table")))
    port = free_port()
    started = time.time()
    with child(squall_run(app, url, port), directory, directory / "node.log", port) as node:
        print(f"node up in {time.time() - started:.1f}s with {args.schedules} schedules", flush=True)
        # whole minutes that start at least 5 s from now (the node has provisioned); the
        # warm-up ones start the instances, as a new deployment's first firing does
        first = (int(time.time() + 5) // 60 + 1) * 60 + 60 * args.warmup
        boundaries = [first + 60 * k for k in range(args.minutes)]
        print(f"after {args.warmup} warm-up boundaries, measuring "
              f"{', '.join(time.strftime('%H:%M', time.gmtime(b)) for b in boundaries)}"
              f" UTC ({first + 60 * (args.minutes - 1) - time.time() + 20:.0f}s)", flush=True)
        timer_late, cpu = asyncio.run(observe(args.schedules, boundaries, node.pid))
        expected = args.schedules * (args.warmup + args.minutes)
        wanted = {iso(first + 60 * k) for k in range(-args.warmup, args.minutes)}
        measured: list[tuple[str, float]] = []
        deadline = time.time() + 20
        while time.time() < deadline:
            measured = recorded(url, args.record, wanted)
            if len(measured) >= expected:
                break
            time.sleep(0.5)
    return timer_late, measured, cpu, {iso(b) for b in boundaries}


def recorded(url: str, record: str, wanted: set[str]) -> list[tuple[str, float]]:
    """(scheduled time, lateness) the handlers recorded for the `wanted` times, so far."""
    if record == "log":
        out = subprocess.run([PYTHON, "-m", "squall", "logs", "--since", "10m", "--grep", "LATE ", "--backend", url],
                             capture_output=True, text=True, check=True).stdout
        found = (line.partition("LATE ")[2].split() for line in out.splitlines())
        return [(fields[1], float(fields[0])) for fields in found if len(fields) == 2 and fields[1] in wanted]
    backend = open_backend(url)
    try:
        return [(item.value["time"], item.value["late"]) for item in backend.table_scan("lateness", limit=100000)
                if item.value["time"] in wanted]
    finally:
        backend.close()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--minutes", type=int, default=2, help="minute boundaries to measure (2)")
    parser.add_argument("--warmup", type=int, default=1,
                        help="boundaries fired first, printed but not measured: the first starts the instances (1)")
    parser.add_argument("--schedules", type=int, default=1000)
    parser.add_argument("--functions", type=int, default=10)
    parser.add_argument("--concurrency", type=int, default=4, help="reserved_concurrency of each function (4)")
    parser.add_argument("--record", choices=["log", "table"], default="log",
                        help="how handlers record their lateness: a printed line (log) or a table write")
    parser.add_argument("--backend", action="append", choices=["sqlite", "redis"],
                        help="sqlite and/or redis (a throwaway redis-server); both by default")
    args = parser.parse_args()
    warn_if_busy()
    status = 0
    for kind in args.backend or ["sqlite", "redis"]:
        directory = Path(tempfile.mkdtemp(prefix="squall-bench-schedules-"))
        print(f"\n{kind} (lateness recorded by {args.record}):", flush=True)
        try:
            if kind == "sqlite":
                timer_late, firings, cpu, timed = measure(f"sqlite:///{directory}/state.db", directory, args)
            else:
                with throwaway_redis(directory) as url:
                    timer_late, firings, cpu, timed = measure(url, directory, args)
        finally:
            shutil.rmtree(directory, ignore_errors=True)
        print(summary("asyncio call_at (baseline)", timer_late))
        measured = [late for scheduled, late in firings if scheduled in timed]
        expected, fired = args.schedules * args.minutes, args.schedules * (args.warmup + args.minutes)
        if len(firings) < fired:
            print(f"only {len(firings)} of {fired} firings arrived within 20 s of the last boundary")
            status = 1
            continue
        print(summary(f"squall schedules ({kind})", measured))
        for minute in sorted({scheduled for scheduled, _ in firings}):
            label = f"  of {minute}" + ("" if minute in timed else " (warm-up)")
            print(summary(label, [late for scheduled, late in firings if scheduled == minute]))
        print(f"node CPU: {cpu:.2f} s over the {args.minutes} boundaries, {cpu / expected * 1000:.2f} ms per firing",
              flush=True)
        ratio = percentile(measured, 99) / max(percentile(timer_late, 99), 1e-6)
        print(f"p99 squall / p99 asyncio timer: {ratio:.0f}x; target p99 < 1000 ms: "
              f"{'met' if percentile(measured, 99) < 1 else 'NOT met'}", flush=True)
    return status


if __name__ == "__main__":
    sys.exit(main())
