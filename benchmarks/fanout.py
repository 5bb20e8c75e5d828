"""Fan-out benchmark (topics): publishes/s to a topic with 10 subscribers, every delivery handled.

One `squall run` node serves an app with three ways of getting a message to 10 consumers:

- `functions`: topic `to-functions` with 10 function subscribers (each delivery an
  asynchronous invocation of a no-op that reads the SNS event);
- `queues`: topic `to-queues` with 10 queue subscriptions, each queue consumed in SQS
  batches of up to 100 by a no-op;
- `direct` (the baseline): the same messages sent to 10 other queues, one `Queue.send`
  per queue per message (what a producer does without topics), consumed the same way.

This process publishes (or sends) the messages as fast as it can, on the node's backend,
while the node consumes. Two figures per case: the producer's rate (publishes/s, or
messages/s for the baseline: each message sent to all 10 queues) and the end-to-end rate
(messages/s from the first publish until the last of the 10 x N deliveries is handled and
acknowledged, none dead-lettered). The ratios compare each topic case with the baseline,
measured in the same run.

    python benchmarks/fanout.py [--messages 2000] [--backend sqlite|redis]...
"""

from __future__ import annotations

import os
import sys

_HERE = os.path.dirname(os.path.abspath(__file__))
sys.path[:] = [p for p in sys.path if os.path.abspath(p or ".") != _HERE] + [_HERE]

import argparse  # noqa: E402
import shutil  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from dataclasses import dataclass  # noqa: E402
from pathlib import Path  # noqa: E402

from _support import child, free_port, squall_run, throwaway_redis, warn_if_busy  # noqa: E402

from squall.backends import Backend, open_backend  # noqa: E402
from squall.services import Queue  # noqa: E402
from squall.sources.publishing import Publisher  # noqa: E402
from squall.sources.topics import delivery_queue, stored_topic  # noqa: E402

SUBSCRIBERS = 10
APP = f"""\
from squall import App

app = App("fanout")

def handle(event, ctx):
    for record in event["Records"]:
        record.get("Sns") or record["body"]

for n in range({SUBSCRIBERS}):
    app.on_topic("to-functions", handle, name=f"f{{n}}")
    app.subscribe_queue("to-queues", f"q{{n}}")
    app.on_queue(f"q{{n}}", handle, name=f"q{{n}}", batch_size=100)
    app.on_queue(f"d{{n}}", handle, name=f"d{{n}}", batch_size=100)
"""
MESSAGE = '{"order": {"id": "o-1", "total": 42.5, "items": [{"sku": "tea", "quantity": 2}]}}'


@dataclass
class Result:
    case: str
    produce_rate: float
    end_to_end_rate: float


def pending(backend: Backend, queues: list[str]) -> int:
    return sum(backend.queue_stats(q).total for q in queues)


def run_case(backend: Backend, case: str, count: int) -> Result:
    if case == "functions":
        queues = [delivery_queue("to-functions", f"f{n}") for n in range(SUBSCRIBERS)]
    else:
        queues = [f"{'q' if case == 'queues' else 'd'}{n}" for n in range(SUBSCRIBERS)]
    start = time.perf_counter()
    if case == "direct":
        senders = [Queue(backend, q) for q in queues]
        for _ in range(count):
            for sender in senders:
                sender.send(MESSAGE)
    else:
        topic = stored_topic(backend, f"to-{case}")
        publisher = Publisher(backend)
        for _ in range(count):
            publisher.publish(topic, MESSAGE, {"kind": "paid"})
    produced = time.perf_counter() - start
    deadline = time.monotonic() + 300
    while pending(backend, queues):
        if time.monotonic() > deadline:
            raise SystemExit(f"{case}: deliveries still pending after 300 s")
        time.sleep(0.01)
    handled = time.perf_counter() - start
    dead = sum(backend.queue_stats(f"{q}-dlq").total for q in queues)
    if dead:
        raise SystemExit(f"{case}: {dead} deliveries dead-lettered")
    return Result(case, count / produced, count / handled)


def bench(backend_url: str, workdir: Path, count: int) -> list[Result]:
    app = workdir / "app.py"
    app.write_text(APP)
    port = free_port()
    with child(squall_run(app, backend_url, port), workdir, workdir / "node.log", port):
        backend = open_backend(backend_url)
        try:
            run_case(backend, "direct", 50)  # warm: instances forked, connections open
            run_case(backend, "queues", 50)
            run_case(backend, "functions", 50)
            return [run_case(backend, case, count) for case in ("direct", "queues", "functions")]
        finally:
            backend.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--messages", type=int, default=2000)
    parser.add_argument("--backend", action="append", choices=["sqlite", "redis"])
    args = parser.parse_args()
    warn_if_busy()
    for kind in args.backend or ["sqlite", "redis"]:
        workdir = Path(tempfile.mkdtemp(prefix="squall-fanout-"))
        try:
            if kind == "sqlite":
                results = bench(f"sqlite:///{workdir}/state.db", workdir, args.messages)
            else:
                with throwaway_redis(workdir) as url:
                    results = bench(url, workdir, args.messages)
        finally:
            shutil.rmtree(workdir, ignore_errors=True)
        print(f"\n{kind}: {args.messages} messages, {SUBSCRIBERS} subscribers each ({SUBSCRIBERS * args.messages} "
              f"deliveries), one node")
        print(f"{'case':<28}{'produced/s':>12}{'end to end/s':>14}{'vs direct':>11}")
        direct = results[0]
        for r in results:
            label = {"direct": "direct: 10 sends (baseline)", "queues": "topic -> 10 queues",
                     "functions": "topic -> 10 functions"}[r.case]
            print(f"{label:<28}{r.produce_rate:>12,.0f}{r.end_to_end_rate:>14,.0f}"
                  f"{r.end_to_end_rate / direct.end_to_end_rate:>10.2f}x")


if __name__ == "__main__":
    main()
