"""Helpers for end-to-end tests: real `squall` processes on free loopback ports."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import httpx

from squall.backends import open_backend
from squall.observability.logs import PRINT_DELAY

_HANDED_OUT: set[int] = set()


def free_port() -> int:
    """A loopback port nothing listens on, never the same one twice in a test session: a
    test picks the ports of several servers before any binds its own, and the kernel may
    offer a port again once the probe that found it is closed."""
    while True:
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        if port not in _HANDED_OUT:
            _HANDED_OUT.add(port)
            return port


def write_app(directory: Path, source: str, name: str = "app.py") -> Path:
    """Write an app file (dedented) and return its path."""
    path = directory / name
    path.write_text(textwrap.dedent(source))
    return path


def squall(*args: str, cwd: Path | None = None, env: dict | None = None, timeout: float = 60,
           input: str | None = None) -> subprocess.CompletedProcess:
    """Run the `squall` CLI (as `python -m squall`) and capture its output."""
    return subprocess.run([sys.executable, "-m", "squall", *args], cwd=cwd, capture_output=True, text=True,
                          timeout=timeout, env={**os.environ, **(env or {})}, input=input)


class NodeProcess:
    """`squall run APP` (or `squall dev`) as a child process serving on a free port."""

    def __init__(self, app_path: Path, backend: str | None = None, command: str = "run",
                 extra: list[str] | None = None, port: int | None = None):
        self.app_path = app_path
        self.port = port or free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        args = [sys.executable, "-m", "squall", command, str(app_path), "--port", str(self.port)]
        if backend:
            args += ["--backend", backend]
        self.args = args + (extra or [])
        self.log_path = app_path.parent / f"node-{self.port}.log"
        self.process: subprocess.Popen | None = None

    def start(self, wait: float = 30) -> NodeProcess:
        """Start the node (once: `with NodeProcess(...).start()` does not start a second)."""
        if self.process is not None and self.process.poll() is None:
            return self
        self._log = open(self.log_path, "ab")
        self.process = subprocess.Popen(self.args, cwd=self.app_path.parent, stdout=self._log,
                                        stderr=subprocess.STDOUT, start_new_session=True)
        deadline = time.time() + wait
        while time.time() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"node exited with {self.process.returncode}:\n{self.log()}")
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.2):
                    return self
            except OSError:
                time.sleep(0.05)
        raise RuntimeError(f"node did not listen within {wait}s:\n{self.log()}")

    def log(self) -> str:
        """The node's output so far, including the function output it received: the node
        prints that within PRINT_DELAY, so a test that just got its answer waits that long."""
        if self.process is not None and self.process.poll() is None:
            time.sleep(2 * PRINT_DELAY)
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def client(self, **kwargs) -> httpx.Client:
        return httpx.Client(base_url=self.url, timeout=kwargs.pop("timeout", 30), **kwargs)

    def stop(self) -> int:
        """SIGTERM (graceful) and wait."""
        if self.process and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(30)
            except subprocess.TimeoutExpired:
                self.kill()
        return self.process.returncode if self.process else 0

    def kill(self) -> None:
        """SIGKILL the node process only, as a crash would (its instances die with it)."""
        if self.process and self.process.poll() is None:
            self.process.kill()
            self.process.wait(10)

    def __enter__(self) -> NodeProcess:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()
        if self.process and self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGKILL)


def platform_tracebacks(log: str) -> int:
    """Tracebacks in a node's log that are not a function's own log of its error (which, as
    on Lambda, follows an `[ERROR] Type: message` line): Squall's, which must never appear."""
    lines = log.splitlines()
    return sum(1 for i, line in enumerate(lines) if line.startswith("Traceback (most recent call last):")
               and not (i and lines[i - 1].startswith("[ERROR] ")))


def table(url: str, name: str) -> dict:
    """The items of table `name` in the backend at `url`, by key (opened and closed here)."""
    store = open_backend(url)
    try:
        return {item.key: item.value for item in store.table_scan(name)}
    finally:
        store.close()


def wait_until(predicate, timeout: float = 30, interval: float = 0.05, message: str = "condition"):
    """Poll `predicate` until it returns something truthy; fail after `timeout` seconds."""
    deadline = time.time() + timeout
    while time.time() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout}s waiting for {message}")
