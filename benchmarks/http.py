"""HTTP benchmark: a warm hello-world route through `squall run` vs the same handler on bare
Starlette + uvicorn, both loaded by the same `wrk` in the same run; and `squall run
--no-observability` beside them, for what traces, metrics and the stored log cost.

Both servers are single uvicorn processes with the same options (httptools, the default
loop, no access log, warning log level); Squall adds what it is for:
the request becomes an API Gateway v2 event, crosses to an isolated function instance
(a forked process) and back, and is metered. Every round starts the three servers afresh
(benchmarks/README.md: a set of processes keeps its speed for life). Targets: squall/bare
>= 0.5, and observability costing under 10% (squall / squall without observability >= 0.9,
the median of the rounds' ratios).

    python benchmarks/http.py [--duration 5] [--connections 8] [--rounds 5]
"""

from __future__ import annotations

import os
import sys

# This directory would shadow the standard library's `http` module: search it last.
_HERE = os.path.dirname(os.path.abspath(__file__))
sys.path[:] = [p for p in sys.path if os.path.abspath(p or ".") != _HERE] + [_HERE]

import argparse  # noqa: E402
import contextlib  # noqa: E402
import re  # noqa: E402
import shutil  # noqa: E402
import statistics  # noqa: E402
import subprocess  # noqa: E402
import tempfile  # noqa: E402
import textwrap  # noqa: E402
import urllib.request  # noqa: E402
from dataclasses import dataclass  # noqa: E402
from pathlib import Path  # noqa: E402

from _support import PYTHON, child, free_port, process_cpu, process_times, squall_run, warn_if_busy  # noqa: E402

TARGET_RATIO = 0.5
#: the least share of its throughput squall keeps with observability on
OBSERVABILITY_TARGET = 0.9

HANDLER = """
import json

BODY = json.dumps({"message": "hello"})


def hello(event, ctx):
    return {"statusCode": 200, "headers": {"content-type": "application/json"}, "body": BODY}
"""

SQUALL_APP = """
from handler import hello
from squall import App

app = App("bench")
# one vCPU (Lambda's 1,769 MB), as the bare server's handler has a whole core: the figure is
# the platform's cost, not a 128 MB function's CPU share (memory_mb / 1769 of a core)
app.http("GET", "/hello", hello, memory_mb=1769)
"""

BARE_APP = """
from starlette.applications import Starlette
from starlette.responses import Response
from starlette.routing import Route

from handler import hello


async def endpoint(request):
    result = hello({"rawPath": request.url.path}, None)
    return Response(result["body"], result["statusCode"], result["headers"])


app = Starlette(routes=[Route("/hello", endpoint, methods=["GET"])])
"""

#: what `squall run` gives uvicorn.Config (squall/server.py), as uvicorn command-line options
UVICORN_OPTIONS = ["--log-level", "warning", "--no-access-log", "--lifespan", "off", "--no-server-header"]


@dataclass
class Result:
    requests_per_s: float
    p50_ms: float
    p99_ms: float
    requests: int
    errors: int  # non-2xx responses and socket errors
    #: CPU µs per request of the server process, and of the processes it started (instances):
    #: all of it, and their user CPU alone (their system time grows when the server is
    #: slower, as each request then finds its instance asleep: a side effect, not their work)
    server_us: float = 0.0
    children_us: float = 0.0
    children_user_us: float = 0.0


def cpu_of(root: int) -> tuple[float, float, float]:
    """CPU seconds of `root`, and of every live process below it (all, then user only).
    Instances call setsid(), so they are found by parent, not by session; one that exited
    is no longer counted, which is why the figure is read around each round of a warm server."""
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                stat = Path(f"/proc/{entry}/stat").read_text()
            except OSError:
                continue
            children.setdefault(int(stat.rsplit(")", 1)[1].split()[1]), []).append(int(entry))
    user = system = 0.0
    stack = list(children.get(root, []))
    while stack:
        pid = stack.pop()
        stack.extend(children.get(pid, []))
        try:
            times = process_times(pid)
        except OSError:
            continue
        user, system = user + times[0], system + times[1]
    return process_cpu(root), user + system, user


def parse_wrk(output: str) -> Result:
    """Throughput, the 50th/99th latency percentiles and error counts from `wrk --latency`."""
    def duration_ms(text: str) -> float:
        value, unit = re.fullmatch(r"([\d.]+)(us|ms|s|m)", text).groups()
        return float(value) * {"us": 0.001, "ms": 1.0, "s": 1000.0, "m": 60000.0}[unit]

    percentiles = dict(re.findall(r"^\s+(50|99)%\s+(\S+)$", output, re.M))
    errors = sum(int(n) for n in re.findall(r"(?:connect|read|write|timeout) (\d+)", output))
    non_2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", output)
    return Result(requests_per_s=float(re.search(r"Requests/sec:\s+([\d.]+)", output).group(1)),
                  p50_ms=duration_ms(percentiles["50"]), p99_ms=duration_ms(percentiles["99"]),
                  requests=int(re.search(r"(\d+) requests in", output).group(1)),
                  errors=errors + (int(non_2xx.group(1)) if non_2xx else 0))


def wrk(url: str, seconds: int, connections: int, threads: int) -> Result:
    args = ["wrk", f"-t{threads}", f"-c{connections}", f"-d{seconds}s", "--latency", url]
    done = subprocess.run(args, capture_output=True, text=True, timeout=seconds + 60)
    if done.returncode != 0:
        raise RuntimeError(f"wrk failed: {done.stderr.strip() or done.stdout.strip()}")
    return parse_wrk(done.stdout)


def check(url: str) -> None:
    """One request by hand: the route must answer 200 before it is measured."""
    with urllib.request.urlopen(url, timeout=10) as response:
        if response.status != 200:
            raise RuntimeError(f"{url} answered {response.status}")


def measured(url: str, pid: int, seconds: int, connections: int, threads: int) -> Result:
    """A `wrk` round, with the CPU the server (and what it started) spent per request."""
    server_before, children_before, user_before = cpu_of(pid)
    result = wrk(url, seconds, connections, threads)
    server_after, children_after, user_after = cpu_of(pid)
    if result.requests:
        result.server_us = (server_after - server_before) / result.requests * 1e6
        result.children_us = max(0.0, children_after - children_before) / result.requests * 1e6
        result.children_user_us = max(0.0, user_after - user_before) / result.requests * 1e6
    return result


def summary(results: list[Result]) -> Result:
    """The median of each figure over the rounds (errors are summed)."""
    def median(figure: str) -> float:
        return statistics.median(getattr(r, figure) for r in results)

    return Result(median("requests_per_s"), median("p50_ms"), median("p99_ms"), sum(r.requests for r in results),
                  sum(r.errors for r in results), median("server_us"), median("children_us"),
                  median("children_user_us"))


def row(name: str, r: Result) -> str:
    errors = f"  ({r.errors} errors)" if r.errors else ""
    return (f"{name:<28}{r.requests_per_s:>11,.0f}{r.p50_ms:>10.2f}{r.p99_ms:>10.2f}"
            f"{r.server_us:>10.1f}{r.children_us:>11.1f}{r.children_user_us:>11.1f}{errors}")


BARE, SQUALL, PLAIN = "bare starlette+uvicorn", "squall run (isolated)", "squall, no observability"


def round_of(directory: Path, order: list[str], args: argparse.Namespace) -> list[Result]:
    """One round: each server started afresh (a new database for squall), warmed up and
    measured, in `order`; all three run throughout, as in every round."""
    ports = {name: free_port() for name in order}
    commands = {
        BARE: [PYTHON, "-m", "uvicorn", "bare:app", "--host", "127.0.0.1", "--port", str(ports[BARE]),
               *UVICORN_OPTIONS],
        SQUALL: squall_run(directory / "app.py", f"sqlite:///{directory / 'state.db'}", ports[SQUALL]),
        PLAIN: squall_run(directory / "app.py", f"sqlite:///{directory / 'plain.db'}", ports[PLAIN],
                          "--no-observability"),
    }
    for database in directory.glob("*.db*"):
        database.unlink()
    with contextlib.ExitStack() as servers:
        pids = {name: servers.enter_context(child(commands[name], directory, directory / "server.log",
                                                  ports[name])).pid for name in order}
        urls = {name: f"http://127.0.0.1:{port}/hello" for name, port in ports.items()}
        for name in order:
            check(urls[name])
            wrk(urls[name], args.warmup, args.connections, args.threads)
        return [measured(urls[name], pids[name], args.duration, args.connections, args.threads) for name in order]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--duration", type=int, default=5, help="seconds of load per round and server")
    parser.add_argument("--connections", type=int, default=8, help="concurrent connections (both servers)")
    parser.add_argument("--threads", type=int, default=1, help="wrk threads (1 leaves a core to the servers)")
    parser.add_argument("--rounds", type=int, default=5, help="rounds, in alternating order; medians are reported")
    parser.add_argument("--warmup", type=int, default=2, help="seconds of load before measuring, per round")
    args = parser.parse_args()
    if shutil.which("wrk") is None:
        print("wrk is not installed: apt-get install wrk", file=sys.stderr)
        return 2
    warn_if_busy()

    with tempfile.TemporaryDirectory(prefix="squall-bench-http-") as tmp:
        directory = Path(tmp)
        for name, source in [("handler.py", HANDLER), ("app.py", SQUALL_APP), ("bare.py", BARE_APP)]:
            (directory / name).write_text(textwrap.dedent(source).lstrip())
        names = [BARE, SQUALL, PLAIN]
        results: dict[str, list[Result]] = {name: [] for name in names}
        print(f"wrk: {args.connections} connections, {args.threads} thread(s), {args.duration:g} s x "
              f"{args.rounds} rounds per server, each after {args.warmup:g} s of warm-up\n")
        print("CPU per request, in µs: the server process, and the processes it started (instances;"
              " all, then user CPU only)\n")
        print(f"{'round / server':<28}{'req/s':>11}{'p50 ms':>10}{'p99 ms':>10}{'cpu µs':>10}{'inst. µs':>11}"
              f"{'inst. user':>11}")
        for round_number in range(1, args.rounds + 1):
            # Fresh servers every round: where the scheduler places a server, its instances
            # and wrk on this VM's two cores sets a process's speed for its whole life (the
            # same server measured twice in one process differs by a sixth between runs), so
            # one set of processes would measure that placement, not what squall costs. And
            # squall with and without observability run back to back, in the order reversed
            # each round: the machine's speed drifts by a tenth within a minute, and the
            # observability ratio is taken per round, of two runs seconds apart.
            order = names if round_number % 2 else names[::-1]
            for name, result in zip(order, round_of(directory, order, args), strict=True):
                results[name].append(result)
                print(row(f"{round_number}  {name}", result), flush=True)

    bare, squall, plain = (summary(results[name]) for name in names)
    print("\nmedian over rounds")
    for name, result in zip(names, (bare, squall, plain), strict=True):
        print(row(name, result))
    ratio = squall.requests_per_s / bare.requests_per_s
    verdict = "meets" if ratio >= TARGET_RATIO else "MISSES"
    print(f"\nratio squall/bare (req/s): {ratio:.2f}  ({verdict} the target >= {TARGET_RATIO})")
    per_round = [on.requests_per_s / off.requests_per_s for on, off in
                 zip(results[SQUALL], results[PLAIN], strict=True)]
    kept = statistics.median(per_round)
    verdict = "meets" if kept >= OBSERVABILITY_TARGET else "MISSES"
    print(f"ratio squall/squall without observability (req/s), median of the rounds' ratios: {kept:.2f}  "
          f"({verdict} the target >= {OBSERVABILITY_TARGET}; rounds: {', '.join(f'{r:.2f}' for r in per_round)})")
    print(f"observability's CPU per request: {squall.server_us - plain.server_us:+.1f} µs in the node, "
          f"{squall.children_us - plain.children_us:+.1f} µs in instances "
          f"({squall.children_user_us - plain.children_user_us:+.1f} µs of it user CPU)")
    if squall.errors or bare.errors or plain.errors:
        print("WARNING: some requests failed (non-2xx or socket errors); see the rows above")
    return 0


if __name__ == "__main__":
    sys.exit(main())
