"""Event bus throughput: events put, matched and fanned out to their targets' queues.

A bus with 100 rules (a mix of exact, prefix, numeric and anything-but patterns) and three
targets each; every event matches three rules, so it becomes nine target messages. Timed,
in one process on SQLite (and on Redis with --backend redis):

- **bus**: `put_events` in requests of 10 entries, then the bus's `Router` routing every
  event (claim, one match against the compiled rules, the input of each target, one
  `fan_out` commit per claim, consuming it), until the intake queue is empty;
- **baseline**, the same run: the same nine messages per event sent straight to the same
  queues, one `enqueue_batch` per queue per 10 events (what a producer that knew its
  consumers would do without a bus).

Prints events/s and target messages/s of both, and bus/baseline.

    python benchmarks/bus.py [--events 5000] [--backend sqlite|redis] [--redis URL]
"""

from __future__ import annotations

import os
import sys

# Search this directory last: its scripts must not shadow standard library modules.
_HERE = os.path.dirname(os.path.abspath(__file__))
sys.path[:] = [p for p in sys.path if os.path.abspath(p or ".") != _HERE] + [_HERE]

import argparse  # noqa: E402
import json  # noqa: E402
import random  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from typing import Any  # noqa: E402

from _support import warn_if_busy  # noqa: E402

from squall.app import App  # noqa: E402
from squall.backends import Backend, QueueConfig, open_backend  # noqa: E402
from squall.sources.events import Router, intake_queue, put_events, routes_of  # noqa: E402

RULES = 100
TARGETS = 3
MATCHED = 3
BATCH = 10


def app_with_rules() -> App:
    app = App("bench")
    for i in range(RULES):
        detail: dict[str, Any] = [
            {"kind": [f"k{i}"]}, {"kind": [{"prefix": f"k{i}-"}], "total": [{"numeric": [">", 0]}]},
            {"kind": [f"k{i}"], "state": [{"anything-but": ["cancelled"]}]},
        ][i % 3]
        app.rule(f"r{i}", pattern={"source": ["shop"], "detail": detail},
                 targets=[{"queue": f"q{i}-{t}"} for t in range(TARGETS)])
    return app


def event_for(rng: random.Random, n: int) -> dict[str, Any]:
    """An event that matches MATCHED rules: its kind names three rules whose patterns fit."""
    group = rng.randrange(RULES // MATCHED) * MATCHED
    return {"Source": "shop", "DetailType": "order", "Detail": json.dumps(
        {"kind": [f"k{group}", f"k{group + 1}-x", f"k{group + 2}"], "total": n + 1, "state": "paid"})}


def bus_run(backend: Backend, app: App, events: list[dict[str, Any]]) -> float:
    backend.queue_declare(intake_queue("default"), QueueConfig(internal=True))
    router = Router(backend, "default", list(routes_of(app, "default")))
    start = time.perf_counter()
    for first in range(0, len(events), BATCH):
        answer = put_events(backend, events[first:first + BATCH])
        assert answer["FailedEntryCount"] == 0
    while router.pump_once():
        pass
    return time.perf_counter() - start


def direct_run(backend: Backend, app: App, events: list[dict[str, Any]]) -> float:
    """The same target messages, sent straight to their queues (the router's matching is
    done beforehand, untimed: the baseline is the cost of the writes alone)."""
    router = Router(backend, "default", list(routes_of(app, "default")))
    plans = []
    for first in range(0, len(events), BATCH):
        per_queue: dict[str, list[tuple[str, None, float]]] = {}
        for entry in events[first:first + BATCH]:
            event = {"version": "0", "id": "x", "detail-type": entry["DetailType"], "source": entry["Source"],
                     "account": "0", "time": "t", "region": "r", "resources": [], "detail": json.loads(entry["Detail"])}
            body = json.dumps(event)
            for index in router.rules.matching(event):
                for queue, _ in router.routes[index].targets:
                    per_queue.setdefault(queue.replace("rule/", "direct/"), []).append((body, None, 0.0))
        plans.append(per_queue)
    start = time.perf_counter()
    for per_queue in plans:
        for queue, entries in per_queue.items():
            backend.enqueue_batch(queue, entries)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--events", type=int, default=5000)
    parser.add_argument("--backend", choices=("sqlite", "redis"), default="sqlite")
    parser.add_argument("--redis", default="redis://127.0.0.1:6379/15")
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args()
    warn_if_busy()
    rng = random.Random(args.seed)
    app = app_with_rules()
    events = [event_for(rng, n) for n in range(args.events)]
    with tempfile.TemporaryDirectory() as directory:
        url = f"sqlite:///{directory}/state.db" if args.backend == "sqlite" else args.redis
        backend = open_backend(url)
        if args.backend == "redis":
            import redis

            redis.Redis.from_url(url).flushdb()
        try:
            direct = direct_run(backend, app, events)
            bus = bus_run(backend, app, events)
            delivered = sum(backend.queue_stats(f"rule/default/r{i}/{t}").total for i in range(RULES)
                            for t in range(TARGETS))
        finally:
            backend.close()
    assert delivered == args.events * MATCHED * TARGETS, delivered
    messages = args.events * MATCHED * TARGETS
    print(f"{args.backend}: {args.events} events, {RULES} rules x {TARGETS} targets, {MATCHED} rules matched per event")
    print(f"  bus (put + route):       {args.events / bus:10,.0f} events/s  {messages / bus:10,.0f} target messages/s")
    print(f"  baseline (direct sends): {args.events / direct:10,.0f} events/s  {messages / direct:10,.0f} "
          f"target messages/s")
    print(f"  bus/baseline: {direct / bus:.2f}")


if __name__ == "__main__":
    main()
