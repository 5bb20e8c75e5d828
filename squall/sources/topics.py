"""Topics (SNS): pub/sub fan-out to functions and queues, with filter policies.

A topic exists by its subscriptions: `app.on_topic(topic, ...)` subscribes a function,
`app.subscribe_queue(topic, queue, ...)` a queue; both declare a `TopicSubscription`.
A publish (`squall.sources.publishing`) writes one message per matching subscription in
one backend commit (`Queues.fan_out`):

- into a queue subscription's queue, the SNS envelope (or, with raw message delivery, the
  message itself with its attributes as SQS message attributes), as SNS writes into SQS;
- into a function subscription's own internal queue, `topic.<topic>.<function>`, the SNS
  event the function receives. `TopicSource` consumes it as Lambda runs an asynchronous
  invocation (SNS invokes Lambda asynchronously): one event per invocation, retried twice
  with backoff, then moved to the subscription's dead-letter queue (`dlq=`, as SNS's
  redrive policy; by default an internal `topic.<topic>.<function>-dlq`). Every
  subscription has its queue and its consumer, so a slow or failing one delays no other.

A FIFO topic (`.fifo`) delivers to SQS queues only, as SNS does: FIFO queues, which get
each message in its group with its deduplication id and keep each group's order, and
standard ones (best-effort order, at least once). `app.topic(name, ...)` declares a
topic's own attributes (`TopicAttributes`: ContentBasedDeduplication); a topic needs no
declaration otherwise.

Every node writes the app's topics to the backend table `squall.topics` when it starts
(`TopicRecord`), so publishers without the app (the CLI, alarm and rule targets) know
the subscriptions; a function's `ctx.publish` reads them from its own app.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from functools import cached_property
from typing import TYPE_CHECKING, Any, ClassVar

from squall.backends import Backend, QueueConfig
from squall.backends.protocol import Tables
from squall.core.checks import check_queue_name
from squall.core.lifecycle import Service
from squall.core.pipeline import InvokeRequest
from squall.dispatch.consumer import ConsumerConfig, Delivery, QueueConsumer, read_ahead, single_failure
from squall.dispatch.targets import TargetKind
from squall.dispatch.targets import register as register_target
from squall.dispatch.watcher import QueueWatcher
from squall.errors import ConfigError, NotFound
from squall.events.sns import subscription_arn, topic_arn
from squall.observability.spans import FaasTrigger, SpanKind, SpanShape
from squall.routing import FilterPolicy, FilterScope, filter_policy
from squall.routing.policies import filter_scope
from squall.runtime.invocation import Invocation
from squall.sources.async_invoke import attempts, failure_attributes, invocation_concurrency, invocation_visibility
from squall.sources.base import NodeContext, Source, Trigger

if TYPE_CHECKING:
    from squall.app import App

#: SNS's topic names: 1 to 256 letters, digits, '-' and '_', a FIFO topic's ending in '.fifo'
TOPIC_NAME = re.compile(r"[A-Za-z0-9_-]{1,256}")
FIFO_SUFFIX = ".fifo"
#: the backend table of declared topics (`TopicRecord`, by topic name)
TOPICS_TABLE = "squall.topics"


class TopicNotFound(NotFound):
    """Publish to a topic no subscription declares (SNS: NotFound, "Topic does not exist")."""


def check_topic_name(name: Any) -> str:
    """A topic name as SNS allows it; ConfigError naming it otherwise."""
    fifo = isinstance(name, str) and name.endswith(FIFO_SUFFIX)
    base = name[:-len(FIFO_SUFFIX)] if fifo else name
    limit = 256 - len(FIFO_SUFFIX) if fifo else 256
    if not isinstance(base, str) or not TOPIC_NAME.fullmatch(base) or len(base) > limit:
        raise ConfigError(f"invalid topic name {name!r}: 1 to 256 letters, digits, '-' or '_' (a FIFO topic's "
                          f"ending in '.fifo')")
    return str(name)


def is_fifo(topic: str) -> bool:
    return topic.endswith(FIFO_SUFFIX)


def delivery_queue(topic: str, function: str) -> str:
    """The internal queue holding a function subscription's deliveries."""
    return f"topic.{topic}.{function}"


@dataclass(frozen=True)
class Subscription:
    """One subscription as a publisher needs it: where its messages go and which ones."""

    topic: str
    #: `function:NAME` or `queue:NAME`
    endpoint: str
    #: the queue a publish writes into (the function's delivery queue, or the queue)
    queue: str
    #: the policy as canonical JSON ("" for none) and its scope
    policy: str = ""
    scope: FilterScope = FilterScope.MESSAGE_ATTRIBUTES
    raw: bool = False

    @cached_property
    def arn(self) -> str:
        return subscription_arn(self.topic, self.endpoint)

    @property
    def to_function(self) -> bool:
        return self.endpoint.startswith("function:")

    @cached_property
    def compiled(self) -> FilterPolicy | None:
        return _compiled(self.policy, self.scope) if self.policy else None

    def to_json(self) -> dict[str, Any]:
        return {"endpoint": self.endpoint, "queue": self.queue, "policy": self.policy, "scope": str(self.scope),
                "raw": self.raw}

    @classmethod
    def of(cls, topic: str, data: dict[str, Any]) -> Subscription:
        return cls(topic, data["endpoint"], data["queue"], data["policy"], FilterScope(data["scope"]), data["raw"])


_POLICIES: dict[tuple[str, FilterScope], FilterPolicy] = {}


def _compiled(policy: str, scope: FilterScope) -> FilterPolicy:
    """Each policy compiled once per process (a publisher matches it at every publish)."""
    key = (policy, scope)
    if key not in _POLICIES:
        _POLICIES[key] = filter_policy(policy, scope)
    return _POLICIES[key]


@dataclass(frozen=True, kw_only=True)
class TopicSubscription(Trigger):
    """A subscription to `topic`: of the function (`app.on_topic`), or of `queue`
    (`app.subscribe_queue`, and then `function` stays empty).

    `filter_policy` is an SNS filter policy (a dict or its JSON; kept as canonical JSON)
    matched against the message attributes or, with `filter_policy_scope="MessageBody"`,
    the message parsed as JSON. `raw_message_delivery` (queues only) delivers the message
    itself instead of the SNS envelope. `dlq` (functions only) keeps the deliveries that
    failed every attempt.
    """

    kind: ClassVar[str] = "topic"

    topic: str
    queue: str = ""
    filter_policy: str = ""
    filter_policy_scope: str = FilterScope.MESSAGE_ATTRIBUTES
    raw_message_delivery: bool = False
    dlq: str = ""

    def __post_init__(self) -> None:
        check_topic_name(self.topic)
        what = f"subscription to topic {self.topic!r}"
        scope = filter_scope(self.filter_policy_scope)
        object.__setattr__(self, "filter_policy_scope", str(scope))
        if self.filter_policy not in ("", None):
            policy = self.filter_policy
            object.__setattr__(self, "filter_policy", _compiled(policy, scope).pattern.source
                               if isinstance(policy, str) else filter_policy(policy, scope).pattern.source)
        else:
            object.__setattr__(self, "filter_policy", "")
        if not isinstance(self.raw_message_delivery, bool):
            raise ConfigError(f"{what}: raw_message_delivery must be True or False, not {self.raw_message_delivery!r}")
        if self.queue:
            check_queue_name(self.queue)
            if self.dlq:
                raise ConfigError(f"{what}: dlq= is for function subscriptions: a queue subscription's messages are "
                                  f"written with the publish, and its queue's own DLQ keeps what its consumer fails")
            if self.queue.endswith(FIFO_SUFFIX) and not is_fifo(self.topic):
                raise ConfigError(f"{what}: FIFO queue {self.queue!r} can only subscribe to a FIFO topic, as on SNS")
            return
        if self.raw_message_delivery:
            raise ConfigError(f"{what}: raw_message_delivery is for queue subscriptions (a function receives the "
                              f"SNS event)")
        if is_fifo(self.topic):
            raise ConfigError(f"{what}: FIFO topics deliver to SQS queues only, not to functions, as on SNS; "
                              f"subscribe a FIFO queue (app.subscribe_queue) and consume it")
        if self.dlq:
            check_queue_name(self.dlq)

    @property
    def endpoint(self) -> str:
        return f"queue:{self.queue}" if self.queue else f"function:{self.function}"

    @property
    def target_queue(self) -> str:
        return self.queue or delivery_queue(self.topic, self.function)

    @property
    def dead_letters(self) -> str:
        """The dead-letter queue of a function subscription."""
        return self.dlq or f"{self.target_queue}-dlq"

    def subscription(self) -> Subscription:
        return Subscription(self.topic, self.endpoint, self.target_queue, self.filter_policy,
                            FilterScope(self.filter_policy_scope), self.raw_message_delivery)

    def conflict(self, other: Trigger) -> str | None:
        if isinstance(other, TopicSubscription) and self.queue and (other.topic, other.queue) == (self.topic,
                                                                                                  self.queue):
            return f"queue {self.queue!r} is already subscribed to topic {self.topic!r}"
        return None

    def describe(self) -> str:
        policy = f", filter policy on {self.filter_policy_scope}" if self.filter_policy else ""
        raw = ", raw" if self.raw_message_delivery else ""
        dlq = "" if self.queue else f", dlq {self.dead_letters}"
        return f"topic {self.topic} -> {self.endpoint}{policy}{raw}{dlq}"


@dataclass(frozen=True, kw_only=True)
class TopicAttributes(Trigger):
    """A topic's own attributes (`app.topic`). `content_based_deduplication` is SNS's
    ContentBasedDeduplication, for FIFO topics only: a publish without `dedup_id` is
    deduplicated by the SHA-256 of its message."""

    kind: ClassVar[str] = "topic-attributes"

    topic: str
    content_based_deduplication: bool = False

    def __post_init__(self) -> None:
        check_topic_name(self.topic)
        if not isinstance(self.content_based_deduplication, bool):
            raise ConfigError(f"topic {self.topic!r}: content_based_deduplication must be True or False, not "
                              f"{self.content_based_deduplication!r}")
        if self.content_based_deduplication and not is_fifo(self.topic):
            raise ConfigError(f"topic {self.topic!r}: content_based_deduplication is only for FIFO topics (names "
                              f"ending in '.fifo'), as on SNS")

    def conflict(self, other: Trigger) -> str | None:
        if isinstance(other, TopicAttributes) and other.topic == self.topic:
            return f"topic {self.topic!r} is declared twice"
        return None

    def describe(self) -> str:
        return f"topic {self.topic}" + (", content-based deduplication" if self.content_based_deduplication else "")


@dataclass(frozen=True)
class TopicRecord:
    """A topic as the backend's `squall.topics` table keeps it."""

    name: str
    subscriptions: tuple[Subscription, ...]
    content_based_deduplication: bool = False

    @property
    def fifo(self) -> bool:
        return is_fifo(self.name)

    def to_json(self) -> dict[str, Any]:
        return {"subscriptions": [s.to_json() for s in self.subscriptions],
                "content_based_deduplication": self.content_based_deduplication}

    @classmethod
    def of(cls, name: str, data: dict[str, Any]) -> TopicRecord:
        return cls(name, tuple(Subscription.of(name, s) for s in data["subscriptions"]),
                   data.get("content_based_deduplication", False))  # records written before FIFO topics lack it


def declared_topics(app: App) -> dict[str, TopicRecord]:
    """The app's topics, by name, with their subscriptions in declaration order."""
    subscriptions: dict[str, list[Subscription]] = {}
    content_dedup: set[str] = set()
    for trigger in app.triggers:
        if isinstance(trigger, TopicSubscription):
            subscriptions.setdefault(trigger.topic, []).append(trigger.subscription())
        elif isinstance(trigger, TopicAttributes):
            subscriptions.setdefault(trigger.topic, [])
            if trigger.content_based_deduplication:
                content_dedup.add(trigger.topic)
    return {name: TopicRecord(name, tuple(subs), name in content_dedup) for name, subs in subscriptions.items()}


def store_topics(app: App, backend: Tables) -> None:
    """Write the app's topics to `squall.topics` (every node, at every start)."""
    for name, record in declared_topics(app).items():
        backend.table_put(TOPICS_TABLE, name, record.to_json())


#: per app (by id, the app kept alive with them), its topics and how many triggers it had
_APP_TOPICS: dict[int, tuple[App, int, dict[str, TopicRecord]]] = {}


def app_topic(app: App, topic: str) -> TopicRecord:
    """The topic as the app declares it; TopicNotFound if no subscription names it. The
    records are built once per app (again if it declared more since), not per publish."""
    cached = _APP_TOPICS.get(id(app))
    if cached is None or cached[1] != len(app.triggers):
        cached = _APP_TOPICS[id(app)] = (app, len(app.triggers), declared_topics(app))
    found = cached[2].get(check_topic_name(topic))
    if found is None:
        raise TopicNotFound(f"topic {topic!r} does not exist: no subscription declares it "
                            f"(topics: {', '.join(sorted(cached[2])) or 'none'})")
    return found


def stored_topics(backend: Tables) -> dict[str, TopicRecord]:
    """Every topic the nodes sharing the backend declared."""
    topics: dict[str, TopicRecord] = {}
    start: str | None = None
    while True:
        items = backend.table_scan(TOPICS_TABLE, start_after=start)
        topics.update((item.key, TopicRecord.of(item.key, item.value)) for item in items)
        if len(items) < 1000:
            return topics
        start = items[-1].key


def stored_topic(backend: Tables, topic: str) -> TopicRecord:
    """The topic as the nodes declared it; TopicNotFound if none did."""
    item = backend.table_get(TOPICS_TABLE, check_topic_name(topic))
    if item is None:
        known = ", ".join(sorted(stored_topics(backend))) or "none"
        raise TopicNotFound(f"topic {topic!r} does not exist (topics: {known})")
    return TopicRecord.of(topic, item.value)


#: one SNS event per message, retried as an asynchronous invocation; each attempt has the
#: message's id as request id, as Lambda retries an event under one request id
SNS = Delivery("topic", lambda messages: json.loads(messages[0].body), single_failure, failure_attributes,
               request_id=lambda messages: messages[0].id)


class TopicSource(Source[TopicSubscription]):
    kind = "topic"
    trigger = TopicSubscription

    def provision(self, backend: Backend) -> None:
        for t in self.triggers:
            if t.queue:
                if backend.queue_config(t.queue) is None:  # declared by its consumer, if it has one
                    backend.queue_declare(t.queue, QueueConfig())
                continue
            backend.queue_declare(t.target_queue, QueueConfig(
                dlq=t.dead_letters, function=t.function, max_receive_count=attempts(self.function(t)),
                visibility_timeout=invocation_visibility(self.function(t).timeout), internal=True))
            backend.queue_declare(t.dead_letters, QueueConfig(dlq_of=t.target_queue, internal=not t.dlq))
        store_topics(self.app, backend)

    def services(self, node: NodeContext) -> list[Service]:
        watcher = node.shared(QueueWatcher, lambda: QueueWatcher(node.backend))
        consumers: list[Service] = []
        for t in self.triggers:
            if t.queue:
                continue
            function = self.function(t)
            visibility = invocation_visibility(function.timeout)
            config = ConsumerConfig(t.target_queue, t.function, batch_size=1, max_receive_count=attempts(function),
                                    visibility_timeout=visibility, dlq=t.dead_letters,
                                    concurrency=invocation_concurrency(function.reserved_concurrency),
                                    retry_base=node.settings.async_retry_base,
                                    read_ahead=read_ahead(visibility, function.timeout))
            consumers.append(QueueConsumer(node.backend, node.invoke, config, SNS, watcher, node.runtime_ready))
        return consumers

    def span(self, request: InvokeRequest, invocation: Invocation) -> SpanShape:
        """A CONSUMER span by the messaging conventions, `process {topic}`, in the
        publisher's trace."""
        records = request.event.get("Records") if isinstance(request.event, dict) else None
        record = records[0].get("Sns", {}) if isinstance(records, list) and records else {}
        topic = str(record.get("TopicArn", "")).rpartition(":")[2]
        attributes: dict[str, Any] = {"messaging.system": "aws.sns", "messaging.operation.type": "process",
                                      "messaging.operation.name": "process", "messaging.destination.name": topic,
                                      "aws.sns.topic.arn": topic_arn(topic),
                                      "messaging.message.id": record.get("MessageId", "")}
        return SpanShape(f"process {topic}", SpanKind.CONSUMER, FaasTrigger.PUBSUB, attributes)


def _to_topic(backend: Backend, name: str, body: str, attributes: dict[str, Any] | None) -> None:
    """A `topic:NAME` target (an alarm's, a rule's, a destination's): `body` published."""
    from squall.sources.publishing import Publisher

    Publisher(backend).publish(stored_topic(backend, name), body, system=attributes)


def _to_fifo_topic(backend: Backend, name: str, body: str, attributes: dict[str, Any] | None, group: str) -> None:
    """A rule's FIFO topic target: `body` published in message group `group`, deduplicated
    by content (SnsParameters carry a MessageGroupId; the topic deduplicates by content)."""
    from squall.sources.publishing import Publisher

    topic = stored_topic(backend, name)
    if not topic.content_based_deduplication:
        raise ConfigError(f"FIFO topic {name!r} needs content_based_deduplication=True to take events: "
                          f"they are published without a deduplication id")
    Publisher(backend).publish(topic, body, group_id=group, system=attributes)


register_target(TargetKind.TOPIC, _to_topic, check_topic_name, fifo=_to_fifo_topic)


class TopicAttributesSource(Source[TopicAttributes]):
    """Topics declared with `app.topic`: their records, nothing to run."""

    kind = "topic-attributes"
    trigger = TopicAttributes

    def provision(self, backend: Backend) -> None:
        store_topics(self.app, backend)

    def services(self, node: NodeContext) -> list[Service]:
        return []
