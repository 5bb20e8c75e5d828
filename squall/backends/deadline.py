"""An invocation's deadline as a bound on the backend calls its handler makes.

A `ctx` call must not outlast its invocation. When the backend cannot answer (Redis down or
hung, the SQLite file locked by another process) the call fails with `BackendUnavailable`
while the handler still has time to report it: the documented HTTP 500, not a 504 from the
node's timer. `bind(open, deadline)` is the backend a `Context` hands out; each of its calls
runs with the deadline set (a context variable, so the inline runtime's concurrent
invocations on worker threads each keep their own), and the backends cap every wait with
`cap()`: SQLite's busy timeout, Redis's connect and read timeouts and its retry backoff.
Outside an invocation (the node, the CLI) nothing is capped.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from typing import TYPE_CHECKING, Any, cast, overload

if TYPE_CHECKING:
    from squall.backends.protocol import Backend

#: seconds kept back for the handler to report the failure before the node's timer fires
MARGIN = 0.2
#: the shortest wait: a healthy backend answers well within it, so a call made just before
#: the deadline still works, and only one that would have to wait fails
FLOOR = 0.01

_deadline: ContextVar[float | None] = ContextVar("squall_backend_deadline", default=None)


def left() -> float | None:
    """Seconds the current backend call may still wait (deadline less MARGIN; may be
    negative), or None when no deadline applies."""
    deadline = _deadline.get()
    return None if deadline is None else deadline - MARGIN - time.time()


@overload
def cap(seconds: float) -> float: ...
@overload
def cap(seconds: None) -> float | None: ...
def cap(seconds: float | None) -> float | None:
    """A wait of `seconds` (None: unbounded), shortened to what the deadline leaves, never
    below FLOOR."""
    remaining = left()
    if remaining is None:
        return seconds
    return max(FLOOR, remaining if seconds is None else min(seconds, remaining))


@contextmanager
def bounded(deadline: float) -> Iterator[None]:
    """Backend calls made inside the block give up by `deadline` (seconds since the epoch)."""
    token = _deadline.set(deadline)
    try:
        yield
    finally:
        _deadline.reset(token)


class _Bound:
    """A backend whose every call (opening it included) is bounded by one deadline."""

    def __init__(self, open_backend: Callable[[], Backend], deadline: float):
        self._open = open_backend
        self._deadline = deadline

    def __getattr__(self, name: str) -> Any:
        with bounded(self._deadline):
            attribute = getattr(self._open(), name)
        if not callable(attribute):
            return attribute
        deadline = self._deadline

        def call(*args: Any, **kwargs: Any) -> Any:
            with bounded(deadline):
                return attribute(*args, **kwargs)

        return call


def bind(open_backend: Callable[[], Backend], deadline: float) -> Backend:
    """The backend `open_backend()` returns (called on first use, so a cold instance's opening
    is bounded too), each of whose calls gives up by `deadline`."""
    return cast("Backend", _Bound(open_backend, deadline))
