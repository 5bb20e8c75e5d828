"""The event bus (EventBridge): buses, rules with targets, archives and replays.

Declarations (three trigger kinds, so each survives the manifest): `EventBus` (a custom bus;
the default bus is declared for the app when a rule or archive first uses it), `EventRule`
(a pattern on a bus and up to five targets: functions, queues, topics, other buses; from
`app.on_event`, the rule's own function is one of them) and `EventArchive`.

The path of an event, each step durable and each hand-over one commit:

1. **Put.** `put_events` checks the entries as PutEvents does and appends each event to
   its bus's intake queue (one commit per bus), with the producer's trace context. Once it
   returns, the events are durable.
2. **Route.** A `Router` per bus claims intake events, matches each once against the bus's
   compiled rules (`squall.routing.Rules`) and archives, renders each matched target's
   input (`InputPath`, input transformer) and replaces the event by one message per target,
   in that target's own queue, in one commit (`Queues.fan_out`, consuming the claimed
   events): an event is routed exactly once, even if its router dies half-way.
3. **Deliver.** Each target queue has its own consumer (`QueueConsumer`), so a slow or
   failing target delays no other. A function target is an asynchronous invocation; any
   other target is handed to `squall.dispatch.targets.deliver`. Failures are retried with
   backoff under the target's retry policy (EventBridge's `MaximumRetryAttempts`, default
   185, and `MaximumEventAgeInSeconds`, default a day), then go to the target's `dlq` with
   EventBridge's attributes (`RULE_ARN`, `TARGET_ARN`, `ERROR_CODE`, `ERROR_MESSAGE`, ...),
   or, without one, to an internal dead-letter queue: nothing is dropped silently.

An archive is a managed rule whose target appends the event to the archive's stream
(`squall.archive.NAME`), trimmed to its retention. `replay` puts archived events back on
their bus with `replay-name` set; archives do not match replayed events, as on EventBridge.
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar

from squall.backends import Backend, Message, QueueConfig
from squall.backends.fifo import check_fifo_id, is_fifo
from squall.backends.protocol import Consumed, FanOutEntry, Queues
from squall.core.checks import check_number, check_queue_name
from squall.core.lifecycle import Progress, Service
from squall.core.pipeline import InvokeRequest
from squall.dispatch.consumer import ConsumerConfig, Delivery, QueueConsumer, read_ahead, single_failure
from squall.dispatch.targets import Target, TargetKind, deliver, register
from squall.dispatch.watcher import QueueWatcher
from squall.errors import ConfigError, FunctionError, InvalidEventPattern
from squall.events.eventbridge import (
    DEFAULT_BUS,
    REPLAY_NAME,
    Entry,
    EntryError,
    archive_arn,
    bus_arn,
    check_request,
    entry_event,
    event_time,
    results,
    rule_arn,
)
from squall.events.transform import MISSING, Context, InputTransformer, Path, input_path
from squall.observability.context import TRACE_ATTRIBUTE, TRACEPARENT, parse_traceparent, trace_attribute
from squall.observability.spans import FaasTrigger, SpanKind, SpanShape
from squall.routing import Pattern, Rules, event_pattern
from squall.runtime import wire
from squall.runtime.invocation import Invocation
from squall.services import message_attribute
from squall.sources.async_invoke import invocation_concurrency, invocation_visibility
from squall.sources.base import NodeContext, Source, Trigger
from squall.sources.topics import TopicAttributes

if TYPE_CHECKING:
    from squall.app import App, FunctionConfig
    from squall.runtime.tracing import InvocationTrace

log = logging.getLogger("squall.events")

#: EventBridge's names: rules up to 64 of [.-_A-Za-z0-9], buses up to 256 (a custom bus may
#: not be called "default" nor start with "aws."), archives up to 48, replays up to 64
RULE_NAME = re.compile(r"[.\-_A-Za-z0-9]{1,64}")
BUS_NAME = re.compile(r"[.\-_A-Za-z0-9]{1,256}")
ARCHIVE_NAME = re.compile(r"[.\-_A-Za-z0-9]{1,48}")
REPLAY_NAME_FORM = re.compile(r"[.\-_A-Za-z0-9]{1,64}")
#: EventBridge's limits: 5 targets per rule; a retry policy of 0-185 attempts and 60 s to a day
MAX_TARGETS = 5
MAX_RETRY_ATTEMPTS = 185
MIN_EVENT_AGE, MAX_EVENT_AGE = 60, 86400
#: first retry delay of a failed delivery (doubling, with jitter, as EventBridge backs off)
RETRY_BASE = 1.0
#: seconds a routed or delivered message stays claimed (far longer than one forward)
ROUTE_VISIBILITY = 10.0
#: events one router claims per round
ROUTE_BATCH = 100
#: seconds an idle router waits for a wake-up before it looks anyway
IDLE_POLL = 5.0
#: seconds before a router whose round failed (the backend is down) tries again
UNREACHABLE_RETRY = 1.0
#: what a target dictionary may hold besides its kind
TARGET_OPTIONS = frozenset({"input_path", "input_transformer", "retry_attempts", "max_event_age", "dlq",
                            "message_group_id"})
#: EventBridge's SqsParameters.MessageGroupId: at most 100 characters
MAX_GROUP_ID = 100
#: what a rule may target (workflows, later)
RULE_TARGETS = (TargetKind.FUNCTION, TargetKind.QUEUE, TargetKind.TOPIC, TargetKind.BUS)
#: the error type of a failed delivery to a target that is not a function
DELIVERY_FAILED = "DeliveryFailed"
#: seconds of an archive kept "indefinitely" (retention_days=0, as EventBridge)
FOREVER = 100 * 365 * 86400.0


def intake_queue(bus: str) -> str:
    """Where a bus's events wait to be routed."""
    return f"bus/{bus}"


def target_queue(bus: str, rule: str, index: int) -> str:
    """Where one target's deliveries wait ('/' cannot be in a name, so these never clash)."""
    return f"rule/{bus}/{rule}/{index}"


def archive_queue(archive: str) -> str:
    return f"archive/{archive}"


def archive_stream(archive: str) -> str:
    return f"squall.archive.{archive}"


def _name(what: str, value: Any, form: re.Pattern[str], limit: str) -> str:
    if not isinstance(value, str) or not form.fullmatch(value):
        raise ConfigError(f"invalid {what} name {value!r}: {limit} of letters, digits, '.', '-' or '_'")
    return value


def _pattern(what: str, pattern: Any) -> Pattern:
    try:
        return event_pattern(pattern)
    except InvalidEventPattern as exc:
        raise InvalidEventPattern(f"{what}: {exc}") from None


# ---- declarations ---------------------------------------------------------------------


@dataclass(frozen=True, kw_only=True)
class EventBus(Trigger):
    """An event bus (`app.bus(name)`); the default bus is declared by the app when used."""

    kind: ClassVar[str] = "event-bus"

    name: str

    def __post_init__(self) -> None:
        _name("event bus", self.name, BUS_NAME, "1 to 256")
        if self.name.startswith("aws."):
            raise ConfigError(f"invalid event bus name {self.name!r}: names starting with 'aws.' are AWS's")

    def conflict(self, other: Trigger) -> str | None:
        if isinstance(other, EventBus) and other.name == self.name:
            return f"event bus {self.name!r} is declared twice"
        return None

    def describe(self) -> str:
        return f"event bus {self.name}"


@dataclass(frozen=True)
class RuleTarget:
    """One target of a rule, parsed: where, what part of the event, and its retry policy."""

    target: Target
    input_path: Path | None
    input_transformer: InputTransformer | None
    retry_attempts: int
    max_event_age: int
    dlq: str
    #: a FIFO queue or topic target's MessageGroupId (EventBridge's SqsParameters and
    #: SnsParameters); None for any other
    message_group_id: str | None = None

    @classmethod
    def parse(cls, what: str, spec: Mapping[str, Any]) -> RuleTarget:
        kinds = [key for key in spec if key not in TARGET_OPTIONS]
        if len(kinds) != 1:
            raise ConfigError(f"{what}: a target names one of {', '.join(map(str, RULE_TARGETS))} (and options "
                              f"{', '.join(sorted(TARGET_OPTIONS))}), not {dict(spec)!r}")
        target = Target.parse(what, f"{kinds[0]}:{spec[kinds[0]]}", RULE_TARGETS)
        path = spec.get("input_path")
        transformer = spec.get("input_transformer")
        if path is not None and transformer is not None:
            raise ConfigError(f"{what}: give input_path or input_transformer, not both")
        parsed_path = input_path(what, path) if path is not None else None
        parsed = InputTransformer.parse(what, transformer) if transformer is not None else None
        if target.kind is TargetKind.BUS and (path is not None or transformer is not None):
            raise ConfigError(f"{what}: an event bus target receives the event itself: no input_path or "
                              f"input_transformer")
        if target.kind is TargetKind.FUNCTION and parsed is not None and not parsed.is_json():
            raise ConfigError(f"{what}: a function receives JSON, and this InputTemplate does not always render "
                              f"JSON: {parsed.template!r}")
        retry_attempts = spec.get("retry_attempts", MAX_RETRY_ATTEMPTS)
        max_event_age = spec.get("max_event_age", MAX_EVENT_AGE)
        check_number(f"{what}: retry_attempts", retry_attempts, 0, MAX_RETRY_ATTEMPTS, integer=True)
        check_number(f"{what}: max_event_age", max_event_age, MIN_EVENT_AGE, MAX_EVENT_AGE, integer=True)
        dlq = spec.get("dlq") or ""
        if dlq:
            check_queue_name(dlq)
            if is_fifo(dlq):
                raise ConfigError(f"{what}: dlq {dlq!r} is a FIFO queue; EventBridge's dead-letter queues are "
                                  f"standard SQS queues")
        group = _message_group_id(what, target, spec.get("message_group_id"))
        return cls(target, parsed_path, parsed, retry_attempts, max_event_age, dlq, group)

    def input(self, event: Mapping[str, Any], text: str, context: Context) -> str:
        """What the target receives for `event` (whose JSON is `text`): the whole event, a
        part, or a rendering."""
        if self.input_transformer is not None:
            return self.input_transformer.render(event, context)
        if self.input_path is not None:
            value = self.input_path.find(event)
            return wire.dumps(None if value is MISSING else value).decode()
        return text


def _message_group_id(what: str, target: Target, group: Any) -> str | None:
    """A target's MessageGroupId, as EventBridge takes SqsParameters and SnsParameters:
    required for a FIFO queue or a FIFO topic, refused for anything else."""
    if target.kind not in (TargetKind.QUEUE, TargetKind.TOPIC) or not is_fifo(target.name):
        if group is not None:
            raise ConfigError(f"{what}: message_group_id is only for a FIFO queue or FIFO topic target "
                              f"(EventBridge's SqsParameters and SnsParameters), not {target}")
        return None
    parameters = "SqsParameters" if target.kind is TargetKind.QUEUE else "SnsParameters"
    if group is None:
        raise ConfigError(f"{what}: {target.kind} {target.name!r} is FIFO: give the target a message_group_id "
                          f"(EventBridge's {parameters}.MessageGroupId)")
    check_fifo_id(f"{what}: message_group_id", group)
    if len(group) > MAX_GROUP_ID:
        raise ConfigError(f"{what}: message_group_id is {len(group)} characters; EventBridge allows {MAX_GROUP_ID}")
    return group


def canonical_target(value: Any) -> str:
    """A target dictionary as canonical JSON (what the manifest carries)."""
    if not isinstance(value, Mapping):
        raise ConfigError(f"a rule target is a dict such as {{'queue': 'q'}}, not {value!r}")
    try:
        return json.dumps(dict(value), sort_keys=True, separators=(",", ":"))
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"a rule target must be JSON data: {exc}") from None


@dataclass(frozen=True, kw_only=True)
class EventRule(Trigger):
    """A rule: events of `bus` that `pattern` matches go to every target. `targets` are
    canonical JSON dicts (`{"queue": "q", "input_transformer": {...}}`); with a `function`
    (`app.on_event`), that function is one more target, with the options of the fields
    below."""

    kind: ClassVar[str] = "event-rule"

    name: str
    bus: str = DEFAULT_BUS
    #: canonical JSON (a dict or JSON text is accepted)
    pattern: str = ""
    targets: tuple[str, ...] = ()
    input_path: str | None = None
    #: canonical JSON, or "" for none
    input_transformer: str = ""
    retry_attempts: int = MAX_RETRY_ATTEMPTS
    max_event_age: int = MAX_EVENT_AGE
    dlq: str = ""

    def __post_init__(self) -> None:
        _name("rule", self.name, RULE_NAME, "1 to 64")
        _name("event bus", self.bus, BUS_NAME, "1 to 256")
        what = f"rule {self.name!r}"
        object.__setattr__(self, "pattern", _pattern(what, self.pattern).source)
        object.__setattr__(self, "targets", tuple(canonical_target(
            json.loads(t) if isinstance(t, str) else t) for t in self.targets))
        count = len(self.targets) + bool(self.function)
        if count > MAX_TARGETS:
            raise ConfigError(f"{what} has {count} targets; EventBridge allows {MAX_TARGETS} per rule")
        targets = self.rule_targets  # checks each one
        for index, target in enumerate(targets):
            if target.target.kind is TargetKind.BUS and target.target.name == self.bus:
                raise ConfigError(f"{what} target {index}: the rule's own bus {self.bus!r} cannot be its target")

    @property
    def rule_targets(self) -> list[RuleTarget]:
        parsed = [RuleTarget.parse(f"rule {self.name!r} target {index}", json.loads(text))
                  for index, text in enumerate(self.targets)]
        if self.function:
            own: dict[str, Any] = {"function": self.function, "retry_attempts": self.retry_attempts,
                                   "max_event_age": self.max_event_age, "dlq": self.dlq}
            if self.input_path is not None:
                own["input_path"] = self.input_path
            if self.input_transformer:
                own["input_transformer"] = json.loads(self.input_transformer)
            parsed.append(RuleTarget.parse(f"rule {self.name!r}", own))
        return parsed

    @property
    def arn(self) -> str:
        return rule_arn(self.bus, self.name)

    def conflict(self, other: Trigger) -> str | None:
        if isinstance(other, EventRule) and (other.bus, other.name) == (self.bus, self.name):
            return f"rule {self.name!r} of event bus {self.bus!r} is declared twice"
        return None

    def describe(self) -> str:
        targets = ", ".join(str(t.target) for t in self.rule_targets)
        return f"rule {self.name} on bus {self.bus}: {self.pattern} -> {targets}"


@dataclass(frozen=True, kw_only=True)
class EventArchive(Trigger):
    """An archive of a bus's events (those `pattern` matches; every event without one),
    kept `retention_days` (0: indefinitely, as on EventBridge)."""

    kind: ClassVar[str] = "event-archive"

    name: str
    bus: str = DEFAULT_BUS
    pattern: str = ""
    retention_days: int = 0

    def __post_init__(self) -> None:
        _name("archive", self.name, ARCHIVE_NAME, "1 to 48")
        _name("event bus", self.bus, BUS_NAME, "1 to 256")
        if self.pattern:
            object.__setattr__(self, "pattern", _pattern(f"archive {self.name!r}", self.pattern).source)
        check_number(f"retention_days of archive {self.name!r}", self.retention_days, 0, 1_000_000, integer=True)

    @property
    def retention(self) -> float:
        return self.retention_days * 86400.0 if self.retention_days else FOREVER

    def conflict(self, other: Trigger) -> str | None:
        if isinstance(other, EventArchive) and other.name == self.name:
            return f"archive {self.name!r} is declared twice"
        return None

    def describe(self) -> str:
        kept = f"{self.retention_days} days" if self.retention_days else "indefinitely"
        return f"archive {self.name} of bus {self.bus}: {self.pattern or 'every event'}, kept {kept}"


def check_bus(app: App, bus: str, what: str) -> EventBus | None:
    """The declaration a rule or archive on `bus` needs: the default bus's the first time
    (it always exists), none for a declared bus; ConfigError for an undeclared one."""
    declared = {t.name for t in app.triggers if isinstance(t, EventBus)}
    if bus in declared:
        return None
    if bus == DEFAULT_BUS:
        return EventBus(name=DEFAULT_BUS)
    raise ConfigError(f"{what}: unknown event bus {bus!r} (buses: {', '.join(sorted(declared | {DEFAULT_BUS}))}); "
                      f"declare it with app.bus({bus!r}) first")


def check_rule_references(app: App, rule: EventRule) -> None:
    """ConfigError if a function or bus the rule targets is not declared (before it), or a
    FIFO queue or topic it targets is not declared before it with content-based deduplication."""
    buses = {t.name for t in app.triggers if isinstance(t, EventBus)} | {DEFAULT_BUS}
    deduplicating = {t.queue for t in app.queue_triggers if t.content_based_deduplication}
    deduplicating_topics = {t.topic for t in app.triggers
                            if isinstance(t, TopicAttributes) and t.content_based_deduplication}
    for index, target in enumerate(rule.rule_targets):
        kind, name = target.target.kind, target.target.name
        if kind is TargetKind.FUNCTION and name != rule.function and name not in app.functions:
            raise ConfigError(f"rule {rule.name!r} target {index}: unknown function {name!r} (functions: "
                              f"{', '.join(sorted(app.functions)) or 'none'}); declare it before the rule")
        if kind is TargetKind.BUS and name not in buses:
            raise ConfigError(f"rule {rule.name!r} target {index}: unknown event bus {name!r}; declare it with "
                              f"app.bus({name!r}) before the rule")
        if kind is TargetKind.QUEUE and is_fifo(name) and name not in deduplicating:
            raise ConfigError(f"rule {rule.name!r} target {index}: FIFO queue {name!r} must be declared before the "
                              f"rule with content_based_deduplication=True (app.on_queue): EventBridge sends events "
                              f"to a FIFO queue without a deduplication id")
        if kind is TargetKind.TOPIC and is_fifo(name) and name not in deduplicating_topics:
            raise ConfigError(f"rule {rule.name!r} target {index}: FIFO topic {name!r} must be declared before the "
                              f"rule with content_based_deduplication=True (app.topic): its events are published "
                              f"without a deduplication id")


# ---- putting events -----------------------------------------------------------------


def put_events(backend: Backend, entries: Any, known: set[str] | None = None,
               trace: InvocationTrace | None = None) -> dict[str, Any]:
    """PutEvents: each entry checked and appended to its bus (one commit per bus), durable
    once this returns. Entries that fail are reported in the result, not raised; a request
    over PutEvents' limits is a ConfigError. `known`: intake queues known to exist (the
    caller's cache); `trace`: the invocation a handler's put continues (a PRODUCER span).
    The default bus always exists: in an app without rules on it, its events match nothing."""
    checked = check_request(entries)
    now = backend.clock()
    outcomes: list[Entry | EntryError] = []
    by_bus: dict[str, list[Entry]] = {}
    for entry in checked:
        outcome = entry_event(entry, now)
        if isinstance(outcome, Entry):
            if _declared(backend, outcome.bus, known):
                by_bus.setdefault(outcome.bus, []).append(outcome)
            elif outcome.bus != DEFAULT_BUS:
                outcome = EntryError("ResourceNotFoundException", f"Event bus {outcome.bus} does not exist.")
        outcomes.append(outcome)
    for bus, accepted in by_bus.items():
        with _producing(trace, bus, len(accepted)) as attributes:
            backend.enqueue_batch(intake_queue(bus), [(wire.dumps(e.event).decode(), attributes, 0.0)
                                                      for e in accepted])
    return results(outcomes)


def _declared(backend: Backend, bus: str, known: set[str] | None) -> bool:
    queue = intake_queue(bus)
    if known is not None and queue in known:
        return True
    found = backend.queue_config(queue) is not None
    if found and known is not None:
        known.add(queue)
    return found


@contextmanager
def _producing(trace: InvocationTrace | None, bus: str, count: int) -> Iterator[dict[str, Any] | None]:
    """The PRODUCER span of a put, when the invocation is traced (messaging conventions,
    with the AWS SDK's `rpc.*`), and the attributes that carry its context with the events."""
    if trace is None:
        yield None
        return
    with trace.producer(bus, count, system="aws.eventbridge", operation="PutEvents") as span:
        span.attributes.update({"rpc.system": "aws-api", "rpc.service": "EventBridge", "rpc.method": "PutEvents"})
        yield {TRACE_ATTRIBUTE: trace_attribute(span.context(trace.context.sampled))}


# ---- routing ----------------------------------------------------------------------------


@dataclass(frozen=True)
class _Route:
    """Where a match sends an event: a rule's target queues, or an archive's queue."""

    rule: str
    rule_arn: str
    targets: tuple[tuple[str, RuleTarget | None], ...]
    #: an archive: replayed events are not archived again
    archive: bool = False


class _Pump(Service):
    """Claims from one internal queue and hands each claim to `pump_once`, again at once
    while claims come back full, else when the node's watcher says the queue has work."""

    def __init__(self, name: str, queue: str, watcher: QueueWatcher | None):
        self.name = name
        self.queue = queue
        self.consumes = frozenset({queue})
        self.watcher = watcher
        self._wake = asyncio.Event()
        self._stopping = False
        self._task: asyncio.Task[None] | None = None

    def pump_once(self) -> int:
        """One claim handled (in a worker thread); how many messages it took."""
        raise NotImplementedError

    def wake(self) -> None:
        self._wake.set()

    async def start(self) -> None:
        if self.watcher is not None:
            self.watcher.watch(self.queue, self)
        self._task = asyncio.create_task(self._run(), name=self.name)

    async def stop(self) -> None:
        self._stopping = True
        self._wake.set()
        if self.watcher is not None:
            self.watcher.unwatch(self.queue)
        if self._task is not None:
            await self._task

    async def step(self) -> Progress:
        return Progress(succeeded=await asyncio.to_thread(self.pump_once))

    async def _run(self) -> None:
        while not self._stopping:
            self._wake.clear()
            try:
                done = await asyncio.to_thread(self.pump_once)
            except Exception as exc:  # noqa: BLE001 - what was claimed comes back after its visibility timeout
                log.warning("%s: %s: %s; retrying", self.name, type(exc).__name__, exc)
                done = 0
                await asyncio.sleep(UNREACHABLE_RETRY)
            if done < ROUTE_BATCH and not self._stopping:
                try:  # the watcher wakes us; the timeout is a safety net for a lost notice
                    await asyncio.wait_for(self._wake.wait(), IDLE_POLL)
                except TimeoutError:
                    pass


class Router(_Pump):
    """Routes one bus's events: claim from the intake queue, match once against every rule
    and archive of the bus, and forward each event to its targets' queues in one commit."""

    def __init__(self, backend: Queues, bus: str, routes: list[tuple[Pattern | None, _Route]],
                 watcher: QueueWatcher | None = None):
        super().__init__(f"router:{bus}", intake_queue(bus), watcher)
        self.backend = backend
        self.bus = bus
        self.routes = [route for _, route in routes]
        #: routes without a pattern (an archive of every event)
        self.everything = {index for index, (pattern, _) in enumerate(routes) if pattern is None}
        self.rules: Rules[int] = Rules()
        for index, (pattern, _) in enumerate(routes):
            if pattern is not None:
                self.rules.add(index, pattern)

    def pump_once(self) -> int:
        messages = self.backend.claim(self.queue, ROUTE_BATCH, ROUTE_VISIBILITY)
        if messages:
            entries = [entry for message in messages for entry in self.forward(message)]
            self.backend.fan_out(entries, consumed=Consumed(self.queue, [m.receipt for m in messages]))
        return len(messages)

    def forward(self, message: Message) -> list[FanOutEntry]:
        """What one intake event becomes: a message per matched target, written only while
        the claim holds (none for a message that is not an event: logged and dropped, since
        no retry can mend it)."""
        try:
            event = json.loads(message.body)
        except ValueError:
            event = None
        if not isinstance(event, dict):
            log.error("bus %s: message %s is not an event, dropped: %.200s", self.bus, message.id, message.body)
            return []
        trace = message.attributes.get(TRACE_ATTRIBUTE)
        attributes = {TRACE_ATTRIBUTE: trace} if trace else None
        replayed = REPLAY_NAME in event
        ingested = event_time(message.sent_at)
        out: list[FanOutEntry] = []
        for index in sorted(self.rules.matching(event) | self.everything):
            route = self.routes[index]
            if route.archive and replayed:
                continue
            context = Context(route.rule, route.rule_arn, ingested)
            for queue, target in route.targets:
                body = message.body if target is None else target.input(event, message.body, context)
                out.append(FanOutEntry(queue, body, attributes, receipt=message.receipt))
        return out


# ---- delivering -------------------------------------------------------------------------


def dead_letter_attributes(rule: EventRule, target: RuleTarget) -> Callable[[Invocation], dict[str, Any]]:
    """The attributes EventBridge gives an event it sends to a target's dead-letter queue."""
    target_arn = _target_arn(target.target)

    def attributes(invocation: Invocation) -> dict[str, Any]:
        error = invocation.error
        code = "INTERNAL_ERROR" if error is not None and error.error_type == DELIVERY_FAILED else "ERROR_FROM_TARGET"
        return {"RULE_ARN": message_attribute("RULE_ARN", rule.arn),
                "TARGET_ARN": message_attribute("TARGET_ARN", target_arn),
                "ERROR_CODE": message_attribute("ERROR_CODE", code),
                "ERROR_MESSAGE": message_attribute("ERROR_MESSAGE", str(error)[:1024])}

    return attributes


def _target_arn(target: Target) -> str:
    from squall import aws

    return {TargetKind.FUNCTION: lambda: aws.arn("lambda", f"function:{target.name}"),
            TargetKind.QUEUE: lambda: aws.arn("sqs", target.name),
            TargetKind.TOPIC: lambda: aws.arn("sns", target.name),
            TargetKind.BUS: lambda: bus_arn(target.name)}[target.kind]()


class TargetDelivery:
    """Delivers a non-function target's messages (a queue, a topic, another bus), shaped as
    an invocation so that one consumer gives every kind of target the same retries and
    dead-letter queue. `group`: a FIFO queue target's MessageGroupId."""

    def __init__(self, backend: Backend, target: Target, group: str | None = None):
        self.backend = backend
        self.target = target
        self.group = group

    async def __call__(self, request: InvokeRequest) -> Invocation:
        start = time.time()
        context = parse_traceparent(request.headers.get(TRACEPARENT))
        attributes = {TRACE_ATTRIBUTE: trace_attribute(context)} if context else None
        error = None
        try:
            await asyncio.to_thread(deliver, self.backend, self.target, request.event, attributes, self.group)
        except Exception as exc:  # noqa: BLE001 - any failure to deliver is retried, then dead-lettered
            error = FunctionError(f"{type(exc).__name__}: {exc}", DELIVERY_FAILED)
        return Invocation(request.request_id, request.function, request.trigger, start,
                          (time.time() - start) * 1000, 0, error=error)


def _raw_body(messages: list[Message]) -> Any:
    return messages[0].body


# ---- the sources --------------------------------------------------------------------


class BusSource(Source[EventBus]):
    """Each bus's intake queue and its router (the rules and archives of every bus)."""

    kind = "event-bus"
    trigger = EventBus

    def provision(self, backend: Backend) -> None:
        for bus in self.triggers:
            backend.queue_declare(intake_queue(bus.name), QueueConfig(internal=True))

    def services(self, node: NodeContext) -> list[Service]:
        watcher = node.shared(QueueWatcher, lambda: QueueWatcher(node.backend))
        return [Router(node.backend, bus.name, list(routes_of(self.app, bus.name)), watcher) for bus in self.triggers]

    def describe(self) -> list[str]:
        return []


def routes_of(app: App, bus: str) -> Iterator[tuple[Pattern | None, _Route]]:
    """The bus's rules and archives, each with its compiled pattern (None: every event)."""
    for trigger in app.triggers:
        if isinstance(trigger, EventRule) and trigger.bus == bus:
            targets = tuple((target_queue(bus, trigger.name, index), target)
                            for index, target in enumerate(trigger.rule_targets))
            yield event_pattern(trigger.pattern), _Route(trigger.name, trigger.arn, targets)
        elif isinstance(trigger, EventArchive) and trigger.bus == bus:
            pattern = event_pattern(trigger.pattern) if trigger.pattern else None
            yield pattern, _Route(f"Events-Archive-{trigger.name}", archive_arn(trigger.name),
                                  ((archive_queue(trigger.name), None),), archive=True)


class RuleSource(Source[EventRule]):
    """A queue and a consumer per rule target."""

    kind = "event-rule"
    trigger = EventRule

    def provision(self, backend: Backend) -> None:
        for rule, index, target in self._targets():
            queue = target_queue(rule.bus, rule.name, index)
            backend.queue_declare(queue, QueueConfig(
                dlq=self._dlq(queue, target), max_receive_count=target.retry_attempts + 1,
                function=target.target.name if target.target.kind is TargetKind.FUNCTION else None,
                visibility_timeout=self._visibility(target), internal=True))
            if not target.dlq:
                backend.queue_declare(f"{queue}-dlq", QueueConfig(dlq_of=queue, internal=True))

    def services(self, node: NodeContext) -> list[Service]:
        watcher = node.shared(QueueWatcher, lambda: QueueWatcher(node.backend))
        consumers: list[Service] = []
        for rule, index, target in self._targets():
            queue = target_queue(rule.bus, rule.name, index)
            is_function = target.target.kind is TargetKind.FUNCTION
            visibility = self._visibility(target)
            config = ConsumerConfig(queue, target.target.name if is_function else str(target.target), batch_size=1,
                                    max_receive_count=target.retry_attempts + 1,
                                    visibility_timeout=visibility, dlq=self._dlq(queue, target),
                                    concurrency=self._concurrency(target), retry_base=node.settings.async_retry_base,
                                    max_age=float(target.max_event_age),
                                    read_ahead=self._read_ahead(target, visibility))
            delivery = Delivery(self.kind, (lambda m: wire.loads(m[0].body)) if is_function else _raw_body,
                                single_failure, dead_letter_attributes(rule, target),
                                request_id=lambda messages: messages[0].id)
            invoke = node.invoke if is_function else TargetDelivery(node.backend, target.target,
                                                                    target.message_group_id)
            consumers.append(QueueConsumer(node.backend, invoke, config, delivery, watcher, node.runtime_ready,
                                           node.backend.clock))
        return consumers

    def span(self, request: InvokeRequest, invocation: Invocation) -> SpanShape:
        """A CONSUMER span of the messaging conventions: `process RULE` on the bus."""
        _, bus, rule, _ = request.source.split("/")
        return SpanShape(f"process {rule}", SpanKind.CONSUMER, FaasTrigger.PUBSUB, {
            "messaging.system": "aws.eventbridge", "messaging.operation.type": "process",
            "messaging.operation.name": "process", "messaging.destination.name": bus,
            "messaging.message.id": request.request_id})

    def _targets(self) -> Iterator[tuple[EventRule, int, RuleTarget]]:
        for rule in self.triggers:
            for index, target in enumerate(rule.rule_targets):
                yield rule, index, target

    def _function(self, target: RuleTarget) -> FunctionConfig | None:
        """The configuration of a target that is one of the app's functions."""
        if target.target.kind is TargetKind.FUNCTION and target.target.name in self.app.functions:
            return self.app.config(target.target.name)
        return None

    def _concurrency(self, target: RuleTarget) -> int:
        """A function target's deliveries in flight per node: as its asynchronous invocations."""
        function = self._function(target)
        return invocation_concurrency(function.reserved_concurrency if function else None)

    @staticmethod
    def _dlq(queue: str, target: RuleTarget) -> str:
        return target.dlq or f"{queue}-dlq"

    def _visibility(self, target: RuleTarget) -> float:
        function = self._function(target)
        return invocation_visibility(function.timeout) if function else ROUTE_VISIBILITY

    def _read_ahead(self, target: RuleTarget, visibility: float) -> float:
        """A function target's consumer reads ahead as asynchronous invocations do; a
        delivery to a queue, topic or bus is one quick backend call, with nothing to gain."""
        function = self._function(target)
        return read_ahead(visibility, function.timeout) if function else 0.0


class ArchiveSource(Source[EventArchive]):
    """Each archive's queue, and the archiver appending its events to the stream."""

    kind = "event-archive"
    trigger = EventArchive

    def provision(self, backend: Backend) -> None:
        for archive in self.triggers:
            backend.queue_declare(archive_queue(archive.name), QueueConfig(internal=True))
            backend.stream_create(archive_stream(archive.name), 1)

    def services(self, node: NodeContext) -> list[Service]:
        watcher = node.shared(QueueWatcher, lambda: QueueWatcher(node.backend))
        return [Archiver(node.backend, archive, watcher) for archive in self.triggers]

    def retention(self) -> dict[str, float]:
        return {archive_stream(archive.name): archive.retention for archive in self.triggers}


class Archiver(_Pump):
    """Moves an archive's events from its queue to its stream, with the bus they came from.
    A node that dies between the append and the ack archives an event twice; a replay
    sends each event id once."""

    def __init__(self, backend: Backend, archive: EventArchive, watcher: QueueWatcher | None = None):
        super().__init__(f"archiver:{archive.name}", archive_queue(archive.name), watcher)
        self.backend = backend
        self.archive = archive
        self.stream = archive_stream(archive.name)

    def pump_once(self) -> int:
        messages = self.backend.claim(self.queue, ROUTE_BATCH, ROUTE_VISIBILITY)
        for m in messages:
            self.backend.stream_append(self.stream, m.id, json.dumps({"bus": self.archive.bus,
                                                                      "event": json.loads(m.body)}))
        if messages:
            self.backend.ack(self.queue, [m.receipt for m in messages])
        return len(messages)


# ---- replay -------------------------------------------------------------------------------


@dataclass(frozen=True)
class Replayed:
    name: str
    bus: str
    events: int


def replay(backend: Backend, archive: str, start: float, end: float, name: str) -> Replayed:
    """Put the events archive `archive` received from `start` to `end` (seconds) back on
    their bus, each marked with `replay-name` and a new id (as EventBridge replays), in
    pages of ROUTE_BATCH per commit. ConfigError for an unknown archive or a bad name."""
    _name("replay", name, REPLAY_NAME_FORM, "1 to 64")
    stream = archive_stream(archive)
    if backend.stream_shards(stream) == 0:
        raise ConfigError(f"unknown archive {archive!r}")
    if not start < end:
        raise ConfigError(f"the replay's start ({start}) must be before its end ({end})")
    seen: set[str] = set()
    count, bus, after = 0, "", 0
    from squall.aws import request_id

    while True:
        records = backend.stream_read(stream, 0, after, 1000)
        page: dict[str, list[tuple[str, dict[str, Any] | None, float]]] = {}
        for record in records:
            data = json.loads(record.data)
            event = data["event"]
            if not start <= record.timestamp < end or event["id"] in seen:
                continue
            seen.add(event["id"])
            bus = data["bus"]
            replayed = {**event, "id": request_id(), REPLAY_NAME: name}
            page.setdefault(bus, []).append((json.dumps(replayed), None, 0.0))
        for target, entries in page.items():
            for first in range(0, len(entries), ROUTE_BATCH):
                backend.enqueue_batch(intake_queue(target), entries[first:first + ROUTE_BATCH])
                count += len(entries[first:first + ROUTE_BATCH])
        if len(records) < 1000:
            return Replayed(name, bus, count)
        after = records[-1].seq


def _to_bus(backend: Backend, name: str, body: str, attributes: dict[str, Any] | None) -> None:
    backend.enqueue(intake_queue(name), body, attributes)


register(TargetKind.BUS, _to_bus)

