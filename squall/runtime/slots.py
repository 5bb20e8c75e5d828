"""Cluster-wide reserved concurrency: one backend slot per running instance of a function.

Only used on a distributed backend; on one node the local pool's cap is the limit. Taking
a slot and giving it back are a round trip each, which was most of the backend work of a
burst of short invocations. So a node keeps a slot it has just given up for `LINGER`
seconds, and the function's next invocation on this node takes that one instead of a new
one: back-to-back invocations take one slot between them. The bound stays cluster-wide
(a kept slot is held in the backend and counts against the limit), an idle node gives its
slots back within `LINGER`, and a crashed node's slots expire with their TTL, as before.
A kept slot is used again only while its TTL still outlasts a whole invocation.
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING

from squall.backends.protocol import Clock, Slots
from squall.errors import Throttled

if TYPE_CHECKING:
    from squall.app import FunctionConfig

log = logging.getLogger("squall.runtime")

#: seconds a node keeps a slot no invocation uses before giving it back
LINGER = 0.1
#: seconds a slot's TTL runs past the function's timeout (a running instance never outlives it)
TTL_MARGIN = 30.0
#: a kept slot is used again only if at least this long is left of its TTL past the timeout
REUSE_MARGIN = 10.0


def throttled(function: str) -> Throttled:
    return Throttled(f"Rate Exceeded: {function} is at its concurrency limit", "TooManyRequestsException")


@dataclass(slots=True)
class Slot:
    """A slot this node holds: its token and when it expires (backend clock)."""

    token: str
    expires: float
    #: loop time at which the node stopped using it (kept slots only)
    idle_since: float = 0.0


class ClusterSlots:
    """Takes and gives back slots (`Slots`), keeping released ones for a moment (see the
    module docstring). Call `close()` when the node stops: it gives every kept slot back."""

    def __init__(self, backend: Slots, holder: str, clock: Clock = time.time, linger: float = LINGER):
        """`clock`: the backend's, which slot expiries are reckoned by."""
        self.backend = backend
        self.clock = clock
        self.holder = holder
        self.linger = linger
        #: per function, the slots no invocation uses, last released last
        self._kept: dict[str, list[Slot]] = {}
        self._sweep: asyncio.TimerHandle | None = None
        self._returns: set[asyncio.Task[None]] = set()
        self._closed = False

    def kept(self, function: str) -> int:
        """Slots of `function` held for its next invocation (for tests and the dashboard)."""
        return len(self._kept.get(function, ()))

    async def acquire(self, config: FunctionConfig, limit: int, wait: float | None) -> Slot:
        """A slot for one invocation of `config`'s function: a kept one if there is one
        fresh enough, else a new one, waiting up to `wait` seconds (None: as long as it
        takes) before raising Throttled."""
        kept = self._kept.get(config.name)
        while kept:
            slot = kept.pop()
            if self._reusable(config, slot):
                return slot
            await self._release_all(config.name, [slot.token])  # before taking its place
        deadline = None if wait is None else time.monotonic() + wait
        pause = 0.005
        ttl = config.timeout + TTL_MARGIN
        while True:
            taken_at = self.clock()  # before the call: the backend's expiry is no earlier
            token = await asyncio.to_thread(self.backend.slot_acquire, key(config.name), limit, self.holder, ttl)
            if token is not None:
                return Slot(token, taken_at + ttl)
            if deadline is not None and time.monotonic() + pause > deadline:
                raise throttled(config.name)
            await asyncio.sleep(pause)
            pause = min(pause * 2, 0.1)

    async def release(self, config: FunctionConfig, slot: Slot) -> None:
        """The invocation holding `slot` ended: keep the slot for the next one, or give it
        back if it is too old to be used again (or the node is stopping)."""
        if self._closed or not self._reusable(config, slot):
            await asyncio.to_thread(self.backend.slot_release, key(config.name), slot.token)
            return
        loop = asyncio.get_running_loop()
        slot.idle_since = loop.time()
        self._kept.setdefault(config.name, []).append(slot)
        if self._sweep is None:
            self._sweep = loop.call_later(self.linger, self._give_back_idle)

    async def close(self) -> None:
        """Give back every kept slot (the node stops); later releases give theirs back at once."""
        self._closed = True
        if self._sweep is not None:
            self._sweep.cancel()
            self._sweep = None
        for name, slots in self._kept.items():
            self._give_back(name, slots)
        self._kept.clear()
        if self._returns:
            await asyncio.gather(*self._returns, return_exceptions=True)

    def _reusable(self, config: FunctionConfig, slot: Slot) -> bool:
        return slot.expires - self.clock() >= config.timeout + REUSE_MARGIN

    def _give_back_idle(self) -> None:
        """Give back the slots idle for `linger` seconds; look again when the next one is."""
        self._sweep = None
        now = asyncio.get_running_loop().time()
        earliest: float | None = None
        for name, slots in self._kept.items():
            idle = [slot for slot in slots if now - slot.idle_since >= self.linger]
            if idle:
                slots[:] = [slot for slot in slots if now - slot.idle_since < self.linger]
                self._give_back(name, idle)
            if slots:
                first = min(slot.idle_since for slot in slots)
                earliest = first if earliest is None else min(earliest, first)
        if earliest is not None:
            self._sweep = asyncio.get_running_loop().call_at(earliest + self.linger, self._give_back_idle)

    def _give_back(self, function: str, slots: list[Slot]) -> None:
        """Release `slots` in the background (a failure only logs: the slot expires with its TTL)."""
        task = asyncio.ensure_future(self._release_all(function, [slot.token for slot in slots]))
        self._returns.add(task)
        task.add_done_callback(self._returns.discard)

    async def _release_all(self, function: str, tokens: list[str]) -> None:
        def release() -> None:
            for token in tokens:
                self.backend.slot_release(key(function), token)

        try:
            await asyncio.to_thread(release)
        except Exception as exc:  # noqa: BLE001 - the slots expire with their TTL
            log.warning("function %s: could not give back %d concurrency slot(s), they expire on their own: %s",
                        function, len(tokens), exc)


def key(function: str) -> str:
    """The backend's slot key of a function."""
    return f"fn.{function}"
