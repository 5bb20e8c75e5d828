"""What a node knows is wrong with it, and the gate that holds work back meanwhile.

A node reports itself unhealthy (in the registry, `squall nodes`, and on the admin
listener's `GET /health`) while any part of it cannot do its job: its runtime has no
zygote, its state file was deleted. A `Gate` is the runtime's side of that: closed while
no instance can start, so queue consumers stop claiming instead of spending messages'
receives on invocations that cannot run.
"""

from __future__ import annotations

from collections.abc import Callable


class Gate:
    """Open while a component can take work; closed, with the reason, while it cannot."""

    def __init__(self) -> None:
        self.reason: str | None = None
        self._waiting: list[Callable[[], None]] = []

    @property
    def is_open(self) -> bool:
        return self.reason is None

    def close(self, reason: str) -> None:
        self.reason = reason

    def open(self) -> None:
        """Open, and call everything that waited for it (once each)."""
        self.reason = None
        waiting, self._waiting = self._waiting, []
        for callback in waiting:
            callback()

    def when_open(self, callback: Callable[[], None]) -> None:
        """Call `callback` once the gate is open: now, if it is."""
        if self.reason is None:
            callback()
        elif callback not in self._waiting:
            self._waiting.append(callback)
