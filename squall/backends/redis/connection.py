"""redis-py connections whose waits end with the invocation's deadline, and whose set-up
fails at once when retrying cannot help.

redis-py retries with backoff across a server restart (`core.RETRY`, about 5 s) and waits
up to its socket timeouts for a connect or a reply. Inside an invocation that is capped by
the deadline (`squall.backends.deadline`): the backoff gives up when the next sleep would
pass it, and the connect, TLS handshake and read timeouts are shortened to what it leaves.

A server that accepts the connection but refuses its set-up (a DB index it does not have,
a TLS handshake on a plain-text port, a reply that is not Redis's protocol: an HTTP port)
is a wrong URL, not a restart: `SetupFailed` is not retried, so a CLI command with such a
`--backend` fails in a second with one line instead of retrying for minutes.
"""

from __future__ import annotations

import socket
import ssl
from typing import Any

import redis
from redis.backoff import ExponentialBackoff
from redis.connection import Connection, SSLConnection, UnixDomainSocketConnection
from redis.sentinel import SentinelManagedConnection

from squall.backends import deadline


class OutOfTime(redis.TimeoutError):
    """The retries stopped: the next backoff would end past the invocation's deadline."""


class SetupFailed(redis.RedisError):
    """The server accepted the connection but its set-up failed (not retried)."""


class DeadlineBackoff(ExponentialBackoff):
    """Exponential backoff that raises OutOfTime (inside redis-py's retry loop, which then
    stops) instead of sleeping past the deadline of the current call."""

    def compute(self, failures: int) -> float:
        backoff = super().compute(failures)
        remaining = deadline.left()
        if remaining is not None and backoff + deadline.FLOOR > remaining:
            raise OutOfTime(f"gave up after {failures} attempt(s) with {max(remaining, 0.0):.2f} s of the "
                            "invocation left")
        return backoff


class _Bounded:
    """Mixed into each redis-py connection class (their attributes are typed Any here)."""

    socket_connect_timeout: Any
    socket_timeout: Any

    def _connect(self) -> Any:
        configured = self.socket_connect_timeout
        self.socket_connect_timeout = deadline.cap(configured)
        try:
            return super()._connect()  # type: ignore[misc]
        finally:
            self.socket_connect_timeout = configured

    def on_connect_check_health(self, *args: Any, **kwargs: Any) -> None:
        try:
            super().on_connect_check_health(*args, **kwargs)  # type: ignore[misc]
        except redis.ResponseError as e:
            raise SetupFailed(f"the server refused the connection set-up: {e}") from e
        except redis.exceptions.InvalidResponse as e:
            raise SetupFailed(f"the server does not speak Redis's protocol: {e}") from e

    def read_response(self, *args: Any, **kwargs: Any) -> Any:
        if "timeout" not in kwargs and deadline.left() is not None:
            kwargs["timeout"] = deadline.cap(self.socket_timeout)
        return super().read_response(*args, **kwargs)  # type: ignore[misc]


class BoundedConnection(_Bounded, Connection):
    pass


class BoundedUnixConnection(_Bounded, UnixDomainSocketConnection):
    pass


class BoundedSentinelConnection(_Bounded, SentinelManagedConnection):
    pass


class BoundedSSLConnection(_Bounded, SSLConnection):
    """The TLS handshake is part of connecting: bounded by the connect timeout (redis-py
    waits the socket timeout, retried: minutes against a plain-text port), and not retried."""

    def _wrap_socket_with_ssl(self, sock: socket.socket) -> Any:
        sock.settimeout(self.socket_connect_timeout)
        try:
            wrapped = super()._wrap_socket_with_ssl(sock)
        except (TimeoutError, ssl.SSLError) as e:
            raise SetupFailed(f"TLS handshake failed ({e or 'timed out'}); is the server serving TLS?") from e
        wrapped.settimeout(self.socket_timeout)
        return wrapped


#: the connection class for each URL scheme
CONNECTIONS: dict[str, type[Connection | UnixDomainSocketConnection]] = {
    "redis": BoundedConnection, "rediss": BoundedSSLConnection, "unix": BoundedUnixConnection,
    "redis+sentinel": BoundedSentinelConnection,
}
