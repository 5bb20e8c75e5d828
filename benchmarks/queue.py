"""Queue benchmark: messages/s end to end through a real `squall run` node.

For each case the queue is filled first (20,000 messages by default), then a node is
started; the clock runs from the node's first claim (the oldest message is received) until
the queue is empty, i.e. every message was delivered to a function instance in an SQS
batch, handled (a no-op that iterates the records) and acknowledged. Afterwards the node's
metering confirms that every invocation succeeded and the dead-letter queue is empty.
Target: >= 5,000 messages/s at batch size 100 on the embedded SQLite backend.

    python benchmarks/queue.py [--messages 20000] [--backend URL]

Each consumer setup is a context manager that starts consumers for an already-filled
queue (`squall_node` below); `time_drain` times any of them, so other setups (several
nodes, other queue systems) are one more function and one more entry in `main`.
"""

from __future__ import annotations

import os
import sys

# This directory would shadow the standard library's `queue` module: search it last.
_HERE = os.path.dirname(os.path.abspath(__file__))
sys.path[:] = [p for p in sys.path if os.path.abspath(p or ".") != _HERE] + [_HERE]

import argparse  # noqa: E402
import contextlib  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
import uuid  # noqa: E402
from dataclasses import dataclass  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Callable, ContextManager, Iterator  # noqa: E402

from _support import child, free_port, squall_run, warn_if_busy  # noqa: E402

from squall.backends import Backend, open_backend  # noqa: E402
from squall.loader import load_app  # noqa: E402
from squall.metering import read_records  # noqa: E402
from squall.services import Queue  # noqa: E402

TARGET_RATE = 5000  # messages/s at batch size 100 on SQLite
SEND_CHUNK = 1000

#: one queue per batch size, each with its own function; both no-ops that touch every record
APP = """\
from squall import App

app = App("bench")


def drain(event, ctx):
    for record in event["Records"]:
        record["body"]


app.on_queue("bench-b1", drain, name="batch1", batch_size=1, visibility_timeout=120)
app.on_queue("bench-b100", drain, name="batch100", batch_size=100, visibility_timeout=120)
"""

#: (label, queue, function)
CASES = [("batch_size 1", "bench-b1", "batch1"), ("batch_size 100", "bench-b100", "batch100")]


@dataclass
class Drain:
    label: str
    messages: int
    seconds: float  # first claim -> queue empty
    startup: float  # consumers started -> first claim

    @property
    def rate(self) -> float:
        return self.messages / self.seconds


def fill(backend: Backend, queue: str, count: int) -> None:
    """Empty `queue` and its DLQ, then send `count` small messages in batches."""
    dlq = backend.queue_config(queue)["dlq"]
    backend.purge(queue)
    backend.purge(dlq)
    sender = Queue(backend, queue)
    for start in range(0, count, SEND_CHUNK):
        sender.send_batch([f'{{"n": {n}}}' for n in range(start, min(count, start + SEND_CHUNK))])


def time_drain(backend: Backend, label: str, queue: str, count: int, consumers: ContextManager,
               timeout: float) -> Drain:
    """Start `consumers` on a filled queue; time from the first claim until it is empty.

    Polls the oldest message: claims go oldest first, so its first receive time is when
    consumption began, and there is none once every message was acknowledged. A probe
    can cost milliseconds on a long queue, so the pause after each is ten times its cost
    (the poller takes at most a tenth of a core from the consumers).
    """
    started = time.time()
    first_claim = None
    with consumers as alive:
        deadline = started + timeout
        while True:
            probe_started = time.time()
            oldest = backend.peek(queue, 1)
            now = time.time()
            if first_claim is None and not oldest:
                first_claim = now
            elif first_claim is None and oldest[0].receive_count > 0:
                first_claim = oldest[0].first_received_at or now
            if not oldest:
                break
            if now > deadline:
                left = backend.queue_stats(queue).total
                raise RuntimeError(f"{label}: {left} of {count} messages left after {timeout:g} s")
            alive()
            time.sleep(max(0.002, 10 * (now - probe_started)))
    return Drain(label, count, now - first_claim, first_claim - started)


@contextlib.contextmanager
def squall_node(app_path: Path, backend_url: str, node_id: str, workdir: Path) -> Iterator[Callable[[], None]]:
    """One `squall run` node; yields a check that raises if the node has exited."""
    command = squall_run(app_path, backend_url, free_port(), "--node-id", node_id)
    log = workdir / f"{node_id}.log"
    with child(command, workdir, log) as process:
        def alive() -> None:
            if process.poll() is not None:
                raise RuntimeError(f"node exited with {process.returncode}:\n{log.read_text(errors='replace')}")

        yield alive


def verify(backend: Backend, queue: str, function: str, node_id: str) -> str:
    """What the node's metering and the DLQ say about the run (after the node stopped)."""
    records = [r for r in read_records(backend, limit=1_000_000) if r["node"] == node_id and r["function"] == function]
    failed = sum(r["outcome"] != "success" for r in records)
    dead = backend.queue_stats(backend.queue_config(queue)["dlq"]).total
    note = f"{len(records)} invocations, {failed} failed, {dead} in the DLQ"
    if failed or dead:
        note += "  WARNING: not every message was handled successfully"
    return note


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--messages", type=int, default=20_000, help="messages per case")
    parser.add_argument("--backend", default=None, metavar="URL",
                        help="backend to run on (default: a new SQLite file in a temporary directory)")
    parser.add_argument("--timeout", type=float, default=120, help="seconds allowed per case")
    args = parser.parse_args()
    warn_if_busy()

    with tempfile.TemporaryDirectory(prefix="squall-bench-queue-") as tmp:
        workdir = Path(tmp)
        app_path = workdir / "app.py"
        app_path.write_text(APP)
        backend_url = args.backend or f"sqlite:///{workdir / 'state.db'}"
        backend = open_backend(backend_url)
        for name, config in load_app(str(app_path)).declared_queues().items():
            backend.queue_declare(name, config)
        print(f"backend {backend_url}; {args.messages:,} messages per case, one `squall run` node\n")
        print(f"{'case':<18}{'messages/s':>12}{'seconds':>10}{'start-up s':>12}   check")
        results = []
        try:
            for label, queue, function in CASES:
                fill(backend, queue, args.messages)
                node_id = f"bench-{function}-{uuid.uuid4().hex[:6]}"
                drain = time_drain(backend, label, queue, args.messages,
                                   squall_node(app_path, backend_url, node_id, workdir), args.timeout)
                results.append(drain)
                print(f"{label:<18}{drain.rate:>12,.0f}{drain.seconds:>10.2f}{drain.startup:>12.2f}   "
                      f"{verify(backend, queue, function, node_id)}", flush=True)
        finally:
            backend.close()

    batch100 = next(r for r in results if r.label == "batch_size 100")
    verdict = "meets" if batch100.rate >= TARGET_RATE else "MISSES"
    print(f"\nbatch_size 100: {batch100.rate:,.0f} messages/s ({verdict} the target >= {TARGET_RATE:,}/s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
