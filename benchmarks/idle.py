"""Idle benchmark: what an idle `squall run` node costs its backend, and how fast an idle queue wakes.

Starts one real `squall run` node with an app of 100 functions, 20 of them consuming a
queue of their own (`@app.on_queue`), the others plain `@app.function`s; every function
also has its asynchronous-invocation queue. Once the node is in the backend's node
registry, one warm-up message starts an instance for the latency queue (so no trial
includes a cold start), the node settles for a few seconds, and then:

- backend calls/s over a window (20 s) of doing nothing:
  - Redis (a throwaway redis-server on a free loopback port): the commands the node's own
    connections send, counted as a client sees them with MONITOR. Lines MONITOR marks
    `lua` (run inside a script the node called) and lines from any other connection (this
    script's, the zygote's, the instances') are left out; the node's connections are
    found by their local ports (/proc). Prints the top commands too.
  - SQLite: the SQL statements the node process executes (`execute`, `executemany` and
    `executescript` calls on its connections), counted by a `sitecustomize.py` that the
    script writes to a temporary directory put first on the node's PYTHONPATH: it wraps
    `sqlite3.connect` to hand out a counting `sqlite3.Connection` subclass and writes the
    count to a file every 0.5 s. Only the node process counts (the process whose command
    line has `squall run`); its zygote and instances are not counted. Squall itself is
    not touched.
- latency from send to handler start on a queue idle for 15 s, over 5 trials: the script
  waits until the queue has been idle that long, sends one message with the send time in
  its body, and the handler stores `time.time()` at its start in a table, which the script
  reads back. The same queue is used for every trial; the first trial's idle period
  includes the counting window.

Targets: at most 20 backend calls/s while idle; p50 send -> handler start under 20 ms after
15 s idle; both on both backends.

    python benchmarks/idle.py [--backend sqlite|redis|both] [--window 20] [--idle 15] [--trials 5]
"""

from __future__ import annotations

import os
import sys

# This directory would shadow the standard library's `http` and `queue` modules: search it last.
_HERE = os.path.dirname(os.path.abspath(__file__))
sys.path[:] = [p for p in sys.path if os.path.abspath(p or ".") != _HERE] + [_HERE]

import argparse  # noqa: E402
import collections  # noqa: E402
import contextlib  # noqa: E402
import json  # noqa: E402
import re  # noqa: E402
import shutil  # noqa: E402
import socket  # noqa: E402
import subprocess  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
import uuid  # noqa: E402
from collections.abc import Iterator  # noqa: E402
from dataclasses import dataclass, field  # noqa: E402
from pathlib import Path  # noqa: E402
from urllib.parse import urlsplit  # noqa: E402

from _support import child, free_port, percentile, squall_run, throwaway_redis, warn_if_busy  # noqa: E402

from squall.backends import Backend, open_backend  # noqa: E402
from squall.services import Queue, Table  # noqa: E402

TARGET_CALLS = 20.0  # backend calls/s of an idle node, at most
TARGET_LATENCY_MS = 20.0  # p50 send -> handler start after the idle period, under
LATENCY_TABLE = "idle-latency"
LATENCY_TIMEOUT = 30.0  # seconds a message may take to reach its handler

#: `queues` functions each consuming a queue of its own (the first one records the latency
#: trials), the rest plain functions; every one has its asynchronous-invocation queue
APP = """\
import json
import time

from squall import App

app = App("idle")


def record(event, ctx):
    start = time.time()
    for r in event["Records"]:
        body = json.loads(r["body"])
        ctx.table({table!r}).put(str(body["trial"]), {{"sent": body["sent"], "start": start}})


def noop(event, ctx):
    return None


for i in range({queues}):
    app.on_queue(f"idle-{{i:03d}}", record, name=f"queue{{i:03d}}")
for i in range({queues}, {functions}):
    app.function(noop, name=f"fn{{i:03d}}")
"""
LATENCY_QUEUE = "idle-000"

#: Put first on the node's PYTHONPATH: counts the SQL statements of the `squall run`
#: process and writes the count to `sql-<pid>.json` beside itself every 0.5 s.
SITECUSTOMIZE = '''\
"""Written by benchmarks/idle.py: counts the SQL statements the `squall run` process executes."""

import importlib.machinery
import importlib.util
import json
import os
import sqlite3
import sys
import threading
import time

_HERE = os.path.dirname(os.path.abspath(__file__))


def _is_node():
    """The node is the process started as `python -m squall run ...` (not its zygote,
    `-m squall.runtime.zygote`, nor the instances forked from that)."""
    try:
        with open("/proc/self/cmdline", "rb") as f:
            argv = f.read().split(b"\\0")
    except OSError:
        return False
    return any(a == b"squall" and b == b"run" for a, b in zip(argv, argv[1:]))


if _is_node():
    _lock = threading.Lock()
    _calls = 0
    _statements = {}

    def _count(sql):
        global _calls
        key = " ".join(str(sql).split())[:72]
        with _lock:
            _calls += 1
            _statements[key] = _statements.get(key, 0) + 1

    class _CountingConnection(sqlite3.Connection):
        # Connection.execute makes a cursor and runs the statement on it: counted here once
        def execute(self, sql, *args, **kwargs):
            _count(sql)
            return super().execute(sql, *args, **kwargs)

        def executemany(self, sql, *args, **kwargs):
            _count(sql)
            return super().executemany(sql, *args, **kwargs)

        def executescript(self, script, *args, **kwargs):
            _count(script)
            return super().executescript(script, *args, **kwargs)

    _connect = sqlite3.connect

    def _counting_connect(*args, **kwargs):
        if len(args) < 6:  # factory is the sixth positional parameter
            kwargs.setdefault("factory", _CountingConnection)
        return _connect(*args, **kwargs)

    sqlite3.connect = _counting_connect

    def _report():
        path = os.path.join(_HERE, f"sql-{os.getpid()}.json")
        while True:
            with _lock:
                data = {"time": time.time(), "calls": _calls, "statements": dict(_statements)}
            with open(path + ".tmp", "w") as f:
                json.dump(data, f)
            os.replace(path + ".tmp", path)
            time.sleep(0.5)

    threading.Thread(target=_report, name="idle-bench-sql-count", daemon=True).start()

# a sitecustomize further down the path (a distribution's) still runs
_spec = importlib.machinery.PathFinder.find_spec(
    "sitecustomize", [p for p in sys.path if os.path.abspath(p or ".") != _HERE])
if _spec is not None and _spec.loader is not None:
    _spec.loader.exec_module(importlib.util.module_from_spec(_spec))
'''

#: `+<time> [<db> <client>] "<COMMAND>" ...`; client is `lua` inside a script
MONITOR_LINE = re.compile(rb'^\+(\d+\.\d+) \[\d+ (\S+)\] "([^"]*)"')


@dataclass
class Calls:
    """Backend calls the node made over a window."""

    count: int
    seconds: float
    what: str  # how they were counted, for the output
    top: list[tuple[str, int]] = field(default_factory=list)
    excluded: str = ""

    @property
    def rate(self) -> float:
        return self.count / self.seconds if self.seconds > 0 else 0.0


# ---- Redis: MONITOR --------------------------------------------------------------------

def socket_ports(pid: int) -> set[int]:
    """Local TCP ports of the sockets process `pid` has open (from /proc)."""
    inodes = set()
    with contextlib.suppress(OSError):
        for fd in os.listdir(f"/proc/{pid}/fd"):
            with contextlib.suppress(OSError):
                target = os.readlink(f"/proc/{pid}/fd/{fd}")
                if target.startswith("socket:["):
                    inodes.add(target[8:-1])
    ports = set()
    for table in ("tcp", "tcp6"):
        with contextlib.suppress(OSError), open(f"/proc/{pid}/net/{table}") as f:
            next(f)
            for line in f:
                fields = line.split()
                if fields[9] in inodes:
                    ports.add(int(fields[1].rsplit(":", 1)[1], 16))
    return ports


def monitor_calls(url: str, node_pid: int, seconds: float) -> Calls:
    """Commands the node's connections send over `seconds`, read with MONITOR."""
    parts = urlsplit(url)
    node_ports = socket_ports(node_pid)
    with socket.create_connection((parts.hostname, parts.port or 6379), timeout=5) as sock:
        sock.sendall(b"MONITOR\r\n")
        buffer = b""
        while b"\r\n" not in buffer:
            buffer += sock.recv(4096)
        reply, buffer = buffer.split(b"\r\n", 1)
        if reply != b"+OK":
            raise RuntimeError(f"MONITOR refused: {reply!r}")
        start = time.time()
        end = start + seconds
        lines = []
        while True:  # a little past the end: commands stamped before it may still be in transit
            remaining = end + 0.3 - time.time()
            if remaining <= 0:
                break
            sock.settimeout(remaining)
            try:
                data = sock.recv(1 << 16)
            except TimeoutError:
                break
            if not data:
                raise RuntimeError("redis-server closed the MONITOR connection")
            *complete, buffer = (buffer + data).split(b"\r\n")
            lines += complete
    node_ports |= socket_ports(node_pid)  # any connection the node opened meanwhile
    if not node_ports:
        raise RuntimeError(f"no TCP connection of the node (pid {node_pid}) found in /proc")
    commands: collections.Counter[str] = collections.Counter()
    in_scripts = other = 0
    for line in lines:
        match = MONITOR_LINE.match(line)
        if match is None or not start <= float(match[1]) < end:
            continue
        client = match[2].decode()
        if client == "lua":
            in_scripts += 1
        elif client.rpartition(":")[2].isdigit() and int(client.rpartition(":")[2]) in node_ports:
            commands[match[3].decode().upper()] += 1
        else:
            other += 1
    return Calls(sum(commands.values()), seconds, "commands the node's connections sent, seen with MONITOR",
                 commands.most_common(5),
                 f"not counted: {in_scripts / seconds:,.1f}/s run inside scripts (`lua`), "
                 f"{other / seconds:,.1f}/s from other connections")


# ---- SQLite: the sitecustomize's count ---------------------------------------------------

def read_sql_count(sitedir: Path, node_pid: int) -> dict:
    path = sitedir / f"sql-{node_pid}.json"
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise RuntimeError(f"no SQL count from the node ({path}): the counting sitecustomize did not run "
                           f"in it ({exc})") from None


def sqlite_calls(sitedir: Path, node_pid: int, seconds: float) -> Calls:
    before = read_sql_count(sitedir, node_pid)
    time.sleep(seconds)
    while (after := read_sql_count(sitedir, node_pid))["time"] < before["time"] + seconds - 0.25:
        time.sleep(0.05)  # until the report nearest the end of the window
    statements = collections.Counter(after["statements"])
    statements.subtract(before["statements"])
    return Calls(after["calls"] - before["calls"], after["time"] - before["time"],
                 "SQL statements executed by the node process; its zygote and instances not counted",
                 [(sql, n) for sql, n in statements.most_common(3) if n > 0])


@contextlib.contextmanager
def pythonpath_first(directory: Path) -> Iterator[None]:
    """PYTHONPATH with `directory` first (the existing entries after it) for children started inside."""
    old = os.environ.get("PYTHONPATH")
    os.environ["PYTHONPATH"] = str(directory) + (os.pathsep + old if old else "")
    try:
        yield
    finally:
        if old is None:
            del os.environ["PYTHONPATH"]
        else:
            os.environ["PYTHONPATH"] = old


# ---- one backend -------------------------------------------------------------------------

def wait_until_registered(backend: Backend, node_id: str, process: subprocess.Popen, log: Path) -> None:
    """A node joins the registry once its consumers have started."""
    deadline = time.time() + 60
    while node_id not in {node.node_id for node in backend.nodes()}:
        if process.poll() is not None:
            raise RuntimeError(f"the node exited with {process.returncode}:\n{log.read_text(errors='replace')}")
        if time.time() > deadline:
            raise RuntimeError(f"the node did not join the registry within 60 s:\n{log.read_text(errors='replace')}")
        time.sleep(0.05)


def send_and_wait(queue: Queue, table: Table, trial: str, process: subprocess.Popen) -> float:
    """Send one message; seconds from just before the send to its handler's start."""
    sent = time.time()
    queue.send(json.dumps({"trial": trial, "sent": sent}))
    deadline = sent + LATENCY_TIMEOUT
    while (stored := table.get(trial)) is None:
        if process.poll() is not None:
            raise RuntimeError(f"the node exited with {process.returncode}")
        if time.time() > deadline:
            raise RuntimeError(f"message {trial!r} did not reach its handler within {LATENCY_TIMEOUT:g} s")
        time.sleep(0.002)
    return stored["start"] - stored["sent"]


def verdict(met: bool) -> str:
    return "met" if met else "MISSES"


def run_backend(kind: str, workdir: Path, app_path: Path, args: argparse.Namespace) -> None:
    with contextlib.ExitStack() as stack:
        if kind == "redis":
            url = stack.enter_context(throwaway_redis(workdir))
        else:
            url = f"sqlite:///{workdir / 'state.db'}"
        print(f"\n{kind}: backend {url}", flush=True)
        backend = open_backend(url)
        stack.callback(backend.close)
        sitedir = workdir / "sitecustomize"
        if kind == "sqlite":
            sitedir.mkdir()
            (sitedir / "sitecustomize.py").write_text(SITECUSTOMIZE)
        node_id = f"bench-idle-{uuid.uuid4().hex[:6]}"
        log = workdir / "node.log"
        command = squall_run(app_path, url, free_port(), "--node-id", node_id)
        with pythonpath_first(sitedir) if kind == "sqlite" else contextlib.nullcontext():
            process = stack.enter_context(child(command, workdir, log))
        wait_until_registered(backend, node_id, process, log)
        queue, table = Queue(backend, LATENCY_QUEUE), Table(backend, LATENCY_TABLE)
        send_and_wait(queue, table, "warm-up", process)  # the instance the trials will find warm
        last_active = time.time()
        time.sleep(args.settle)

        if kind == "redis":
            calls = monitor_calls(url, process.pid, args.window)
        else:
            calls = sqlite_calls(sitedir, process.pid, args.window)
        if process.poll() is not None:
            raise RuntimeError(f"the node exited with {process.returncode}:\n{log.read_text(errors='replace')}")
        print(f"  idle backend calls: {calls.rate:,.1f}/s over {calls.seconds:.1f} s ({calls.what})")
        if kind == "redis":
            top = ", ".join(f"{name} {n / calls.seconds:,.1f}/s" for name, n in calls.top) or "none"
            print(f"  top commands: {top}")
            print(f"  {calls.excluded}")
        else:
            for sql, n in calls.top:
                print(f"    {n / calls.seconds:8,.1f}/s  {sql}")
        print(f"  target at most {TARGET_CALLS:g} calls/s: {verdict(calls.rate <= TARGET_CALLS)}", flush=True)

        latencies = []
        for trial in range(args.trials):
            time.sleep(max(0.0, last_active + args.idle - time.time()))
            latencies.append(send_and_wait(queue, table, str(trial), process))
            last_active = time.time()
        ms = [x * 1000 for x in latencies]
        p50 = percentile(ms, 50)
        print(f"  send -> handler start, queue idle {args.idle:g} s before each send: p50 {p50:.1f} ms, "
              f"max {max(ms):.1f} ms (trials: {', '.join(f'{x:.1f}' for x in ms)} ms)")
        print(f"  (one queue, {LATENCY_QUEUE}, for every trial; the first idle period includes the counting window)")
        print(f"  target p50 under {TARGET_LATENCY_MS:g} ms: {verdict(p50 < TARGET_LATENCY_MS)}", flush=True)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--backend", choices=("sqlite", "redis", "both"), default="both",
                        help="redis starts a throwaway redis-server on a free loopback port")
    parser.add_argument("--window", type=float, default=20, help="seconds over which backend calls are counted")
    parser.add_argument("--idle", type=float, default=15, help="seconds the queue is idle before each trial")
    parser.add_argument("--trials", type=int, default=5, help="latency trials per backend")
    parser.add_argument("--settle", type=float, default=3, help="seconds between start-up and the window")
    parser.add_argument("--functions", type=int, default=100, help="functions in the app")
    parser.add_argument("--queues", type=int, default=20, help="of them, functions with a queue of their own")
    args = parser.parse_args()
    if not 1 <= args.queues <= args.functions <= 1000:
        parser.error("need 1 <= --queues <= --functions <= 1000")
    if args.window <= 0 or args.trials < 1 or args.idle < 0 or args.settle < 0:
        parser.error("--window must be positive, --trials at least 1, --idle and --settle not negative")
    backends = ["sqlite", "redis"] if args.backend == "both" else [args.backend]
    if "redis" in backends and shutil.which("redis-server") is None:
        print("redis-server is not installed (apt-get install redis-server), or use --backend sqlite",
              file=sys.stderr)
        return 2
    warn_if_busy()
    print(f"idle node: {args.functions} functions ({args.queues} of them consuming a queue of their own, "
          f"the rest plain functions), {args.queues} queues, {args.functions} async-invocation queues; "
          f"{args.settle:g} s settling, then {args.window:g} s counted; {args.trials} latency trials",
          flush=True)
    for kind in backends:
        with tempfile.TemporaryDirectory(prefix=f"squall-bench-idle-{kind}-") as tmp:
            workdir = Path(tmp)
            app_path = workdir / "app.py"
            app_path.write_text(APP.format(table=LATENCY_TABLE, queues=args.queues, functions=args.functions))
            run_backend(kind, workdir, app_path, args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
