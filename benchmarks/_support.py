"""Helpers shared by the benchmark scripts: child processes, ports, percentiles, load check,
a throwaway redis-server.

The scripts move their own directory to the end of sys.path before importing anything
(`http.py` and `queue.py` would otherwise shadow the standard library modules of those
names), so this module is found there, after the standard library.
"""

from __future__ import annotations

import contextlib
import math
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from pathlib import Path

PYTHON = sys.executable


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def percentile(values: Sequence[float], pct: float) -> float:
    """Nearest-rank percentile (pct in 0..100) of a non-empty sequence."""
    ordered = sorted(values)
    rank = max(1, math.ceil(pct / 100 * len(ordered)))
    return ordered[rank - 1]


def cpu_busy(seconds: float = 1.0) -> float:
    """Fraction of all cores busy over `seconds` (from /proc/stat), to warn about noise."""
    def sample() -> tuple[int, int]:
        with open("/proc/stat") as f:
            fields = [int(x) for x in f.readline().split()[1:]]
        idle = fields[3] + fields[4]  # idle + iowait
        return sum(fields), idle

    try:
        total0, idle0 = sample()
        time.sleep(seconds)
        total1, idle1 = sample()
    except OSError:
        return 0.0
    total = total1 - total0
    return 0.0 if total <= 0 else 1 - (idle1 - idle0) / total


def process_times(pid: int) -> tuple[float, float]:
    """User and system CPU seconds process `pid` has used so far, its own threads only
    (not its children), from /proc/PID/stat."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rpartition(")")[2].split()  # after the command name, which may hold spaces
    tick = os.sysconf("SC_CLK_TCK")
    return int(fields[11]) / tick, int(fields[12]) / tick


def process_cpu(pid: int) -> float:
    """CPU seconds (user + system) process `pid` has used so far (see process_times)."""
    return sum(process_times(pid))


def warn_if_busy() -> None:
    """Print a warning when other processes already use the CPU: figures would be low."""
    busy = cpu_busy()
    cores = os.cpu_count() or 1
    print(f"machine: {cores} cores, {busy * 100:.0f}% busy before the run", flush=True)
    if busy > 0.15:
        print("WARNING: other processes are using the CPU; the figures below will be lower and noisier",
              flush=True)


def wait_listening(port: int, process: subprocess.Popen, log: Path, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"server exited with {process.returncode}:\n{log.read_text(errors='replace')}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"server did not listen on port {port} within {timeout}s:\n"
                       f"{log.read_text(errors='replace')}")


@contextlib.contextmanager
def child(args: list[str], cwd: Path, log: Path, port: int | None = None) -> Iterator[subprocess.Popen]:
    """A server process (its own session, output to `log`); SIGTERM then SIGKILL on exit."""
    with open(log, "ab") as out:
        process = subprocess.Popen(args, cwd=cwd, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        if port is not None:
            wait_listening(port, process, log)
        yield process
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(30)
            except subprocess.TimeoutExpired:
                pass
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)  # the node's zygote and instances too
        process.wait()


def squall_run(app: Path, backend_url: str, port: int, *extra: str) -> list[str]:
    """The command line of a production node (`squall run`)."""
    return [PYTHON, "-m", "squall", "run", str(app), "--port", str(port), "--backend", backend_url, *extra]


@contextlib.contextmanager
def throwaway_redis(workdir: Path) -> Iterator[str]:
    """A redis-server with no persistence on a free loopback port; yields its URL."""
    exe = shutil.which("redis-server")
    if exe is None:
        sys.exit("redis-server is not installed (apt-get install redis-server)")
    port = free_port()
    command = [exe, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
               "--dir", str(workdir)]
    with child(command, workdir, workdir / "redis.log", port):
        yield f"redis://127.0.0.1:{port}/0"
