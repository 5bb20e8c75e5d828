"""Where the platform sends an event it made: a function, a queue, a topic or a bus.

Alarms send their state changes, and event routing (bus rules, topic subscriptions,
asynchronous invocation destinations) sends its events, to targets named as AWS names
them in configuration: `function:NAME`, `queue:NAME`, `topic:NAME`, `bus:NAME`. One
module parses the names and delivers, so each feature that targets something states only
which kinds it accepts. A function target is an asynchronous invocation (with its retries
and dead-letter queue); a queue target is a message. Each delivery is durable once
`deliver` returns. The sources that bring topics and buses register their deliverers
here.
"""

from __future__ import annotations

from collections.abc import Callable, Collection
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from squall.backends import Backend
from squall.backends.fifo import FifoEntry, content_dedup_id, is_fifo
from squall.core.checks import FUNCTION_NAME, check_name, check_queue_name
from squall.errors import ConfigError


class TargetKind(StrEnum):
    FUNCTION = "function"
    QUEUE = "queue"
    TOPIC = "topic"
    BUS = "bus"


#: delivers `body` (JSON text) to the target named, with system attributes (the trace context)
Deliverer = Callable[[Backend, str, str, dict[str, Any] | None], None]
#: the same to a FIFO target, in the message group given
FifoDeliverer = Callable[[Backend, str, str, dict[str, Any] | None, str], None]
#: checks a target's name (ConfigError naming it) and returns it
NameCheck = Callable[[str], str]


def _to_function(backend: Backend, name: str, body: str, attributes: dict[str, Any] | None) -> None:
    from squall.sources.async_invoke import async_queue

    backend.enqueue(async_queue(name), body, attributes)


def _to_queue(backend: Backend, name: str, body: str, attributes: dict[str, Any] | None) -> None:
    backend.enqueue(name, body, attributes)


def _to_fifo_queue(backend: Backend, name: str, body: str, attributes: dict[str, Any] | None, group: str) -> None:
    config = backend.queue_config(name)
    if config is None or not config.content_based_deduplication:
        raise ConfigError(f"FIFO queue {name!r} needs content_based_deduplication=True to take events: "
                          f"EventBridge sends them without a deduplication id")
    backend.enqueue_fifo(name, [FifoEntry(body, attributes, group, content_dedup_id(body))])


_DELIVERERS: dict[TargetKind, Deliverer] = {TargetKind.FUNCTION: _to_function, TargetKind.QUEUE: _to_queue}
_FIFO_DELIVERERS: dict[TargetKind, FifoDeliverer] = {TargetKind.QUEUE: _to_fifo_queue}
_NAME_CHECKS: dict[TargetKind, NameCheck] = {}


def register(kind: TargetKind, deliverer: Deliverer, check: NameCheck | None = None,
             fifo: FifoDeliverer | None = None) -> None:
    """A source that brings a kind of target (topics, buses) makes it deliverable, its
    names checked by `check`; `fifo` delivers to its FIFO ones (names ending in `.fifo`)."""
    _DELIVERERS[kind] = deliverer
    if check is not None:
        _NAME_CHECKS[kind] = check
    if fifo is not None:
        _FIFO_DELIVERERS[kind] = fifo


@dataclass(frozen=True)
class Target:
    kind: TargetKind
    name: str

    @classmethod
    def parse(cls, what: str, value: Any, kinds: Collection[TargetKind] = (TargetKind.FUNCTION, TargetKind.QUEUE)
              ) -> Target:
        """`KIND:NAME` as `what` (a declaration, for the error) accepts it: ConfigError
        naming the bad part otherwise."""
        expected = " or ".join(f"'{kind}:NAME'" for kind in kinds)
        kind, _, name = value.partition(":") if isinstance(value, str) else ("", "", "")
        if kind not in TargetKind.__members__.values() or TargetKind(kind) not in kinds:
            raise ConfigError(f"{what}: invalid target {value!r}: expected {expected}")
        target_kind = TargetKind(kind)
        if target_kind is TargetKind.FUNCTION:
            return cls(target_kind, check_name("function", name, FUNCTION_NAME))
        if target_kind is TargetKind.QUEUE:
            return cls(target_kind, check_queue_name(name))
        if not name:
            raise ConfigError(f"{what}: invalid target {value!r}: the {kind}'s name is missing")
        check = _NAME_CHECKS.get(target_kind)
        return cls(target_kind, check(name) if check else name)

    def __str__(self) -> str:
        return f"{self.kind}:{self.name}"


def deliver(backend: Backend, target: Target, body: str, attributes: dict[str, Any] | None = None,
            group: str | None = None) -> None:
    """Send `body` (JSON text) to `target`, durably. A FIFO queue or topic takes it in
    message group `group`, deduplicated by content, as an EventBridge rule sends to one:
    its SqsParameters or SnsParameters carry a MessageGroupId and no deduplication id, so
    the queue or topic must have content-based deduplication (else ConfigError, and the
    delivery fails as SendMessage or Publish would)."""
    fifo = _FIFO_DELIVERERS.get(target.kind) if is_fifo(target.name) else None
    if fifo is not None:
        if group is None:
            raise ConfigError(f"{target} is FIFO: a message to it needs a message group id")
        fifo(backend, target.name, body, attributes, group)
        return
    if group is not None:
        raise ConfigError(f"{target}: a message group is only for a FIFO queue or topic")
    _DELIVERERS[target.kind](backend, target.name, body, attributes)
