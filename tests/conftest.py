"""Shared fixtures: real servers on loopback, temporary state, both backends."""

from __future__ import annotations

import shutil
import socket
import subprocess
import time
import uuid
from pathlib import Path

import pytest

from squall.backends import open_backend
from tests.support import free_port


class RedisServer:
    """A real redis-server on a free loopback port, with AOF so restarts keep data."""

    def __init__(self, directory: Path, *args: str, config: Path | None = None):
        self.directory = directory
        self.port = free_port()
        self.args = list(args)  # more redis-server arguments (--replicaof, --sentinel)
        self.config = config  # a config file redis-server may rewrite (Sentinel needs one)
        self.process: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        exe = shutil.which("redis-server")
        if exe is None:
            raise RuntimeError("redis-server is not installed (apt-get install redis-server)")
        self.process = subprocess.Popen(
            [exe, *([str(self.config)] if self.config else []), "--port", str(self.port), "--bind", "127.0.0.1",
             "--dir", str(self.directory),
             "--appendonly", "yes", "--appendfsync", "everysec", "--save", "",
             "--protected-mode", "no", *self.args],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.time() + 10
        while time.time() < deadline:
            if self.process.poll() is not None:  # its port was taken, say: whoever answers is not it
                raise RuntimeError(f"redis-server on port {self.port} exited with {self.process.returncode}")
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.2) as s:
                    s.sendall(b"INFO server\r\n")
                    if f"process_id:{self.process.pid}\r\n".encode() in s.recv(65536):
                        return
            except OSError:
                pass
            time.sleep(0.05)
        raise RuntimeError("redis-server did not start")

    def stop(self, kill: bool = False) -> None:
        if self.process and self.process.poll() is None:
            if kill:
                self.process.kill()
            else:
                self.process.terminate()
            self.process.wait(10)


@pytest.fixture(scope="session")
def redis_server(tmp_path_factory):
    server = RedisServer(tmp_path_factory.mktemp("redis"))
    server.start()
    yield server
    server.stop()


@pytest.fixture
def redis_url(redis_server) -> str:
    """Database 0 of the session's redis-server, emptied: the one URL nodes of a test share."""
    url = f"redis://127.0.0.1:{redis_server.port}/0"
    import redis

    redis.Redis.from_url(url).flushdb()
    return url


class FakeClock:
    """A clock tests move by hand; backends read time only through it."""

    def __init__(self, start: float = 1_700_000_000.0):
        self.now = start

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture(params=["sqlite", "redis"])
def backend_url(request, tmp_path) -> str:
    """A fresh, empty backend URL of each kind."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path}/state.db"
    server = request.getfixturevalue("redis_server")
    db = 1 + (uuid.uuid4().int % 15)  # spread tests over databases, flushed below
    url = f"redis://127.0.0.1:{server.port}/{db}"
    import redis

    redis.Redis.from_url(url).flushdb()
    return url


@pytest.fixture
def backend(backend_url, clock):
    """A backend of each kind driven by a fake clock."""
    b = open_backend(backend_url, clock=clock)
    yield b
    b.close()


@pytest.fixture(scope="module")
def state(url):
    """The backend a module's node runs on, opened beside it (the module defines `url`)."""
    backend = open_backend(url)
    yield backend
    backend.close()
