"""Queue benchmark: messages/s end to end through real `squall run` nodes, against Celery.

Every case puts its backlog (20,000 messages by default) in place before any consumer
starts, starts N consumers, and once all of them are up releases the backlog to them at
once; the clock runs from the first message taken until the last one is acknowledged.
Releasing after start-up is what makes 2 and 4 consumers comparable: a node or worker
starts in about a second, while a batched drain of the whole backlog can take less, so
without it the first one up would do most of the work alone.

- Squall: the backlog waits in the queue's dead-letter queue while the nodes start; a
  redrive (`squall dlq redrive`) moves it into the queue, 1,000 messages per step on Redis
  (20,000 in about 0.2 s, faster than they are consumed). The clock starts at the first
  claim (the oldest message's first receive, or the first invocation's start in the
  nodes' metering when that is earlier) and stops when the queue is empty: every message
  was delivered to a function instance in an SQS batch, handled (a no-op that reads every
  record) and acknowledged. The metering then confirms every invocation succeeded and the
  DLQ is empty. Cases: batch_size 1 and 100.
- Celery (Redis backends only, the baseline): the same messages on the same Redis server,
  its keys under a prefix of their own, one no-op task per message that reads it (Celery has
  no batching), `acks_late` (acknowledged after the task ran, as Squall does), workers with
  the default prefork pool and one process per core. The workers start on an empty queue;
  once all answer a ping, an `add_consumer` broadcast points them at the filled one. The
  clock starts when the first message leaves the queue and stops when the queue and the
  unacked set are empty and the workers' stats count every task.

- FIFO (`--fifo`): the same drain through a FIFO queue (batch_size 10, Lambda's FIFO
  maximum) with its 20,000 messages spread over 1, 10 and 100 message groups, against a
  standard queue at batch_size 10 in the same run. One group is delivered one batch at a
  time by design; more groups let batches run side by side.

Targets: >= 5,000 messages/s at batch size 100 on SQLite; on Redis, Squall >= Celery at
batch size 1 and >= 3x Celery at batch size 100, with the same number of nodes and workers.

    python benchmarks/queue.py [--messages 20000] [--backend URL | --backend redis] [--nodes 1,2,4] [--fifo]

`--backend redis` starts a throwaway redis-server (no persistence) on a free loopback port.
Each consumer setup is a `Case` (fill, start, ready, release, progress, first_taken, check);
`time_drain` times any of them, so another queue system is one more class.
"""

from __future__ import annotations

import os
import sys

# This directory would shadow the standard library's `queue` module: search it last.
_HERE = os.path.dirname(os.path.abspath(__file__))
sys.path[:] = [p for p in sys.path if os.path.abspath(p or ".") != _HERE] + [_HERE]

import argparse  # noqa: E402
import contextlib  # noqa: E402
import importlib.util  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
import uuid  # noqa: E402
from collections.abc import Callable, Iterator  # noqa: E402
from dataclasses import dataclass  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Any, Protocol  # noqa: E402

import redis  # noqa: E402
from _support import PYTHON, child, free_port, squall_run, throwaway_redis, warn_if_busy  # noqa: E402

from squall.backends import Backend, open_backend  # noqa: E402
from squall.loader import load_app  # noqa: E402
from squall.observability.metering import read_records  # noqa: E402
from squall.services import Queue, SendEntry  # noqa: E402
from squall.sources import sources_for  # noqa: E402

TARGET_RATE = 5000  # messages/s at batch size 100 on SQLite
TARGET_RATIO = {1: 1.0, 100: 3.0}  # Squall / Celery on Redis, per batch size
#: the least share of its queue throughput squall keeps with observability on
OBSERVABILITY_TARGET = 0.9
SEND_CHUNK = 1000
CORES = os.cpu_count() or 1

#: one queue per batch size, each with its own function; both no-ops that read every record
APP = """\
from squall import App

app = App("bench")


def drain(event, ctx):
    for record in event["Records"]:
        record["body"]


app.on_queue("bench-b1", drain, name="batch1", batch_size=1, visibility_timeout=120)
app.on_queue("bench-b100", drain, name="batch100", batch_size=100, visibility_timeout=120)
app.on_queue("bench-b10", drain, name="batch10", batch_size=10, visibility_timeout=120)
app.on_queue("bench.fifo", drain, name="fifo10", batch_size=10, visibility_timeout=120)
"""

#: batch size -> (queue, function)
SQUALL_QUEUES = {1: ("bench-b1", "batch1"), 100: ("bench-b100", "batch100")}
#: the FIFO comparison: a standard queue and a FIFO queue, both at batch size 10
STANDARD_10 = ("bench-b10", "batch10")
FIFO_10 = ("bench.fifo", "fifo10")
FIFO_GROUPS = (1, 10, 100)

#: The Celery baseline's app, imported by its workers and by this script (to send and
#: control). Settings other than these are Celery's defaults (prefetch multiplier 4, ...).
CELERY_APP = """\
from celery import Celery

app = Celery("squall-bench", broker={broker!r})
app.conf.update(
    broker_transport_options={{"global_keyprefix": {prefix!r}}},
    broker_connection_retry_on_startup=True,
    task_acks_late=True,
    task_ignore_result=True,
)


@app.task(name="drain")
def drain(body):
    len(body)
"""
CELERY_PREFIX = "squall-bench-celery:"
CELERY_QUEUE = "bench"
CELERY_IDLE_QUEUE = "bench-idle"  # what the workers listen on until the backlog is released

Alive = Callable[[], None]


@dataclass
class Drain:
    system: str
    batch_size: int
    consumers: int
    messages: int
    seconds: float  # first message taken -> last one acknowledged
    startup: float  # consumers started -> all of them ready
    check: str

    @property
    def rate(self) -> float:
        return self.messages / self.seconds


class Case(Protocol):
    """One consumer setup draining one backlog."""

    system: str
    batch_size: int
    consumers: int

    def fill(self, count: int) -> None:
        """Put `count` messages where no consumer takes them until `release`."""

    def start(self) -> contextlib.AbstractContextManager[Alive]:
        """Start the consumers; yields a check that raises if one has exited."""

    def ready(self) -> bool:
        """Whether every consumer is up and waiting for work."""

    def release(self) -> None:
        """Hand the whole backlog to the consumers at once."""

    def progress(self) -> float | None:
        """When the last message was acknowledged; None while any is left."""

    def first_taken(self) -> float:
        """After the consumers stopped: when the first message was taken."""

    def check(self) -> str:
        """After the consumers stopped: whether every message was handled, in a few words."""


@contextlib.contextmanager
def processes(commands: list[list[str]], workdir: Path, names: list[str]) -> Iterator[Alive]:
    """Start one child per command (output to `<name>.log`); yields a check that raises
    with the log of the first one that has exited."""
    with contextlib.ExitStack() as stack:
        running = [(stack.enter_context(child(command, workdir, workdir / f"{name}.log")),
                    workdir / f"{name}.log") for command, name in zip(commands, names, strict=True)]

        def alive() -> None:
            for process, log in running:
                if process.poll() is not None:
                    raise RuntimeError(f"{log.stem} exited with {process.returncode}:\n"
                                       f"{log.read_text(errors='replace')}")

        yield alive


def wait_until(condition: Callable[[], bool], alive: Alive, deadline: float, what: str) -> None:
    while not condition():
        alive()
        if time.time() > deadline:
            raise RuntimeError(f"{what} not ready in time")
        time.sleep(0.05)


def time_drain(case: Case, count: int, timeout: float) -> Drain:
    """Fill, start the consumers, release the backlog once all are ready, and time the drain.

    A probe can cost milliseconds (more on a loaded machine), so the pause after each is
    ten times its cost: the poller takes at most a tenth of a core from the consumers.
    """
    case.fill(count)
    started = time.time()
    deadline = started + timeout
    label = f"{case.system} batch_size {case.batch_size} x{case.consumers}"
    with case.start() as alive:
        wait_until(case.ready, alive, deadline, label)
        ready = time.time()
        case.release()
        while True:
            probe_started = time.time()
            last = case.progress()
            if last is not None:
                break
            alive()
            if time.time() > deadline:
                raise RuntimeError(f"{label}: not drained after {timeout:g} s")
            time.sleep(max(0.002, 10 * (time.time() - probe_started)))
    return Drain(case.system, case.batch_size, case.consumers, count, last - case.first_taken(), ready - started,
                 case.check())


class SquallCase:
    """N `squall run` nodes consuming one queue of the benchmark app."""

    def __init__(self, backend: Backend, backend_url: str, app_path: Path, workdir: Path,
                 batch_size: int, nodes: int, observability: bool = True,
                 queue: tuple[str, str] | None = None, groups: int = 0):
        """`queue` (queue, function) overrides the one of `batch_size`; `groups` > 0 sends
        the backlog round-robin over that many message groups (a FIFO queue)."""
        self.backend, self.backend_url, self.app_path, self.workdir = backend, backend_url, app_path, workdir
        #: "no-obs": the same nodes with --no-observability, for what observability costs
        self.system = f"fifo/{groups}g" if groups else "squall" if observability else "no-obs"
        self.observability = observability
        self.batch_size, self.consumers, self.groups = batch_size, nodes, groups
        self.queue, self.function = queue or SQUALL_QUEUES[batch_size]
        self.dlq = backend.queue_config(self.queue).dlq
        tag = uuid.uuid4().hex[:6]
        self.node_ids = [f"bench-{self.function}-{tag}-{i}" for i in range(nodes)]
        self.first_claim = float("inf")

    def fill(self, count: int) -> None:
        """The backlog waits in the DLQ, which no node consumes, until the redrive."""
        self.backend.purge(self.queue)
        self.backend.purge(self.dlq)
        sender = Queue(self.backend, self.dlq)
        for start in range(0, count, SEND_CHUNK):
            bodies = [f'{{"n": {n}}}' for n in range(start, min(count, start + SEND_CHUNK))]
            sender.send_batch([SendEntry(body, f"g{n % self.groups}", str(n)) for n, body in enumerate(bodies, start)]
                              if self.groups else bodies)

    def start(self) -> contextlib.AbstractContextManager[Alive]:
        extra = [] if self.observability else ["--no-observability"]
        commands = [squall_run(self.app_path, self.backend_url, free_port(), "--node-id", node_id, *extra)
                    for node_id in self.node_ids]
        return processes(commands, self.workdir, self.node_ids)

    def ready(self) -> bool:
        """A node joins the registry once its consumers have started."""
        return set(self.node_ids) <= {node.node_id for node in self.backend.nodes()}

    def release(self) -> None:
        self.backend.redrive(self.dlq, self.queue)

    def progress(self) -> float | None:
        """The queue is empty once every message was acknowledged. Claims go oldest first,
        so the oldest message's first receive is the first claim, if it is seen in time."""
        oldest = self.backend.peek(self.queue, 1)
        if oldest and oldest[0].receive_count > 0:
            self.first_claim = min(self.first_claim, oldest[0].first_received_at)
        return None if oldest else time.time()

    def first_taken(self) -> float:
        """The first claim seen, or the first invocation's start if earlier: nodes begin on
        the first 1,000 messages of the redrive, and can have handled them before it ends
        and the probes begin. A claim precedes its invocation by a fraction of a millisecond."""
        return min([self.first_claim] + [r["start"] for r in self.records()])

    def records(self) -> list[dict[str, Any]]:
        """The case's metering records (complete once the nodes have stopped)."""
        ids = set(self.node_ids)
        return [r for r in read_records(self.backend, limit=1_000_000)
                if r["node"] in ids and r["function"] == self.function]

    def check(self) -> str:
        records = self.records()
        failed = sum(r["outcome"] != "success" for r in records)
        dead = self.backend.queue_stats(self.dlq).total
        note = f"{len(records)} invocations, {failed} failed, {dead} in the DLQ"
        return note + ("  WARNING: not every message was handled" if failed or dead else "")


@dataclass
class CeleryBaseline:
    """The baseline's Celery app (from the file its workers import) and a plain client of
    its Redis server, for the probes (every Celery key has CELERY_PREFIX in front)."""

    app: Any
    client: redis.Redis
    workdir: Path

    @classmethod
    def create(cls, workdir: Path, broker: str) -> CeleryBaseline:
        path = workdir / "celery_bench.py"
        path.write_text(CELERY_APP.format(broker=broker, prefix=CELERY_PREFIX))
        spec = importlib.util.spec_from_file_location("celery_bench", path)
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        return cls(module.app, redis.Redis.from_url(broker), workdir)

    def clear(self) -> None:
        """Delete every key under the prefix (the queues, unacked messages, bindings)."""
        keys = list(self.client.scan_iter(match=CELERY_PREFIX + "*", count=1000))
        for start in range(0, len(keys), 1000):
            self.client.unlink(*keys[start:start + 1000])


class CeleryCase:
    """N Celery workers (prefork, one process per core) on the benchmark's Redis server."""

    system = "celery"
    batch_size = 1

    def __init__(self, baseline: CeleryBaseline, workers: int):
        self.baseline, self.app, self.consumers = baseline, baseline.app, workers
        self.names = [f"celery-{uuid.uuid4().hex[:6]}-{i}" for i in range(workers)]
        self.count = 0
        self.first_take: float | None = None

    def fill(self, count: int) -> None:
        self.count = count
        self.baseline.clear()
        with self.app.producer_or_acquire() as producer:
            for n in range(count):
                self.app.send_task("drain", args=(f'{{"n": {n}}}',), queue=CELERY_QUEUE, producer=producer)

    def start(self) -> contextlib.AbstractContextManager[Alive]:
        commands = [[PYTHON, "-m", "celery", "-A", "celery_bench", "worker", "--pool", "prefork",
                     "--concurrency", str(CORES), "--queues", CELERY_IDLE_QUEUE, "--hostname", f"{name}@%h",
                     "--loglevel", "WARNING", "--without-gossip", "--without-mingle", "--without-heartbeat"]
                    for name in self.names]
        return processes(commands, self.baseline.workdir, self.names)

    def ready(self) -> bool:
        return len(self.app.control.ping(timeout=0.5, limit=self.consumers)) >= self.consumers

    def release(self) -> None:
        self.app.control.add_consumer(CELERY_QUEUE, reply=False)

    def progress(self) -> float | None:
        """A message leaves the queue list for the unacked hash when a worker takes it and
        leaves that when the task is acknowledged. Both empty can be seen for an instant
        between a worker's pop and its unacked write, so the workers' task counts confirm."""
        now = time.time()
        pipe = self.baseline.client.pipeline()
        pipe.llen(CELERY_PREFIX + CELERY_QUEUE)
        pipe.hlen(CELERY_PREFIX + "unacked")
        waiting, unacked = pipe.execute()
        if self.first_take is None and waiting < self.count:
            self.first_take = now
        if waiting or unacked or self.tasks_counted() < self.count:
            return None
        return now

    def first_taken(self) -> float:
        """The first probe that saw the queue shorter: probes start as the broadcast goes out."""
        if self.first_take is None:
            raise RuntimeError("celery: drained before a probe saw the first message taken")
        return self.first_take

    def tasks_counted(self) -> int:
        stats = self.app.control.inspect(timeout=2, limit=self.consumers).stats() or {}
        return sum(worker.get("total", {}).get("drain", 0) for worker in stats.values())

    def check(self) -> str:
        return f"{self.count} tasks counted by the workers, none left unacknowledged"


def cases(backend: Backend, backend_url: str, workdir: Path, app_path: Path, nodes: list[int],
          celery: CeleryBaseline | None) -> Iterator[Case]:
    """Per consumer count: Squall at both batch sizes, then Celery, so each ratio compares
    figures taken close together."""
    for n in nodes:
        for batch_size in SQUALL_QUEUES:
            yield SquallCase(backend, backend_url, app_path, workdir, batch_size, n)
            yield SquallCase(backend, backend_url, app_path, workdir, batch_size, n, observability=False)
        if celery is not None:
            yield CeleryCase(celery, n)


def fifo_cases(backend: Backend, backend_url: str, workdir: Path, app_path: Path,
               nodes: list[int]) -> Iterator[Case]:
    """Per node count: the standard queue at batch size 10, then the FIFO queue with 1, 10
    and 100 message groups."""
    for n in nodes:
        yield SquallCase(backend, backend_url, app_path, workdir, 10, n, queue=STANDARD_10)
        for groups in FIFO_GROUPS:
            yield SquallCase(backend, backend_url, app_path, workdir, 10, n, queue=FIFO_10, groups=groups)


def print_fifo(results: list[Drain]) -> None:
    """Each FIFO case's rate against the standard queue's, same batch size and node count."""
    standard = {d.consumers: d.rate for d in results if d.system == "squall"}
    print()
    for d in results:
        if d.system.startswith("fifo/"):
            print(f"{d.system} / standard, batch_size 10, x{d.consumers}: {d.rate / standard[d.consumers]:.2f}")


def print_drain(drain: Drain) -> None:
    unit = "node" if drain.system != "celery" else "worker"
    consumers = f"{drain.consumers} {unit}{'s' if drain.consumers > 1 else ''}"
    batch = str(drain.batch_size) if drain.system != "celery" else "1 (task)"
    print(f"{drain.system:<8}{batch:>9}{consumers:>11}{drain.rate:>12,.0f}{drain.seconds:>9.2f}"
          f"{drain.startup:>12.2f}   {drain.check}", flush=True)


def print_ratios(results: list[Drain], nodes: list[int]) -> None:
    """Squall / Celery at each batch size and consumer count, and the verdict per target."""
    rate = {(d.system, d.batch_size, d.consumers): d.rate for d in results}
    print(f"\n{'squall / celery':<18}" + "".join(f"{f'x{n}':>9}" for n in nodes))
    for batch_size, target in TARGET_RATIO.items():
        ratios = [rate[("squall", batch_size, n)] / rate[("celery", 1, n)] for n in nodes]
        print(f"{f'batch_size {batch_size}':<18}" + "".join(f"{r:>9.2f}" for r in ratios))
        missed = [f"x{n}" for n, r in zip(nodes, ratios, strict=True) if r < target]
        verdict = f"MISSED at {', '.join(missed)}" if missed else "met at every consumer count"
        print(f"  target squall >= {target:g}x celery at batch_size {batch_size}: {verdict}")


def print_observability(results: list[Drain]) -> None:
    """What traces, metrics and the stored log cost: squall / squall without them, per case."""
    rate = {(d.system, d.batch_size, d.consumers): d.rate for d in results}
    print()
    for (system, batch_size, consumers), on in rate.items():
        off = rate.get(("no-obs", batch_size, consumers))
        if system == "squall" and off:
            verdict = "meets" if on / off >= OBSERVABILITY_TARGET else "MISSES"
            print(f"observability on/off, batch_size {batch_size}, x{consumers}: {on / off:.2f}  "
                  f"({verdict} the target >= {OBSERVABILITY_TARGET})")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--messages", type=int, default=20_000, help="messages per case")
    parser.add_argument("--backend", default=None, metavar="URL",
                        help="backend URL (default: SQLite in a temporary directory); "
                             "'redis' starts a throwaway redis-server")
    parser.add_argument("--nodes", default=None, metavar="N,N,...",
                        help="node (and Celery worker) counts to run; default 1,2,4 on Redis, 1 on SQLite")
    parser.add_argument("--no-celery", action="store_true", help="skip the Celery baseline on Redis")
    parser.add_argument("--timeout", type=float, default=120, help="seconds allowed per case")
    parser.add_argument("--fifo", action="store_true",
                        help="only the FIFO comparison: 1, 10 and 100 message groups against a standard queue")
    args = parser.parse_args()
    shared = args.backend is not None and args.backend.split(":")[0] in ("redis", "rediss", "unix")
    nodes = [int(n) for n in (args.nodes or ("1,2,4" if shared else "1")).split(",")]
    if not shared and nodes != [1]:
        parser.error("several nodes need a shared backend: use --backend redis or a redis:// URL")
    warn_if_busy()

    with tempfile.TemporaryDirectory(prefix="squall-bench-queue-") as tmp, contextlib.ExitStack() as stack:
        workdir = Path(tmp)
        app_path = workdir / "app.py"
        app_path.write_text(APP)
        backend_url = args.backend or f"sqlite:///{workdir / 'state.db'}"
        if backend_url == "redis":
            backend_url = stack.enter_context(throwaway_redis(workdir))
        backend = open_backend(backend_url)
        stack.callback(backend.close)
        for source in sources_for(load_app(str(app_path))):
            source.provision(backend)
        celery = CeleryBaseline.create(workdir, backend_url) if shared and not (args.no_celery or args.fifo) else None
        print(f"backend {backend_url}; {args.messages:,} messages per case; {CORES} cores\n")
        print(f"{'system':<8}{'batch':>9}{'consumers':>11}{'messages/s':>12}{'seconds':>9}{'start-up s':>12}   check")
        results = []
        chosen = (fifo_cases(backend, backend_url, workdir, app_path, nodes) if args.fifo
                  else cases(backend, backend_url, workdir, app_path, nodes, celery))
        for case in chosen:
            results.append(time_drain(case, args.messages, args.timeout))
            print_drain(results[-1])
        if celery is not None:
            celery.clear()

    if args.fifo:
        print_fifo(results)
        return 0
    if celery is not None:
        print_ratios(results, nodes)
    print_observability(results)
    if not shared:
        batch100 = next(r for r in results if r.system == "squall" and r.batch_size == 100)
        verdict = "meets" if batch100.rate >= TARGET_RATE else "misses"
        print(f"\nbatch_size 100: {batch100.rate:,.0f} messages/s ({verdict} the SQLite target >= {TARGET_RATE:,}/s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
