"""What every Redis primitive shares: the client, its retries, the scripts, fork safety.

Several nodes share one Redis, so every change that reads before it writes (claims, acks,
conditional table writes, leases, slots) is one Lua script: Redis runs a script alone, which
makes it atomic without locks or WATCH loops. Time never comes from Redis: `now` is read from
`self.clock` and passed to the scripts, so a fake clock drives them in tests and nodes agree
on what "expired" means. Times travel as Python `repr` floats (exact), never as numbers
formatted by Lua.
"""

from __future__ import annotations

import functools
import os
import time
from collections.abc import Callable
from typing import Any, Concatenate, ParamSpec, TypeVar
from urllib.parse import urlsplit

import redis
from redis.commands.core import Script
from redis.retry import Retry
from redis.sentinel import Sentinel

from squall.backends.protocol import Clock
from squall.backends.redis import scripts
from squall.backends.redis.connection import CONNECTIONS, DeadlineBackoff, OutOfTime, SetupFailed
from squall.errors import BackendUnavailable, ConfigError

SENTINEL_SCHEME = "redis+sentinel://"
#: Retries survive a Redis restart (about 5 s of backoff, or until an invocation's deadline
#: is near); then BackendUnavailable is raised.
RETRY = Retry(DeadlineBackoff(cap=2.0, base=0.05), retries=6)
#: what a call raises when the server cannot be reached or used
_UNREACHABLE = (redis.ConnectionError, redis.TimeoutError, SetupFailed, redis.exceptions.InvalidResponse)

P = ParamSpec("P")
R = TypeVar("R")
C = TypeVar("C", bound="RedisCore")


def reachable(method: Callable[Concatenate[C, P], R]) -> Callable[Concatenate[C, P], R]:
    """Turn "Redis is down" (after redis-py's retries gave up) into one BackendUnavailable,
    and keep the outcome for `problem()`."""

    @functools.wraps(method)
    def wrapper(self: C, *args: P.args, **kwargs: P.kwargs) -> R:
        try:
            result = method(self, *args, **kwargs)
        except _UNREACHABLE as exc:
            state = "cannot be used" if isinstance(exc, (SetupFailed, redis.exceptions.InvalidResponse)) else \
                "is unreachable"
            cause = f"{exc.__context__} ({exc})" if isinstance(exc, OutOfTime) and exc.__context__ else exc
            self._problem = f"Redis at {self.where} {state}: {cause}"
            raise BackendUnavailable(self._problem) from exc
        self._problem = None
        return result

    return wrapper


def _sentinel_primary(url: str, options: dict[str, Any]) -> redis.Redis:
    """`redis+sentinel://[:password@]host[:port][,host[:port]...]/service[/db]`: a client of
    the primary the Sentinels name for `service`. Its pool asks them again on every new
    connection, so after a failover the retries reach the promoted replica. The password,
    if any, is the data servers' (Sentinels are reached without one)."""
    parts = urlsplit(url)
    password = parts.netloc.rpartition("@")[0].partition(":")[2] or None
    sentinels = []
    for address in parts.netloc.rpartition("@")[2].split(","):
        host, _, port = address.rpartition(":") if ":" in address else (address, "", "")
        sentinels.append((host, int(port or 26379)))
    service, _, db = parts.path.strip("/").partition("/")
    if not service or not all(h for h, _ in sentinels) or not (db or "0").isdigit():
        raise ConfigError(f"invalid Sentinel URL {_redacted(url)!r}: expected "
                          f"{SENTINEL_SCHEME}host:port[,host:port...]/service[/db]")
    sentinel = Sentinel(sentinels, socket_connect_timeout=options["socket_connect_timeout"], socket_timeout=2.0)
    return sentinel.master_for(service, db=int(db or 0), password=password, **options)


def _redacted(url: str) -> str:
    """The URL without credentials or query (which may carry a password), for messages."""
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc.rpartition('@')[2]}{parts.path}"


class RedisCore:
    """One Redis server (`redis://host:port/db`, `rediss://...`, `unix:///path`, or a
    Sentinel-managed primary: `redis+sentinel://host:port[,host:port...]/service/db`)."""

    distributed = True

    def __init__(self, url: str, clock: Clock | None = None):
        self.url = url
        self.clock: Clock = clock or time.time
        self.where = _redacted(url)
        self._problem: str | None = None
        self._client = self.connect()
        self._pid = os.getpid()
        self._scripts: dict[str, Script] = {name: self._client.register_script(source)
                                            for name, source in scripts.sources().items()}

    def connect(self, **overrides: Any) -> redis.Redis:
        """A new pooled client that retries with backoff across a server restart (or, behind
        Sentinel, a failover). `overrides` replace these defaults (the watch's client does
        not retry: it reconnects itself), and options in a redis:// URL's query string
        (socket_timeout=...) replace both.
        """
        options: dict[str, Any] = dict(decode_responses=True, socket_connect_timeout=2.0, socket_timeout=10.0,
                                       retry=RETRY, retry_on_error=[redis.ConnectionError, redis.TimeoutError])
        options.update(overrides)
        options.setdefault("connection_class", CONNECTIONS[urlsplit(self.url).scheme])
        if self.url.startswith(SENTINEL_SCHEME):
            return _sentinel_primary(self.url, options)
        try:
            return redis.Redis.from_url(self.url, **options)
        except ValueError as e:  # a port or DB index that is not a number...
            raise ConfigError(f"invalid Redis URL {self.where!r}: {e}") from e

    def problem(self) -> str | None:
        """The error of the last call if it found Redis unreachable (no round trip)."""
        return self._problem

    @property
    def _redis(self) -> Any:
        """The client of this process. A forked child must not talk on its parent's sockets,
        so it gets a new client (the parent's is dropped without closing its sockets).

        Typed Any: redis-py types every reply `bytes | str` whatever `decode_responses`
        says, and this client decodes, so replies are str."""
        if self._pid != os.getpid():
            self._client, self._pid = self.connect(), os.getpid()
        return self._client

    def _run(self, script: str, keys: list[str], args: list[Any]) -> Any:
        """One EVALSHA of a script from `lua/` (loaded by redis-py on the server's first NOSCRIPT)."""
        return self._scripts[script](keys=keys, args=args, client=self._redis)

    def close(self) -> None:
        if self._pid == os.getpid():
            self._client.close()
