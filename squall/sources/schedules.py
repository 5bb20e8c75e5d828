"""Schedules: a function invoked on a rate, a cron expression or once, as EventBridge Scheduler does.

Each schedule is one durable timer (group `schedules`, keyed by the schedule's name), due
at its next firing; its payload says which scheduled time that is. Every node runs a
`ScheduleService` that claims due timers (a claim is a lease: one node at a time) and
fires them with `Timers.timers_fire`: one commit that enqueues each firing's `Scheduled
Event` into the function's asynchronous-invocation queue and replaces the timer by the
next firing. A firing is so enqueued exactly once, whatever the number of nodes and
restarts; from there it is an asynchronous invocation (two retries, then the function's
dead-letter queue, `squall.sources.async_invoke`).

Timers are claimed `AHEAD` seconds before they are due, and the firing's message waits in
the queue, durable, until its time: at a minute when a thousand schedules fire, the
consumers start on the first at that minute rather than after the claims and commits.
A schedule changed or removed within those seconds of a firing still has that firing
delivered (EventBridge Scheduler's changes take effect as eventually).

A firing missed while no node ran is found when one starts (its timer is overdue):
with `catch_up=None` only the latest missed firing is delivered; with `catch_up=N`,
every missed firing of the last N seconds, oldest first. A firing starts a trace of its
own: no invocation produced it, so there is no trace context to carry.

Each node provisions the schedules at start: a schedule seen for the first time, or
whose timing changed (expression, zone, start, end), gets a fresh timer; an unchanged one
keeps its timer, so a restart neither loses nor repeats a firing. The registry table
`squall.schedules` records what was provisioned (for `squall schedules --backend`).
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import random
import re
import time
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, ClassVar

from squall.backends import Backend, Timer
from squall.backends.protocol import Clock, TimerFiring
from squall.core.checks import check_name, check_number
from squall.core.lifecycle import PeriodicService, Progress, Service
from squall.errors import BackendUnavailable, ConfigError
from squall.events.scheduled import scheduled_event
from squall.runtime import wire
from squall.sources.async_invoke import async_queue
from squall.sources.base import NodeContext, Source, Trigger
from squall.sources.schedule_expressions import Expression, Timing, moment, parse, zone

log = logging.getLogger("squall.schedules")

#: the timer group holding every schedule's next firing
GROUP = "schedules"
#: what was provisioned, by schedule name (read by `squall schedules --backend`)
REGISTRY = "squall.schedules"
#: Scheduler's names: 1-64 letters, digits, '.', '-' and '_'
SCHEDULE_NAME = re.compile(r"^[0-9a-zA-Z_.-]{1,64}$")
#: Scheduler's FlexibleTimeWindow.MaximumWindowInMinutes
MAX_FLEXIBLE_WINDOW = 1440
#: catch_up is bounded as Scheduler's MaximumEventAgeInSeconds is: 60 s to a day
MIN_CATCH_UP, MAX_CATCH_UP = 60, 86400
#: Scheduler's limit on a target's Input
MAX_PAYLOAD = 256 * 1024
#: the longest the service sleeps between two looks for due timers: it wakes at the next
#: timer's due time, and at least this often for timers other nodes set
POLL_INTERVAL = 1.0
#: seconds a claimed timer stays hidden from other nodes; a node that dies holding one
#: delays that firing by at most this
LEASE = 30.0
#: timers claimed per round
CLAIM_LIMIT = 500
#: seconds before its time a firing is claimed and enqueued, as a message that becomes
#: visible at that time: the claim and its commit are then off the delivery's path, which
#: at a minute when a thousand schedules fire is the first tenth of a second or more
AHEAD = 2.0
#: the lease nodes take in turn to provision schedules, and its TTL in seconds
PROVISION_LOCK = "schedules.provision"
PROVISION_LEASE = 10.0


@dataclass(frozen=True, kw_only=True)
class ScheduleTrigger(Trigger):
    """A schedule invoking a function: `expression` is `rate(...)`, `cron(...)` or `at(...)`,
    read in `timezone`. See the module docstring and README "Schedules"."""

    kind: ClassVar[str] = "schedule"

    expression: str
    timezone: str = "UTC"
    #: the event's `detail` (any JSON value; `{}` without one)
    payload: Any = field(default=None, hash=False)
    #: minutes within which each firing is delivered at a random moment (None: on time)
    flexible_window: int | None = None
    #: ISO-8601 instants (naive ones are read in `timezone`) bounding rate and cron firings
    start: str | None = None
    end: str | None = None
    #: seconds of missed firings delivered when a node starts (None: the latest only)
    catch_up: int | None = None
    #: the schedule's name (in its ARN and its timer); the function's name when not given
    schedule: str = ""

    def __post_init__(self) -> None:
        expression = parse(self.expression)
        tz = zone(self.timezone)
        what = f"schedule {self.schedule or self.function or self.expression!r}"
        if self.schedule:
            check_name("schedule", self.schedule, SCHEDULE_NAME)
        elif self.function:
            object.__setattr__(self, "schedule", self.function)
        if self.flexible_window is not None:
            check_number(f"flexible_window (minutes) of {what}", self.flexible_window, 1, MAX_FLEXIBLE_WINDOW,
                         integer=True)
        if self.catch_up is not None:
            check_number(f"catch_up (seconds) of {what}", self.catch_up, MIN_CATCH_UP, MAX_CATCH_UP, integer=True)
        bounds = [moment(value, tz, f"{name} of {what}") if value is not None else None
                  for name, value in (("start", self.start), ("end", self.end))]
        if not expression.recurring and any(b is not None for b in bounds):
            raise ConfigError(f"{what}: start and end bound rate and cron schedules; an at() schedule fires once")
        if bounds[0] is not None and bounds[1] is not None and bounds[1] <= bounds[0]:
            raise ConfigError(f"{what}: end ({self.end}) must be after start ({self.start})")
        for name, value, bound in (("start", self.start, bounds[0]), ("end", self.end, bounds[1])):
            if bound is not None and not isinstance(value, str):
                object.__setattr__(self, name, _iso(bound, value))  # a datetime kept as JSON text
        try:
            text = wire.dumps(self.payload)
        except wire.WireError as exc:
            raise ConfigError(f"payload of {what} is not JSON: {exc}") from None
        if len(text) > MAX_PAYLOAD:
            raise ConfigError(f"payload of {what} is {len(text)} bytes; the limit is {MAX_PAYLOAD}")

    def conflict(self, other: Trigger) -> str | None:
        if isinstance(other, ScheduleTrigger) and self.schedule and other.schedule == self.schedule:
            return f"schedule {self.schedule!r} is declared twice"
        return None

    def describe(self) -> str:
        zone_note = "" if self.timezone == "UTC" else f" {self.timezone}"
        return f"schedule {self.schedule} {self.expression}{zone_note} -> {self.function}"

    def timing(self, anchor: float) -> Timing:
        """When it fires; a rate counts from `start`, or from `anchor` without one."""
        tz = zone(self.timezone)
        start = moment(self.start, tz, "start") if self.start else None
        end = moment(self.end, tz, "end") if self.end else None
        return Timing(self.parsed, tz, start if start is not None else anchor, start, end)

    @property
    def parsed(self) -> Expression:
        return parse(self.expression)

    @property
    def fingerprint(self) -> str:
        """What decides the firing times: a change of it starts the schedule afresh."""
        text = json.dumps([self.function, self.expression, self.timezone, self.start, self.end])
        return hashlib.sha256(text.encode()).hexdigest()[:16]


def _iso(instant: float, original: Any) -> str:
    return datetime.fromtimestamp(instant, getattr(original, "tzinfo", None) or UTC).isoformat()


@dataclass(frozen=True)
class Firing:
    """A timer's payload: the scheduled time it stands for and how the schedule was set up."""

    time: float
    anchor: float
    fingerprint: str

    def dumps(self) -> str:
        return json.dumps({"time": self.time, "anchor": self.anchor, "fingerprint": self.fingerprint})

    @classmethod
    def loads(cls, text: str) -> Firing | None:
        try:
            data = json.loads(text)
            return cls(float(data["time"]), float(data["anchor"]), str(data["fingerprint"]))
        except (ValueError, KeyError, TypeError):
            return None


def due_at(trigger: ScheduleTrigger, scheduled: float) -> float:
    """When a firing is delivered: on time, or at a random moment of its flexible window."""
    window = (trigger.flexible_window or 0) * 60
    return scheduled + random.uniform(0, window) if window else scheduled


class ScheduleService(PeriodicService):
    """Claims this app's due schedule timers and fires them (see the module docstring)."""


    def __init__(self, backend: Backend, triggers: list[ScheduleTrigger]) -> None:
        super().__init__()
        self.backend = backend
        self.clock: Clock = backend.clock
        self.triggers = {t.schedule: t for t in triggers}
        self.name = "schedules"
        self.produces = frozenset(async_queue(t.function) for t in triggers)
        self._timings: dict[tuple[str, float], Timing] = {}
        #: when the next timer of the group is due, as last read
        self._next: float | None = None

    @property
    def interval(self) -> float:  # type: ignore[override]
        """Until the next timer is due within AHEAD (read after each round), at most POLL_INTERVAL."""
        if self._next is None:
            return POLL_INTERVAL
        return min(POLL_INTERVAL, max(0.0, self._next - AHEAD - self.clock()))

    async def step(self) -> Progress:
        progress = await asyncio.to_thread(self.fire_due)
        self._next = await asyncio.to_thread(self.backend.timers_next, GROUP)
        return progress

    async def wakes_at(self) -> float | None:
        due = await asyncio.to_thread(self.backend.timers_next, GROUP)
        return None if due is None else due - AHEAD

    def fire_due(self) -> Progress:
        """Fire every due timer of this app's schedules, a claim at a time (each one commit)
        until none is left: a thousand schedules due at one minute fire in one round."""
        progress = Progress()
        while True:
            timers = self.backend.timers_claim(GROUP, CLAIM_LIMIT, LEASE, AHEAD)
            firings = [firing for firing in map(self._firing, timers) if firing is not None]
            fired = self.backend.timers_fire(GROUP, firings) if firings else []
            # a firing that did not fire: our lease ran out and another node fired it
            progress.succeeded += sum(len(f.bodies) for f, ok in zip(firings, fired, strict=True) if ok)
            if len(timers) < CLAIM_LIMIT:
                return progress

    def _timing(self, trigger: ScheduleTrigger, anchor: float) -> Timing:
        """A schedule's timing, worked out once per anchor (not at every firing)."""
        key = (trigger.schedule, anchor)
        if key not in self._timings:
            self._timings[key] = trigger.timing(anchor)
        return self._timings[key]

    def _firing(self, timer: Timer) -> TimerFiring | None:
        """What firing a claimed timer enqueues and sets next; None to leave it alone."""
        trigger = self.triggers.get(timer.key)
        firing = Firing.loads(timer.payload)
        if trigger is None or firing is None:
            # a schedule the app no longer declares (or a payload no version wrote): gone
            self.backend.timer_ack(GROUP, timer.key, timer.receipt)
            return None
        if firing.fingerprint != trigger.fingerprint:
            return None  # set up by another version of the app, whose nodes fire it
        timing = self._timing(trigger, firing.anchor)
        # firings whose delivery window has passed: the one due, and any missed since
        horizon = self.clock() - (trigger.flexible_window or 0) * 60
        due = [firing.time, *timing.between(firing.time, horizon)]
        chosen = due[-1:] if trigger.catch_up is None else [t for t in due if t >= horizon - trigger.catch_up]
        if len(chosen) < len(due):
            log.warning("schedule %s: %d firing(s) missed while no node ran were dropped (catch_up=%s), "
                        "delivering %d", trigger.schedule, len(due) - len(chosen), trigger.catch_up, len(chosen))
        following = timing.after(due[-1])
        bodies = [wire.dumps(scheduled_event(trigger.schedule, t, trigger.payload)).decode() for t in chosen]
        next_due, next_payload = (None, "") if following is None else (
            due_at(trigger, following), Firing(following, firing.anchor, firing.fingerprint).dumps())
        return TimerFiring(timer.key, timer.receipt, async_queue(trigger.function), bodies, next_due, next_payload,
                           visible_at=timer.due)


def provision(backend: Backend, triggers: list[ScheduleTrigger]) -> None:
    """Give every new or changed schedule a timer at its next firing (see the module docstring).

    Nodes provision one at a time, under a lease: a node starting beside one that already
    fires a schedule must see its registry entry rather than set the timer again (which
    would repeat a rate's first firing). A node that dies holding the lease holds it up
    for PROVISION_LEASE seconds at most; its services had not started, so it fired nothing.
    """
    holder = uuid.uuid4().hex
    deadline = time.monotonic() + 2 * PROVISION_LEASE
    while not backend.lease_acquire(PROVISION_LOCK, holder, PROVISION_LEASE):
        if time.monotonic() > deadline:
            raise BackendUnavailable(f"schedules: the provisioning lease stayed taken for {2 * PROVISION_LEASE:g}s")
        time.sleep(0.05)
    try:
        _provision(backend, triggers)
    finally:
        backend.lease_release(PROVISION_LOCK, holder)


def _provision(backend: Backend, triggers: list[ScheduleTrigger]) -> None:
    now = backend.clock()
    for trigger in triggers:
        item = backend.table_get(REGISTRY, trigger.schedule)
        if item is not None and item.value.get("fingerprint") == trigger.fingerprint:
            continue
        timing = trigger.timing(float(int(now)))  # a rate without a start counts from this second
        first = timing.after(timing.anchor - 0.001)  # and fires at once, as on Scheduler
        if first is None:
            backend.timer_cancel(GROUP, trigger.schedule)
        else:
            backend.timer_set(GROUP, trigger.schedule, due_at(trigger, first),
                              Firing(first, timing.anchor, trigger.fingerprint).dumps())
        entry = {"function": trigger.function, "expression": trigger.expression, "timezone": trigger.timezone,
                 "start": trigger.start, "end": trigger.end, "anchor": timing.anchor,
                 "fingerprint": trigger.fingerprint}
        backend.table_put(REGISTRY, trigger.schedule, entry)


class ScheduleSource(Source[ScheduleTrigger]):
    kind = "schedule"
    trigger = ScheduleTrigger

    def __init__(self, app: Any, triggers: list[ScheduleTrigger]) -> None:
        super().__init__(app, triggers)
        names = [t.schedule for t in triggers]
        if twice := sorted({n for n in names if names.count(n) > 1}):
            raise ConfigError(f"schedule {twice[0]!r} is declared twice: a function with several schedules "
                              f"names each (schedule_name=...)")

    def provision(self, backend: Backend) -> None:
        provision(backend, self.triggers)

    def services(self, node: NodeContext) -> list[Service]:
        return [ScheduleService(node.backend, self.triggers)]
