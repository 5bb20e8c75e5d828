"""Trigger kinds as plugins: the registry, sources_for(app), App.trigger with a kind defined
here, trigger conflicts, and what the built-in sources provision and hand a node."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass, replace
from types import SimpleNamespace
from typing import Any, ClassVar

import pytest

import squall.sources
from squall.app import App
from squall.core.checks import FUNCTION_NAME, check_name
from squall.core.health import Gate
from squall.core.lifecycle import PeriodicService, Progress, Service
from squall.core.pipeline import InvokeRequest
from squall.dispatch.consumer import QueueConsumer
from squall.dispatch.watcher import QueueWatcher
from squall.errors import ConfigError
from squall.sources import Source, Trigger, register, source_for, sources_for
from squall.sources.async_invoke import AsyncInvokeSource
from squall.sources.http import HttpRoute, HttpSource
from squall.sources.queues import QueueSource, QueueTrigger
from tests.unit.support import invocation


@pytest.fixture(autouse=True)
def registry(monkeypatch):
    """Kinds registered by a test are forgotten after it."""
    monkeypatch.setattr(squall.sources, "_REGISTRY", dict(squall.sources._REGISTRY))


# ---- a trigger kind defined only here -------------------------------------------------


@dataclass(frozen=True, kw_only=True)
class Topic(Trigger):
    kind: ClassVar[str] = "unit-topic"

    topic: str

    def __post_init__(self) -> None:
        check_name("topic", self.topic, FUNCTION_NAME)

    def conflict(self, other: Trigger) -> str | None:
        if isinstance(other, Topic) and other.topic == self.topic and other.function != self.function:
            return f"topic {self.topic!r} already feeds {other.function}"
        return None

    def describe(self) -> str:
        return f"topic {self.topic} -> {self.function}"


class Subscriber(PeriodicService):
    def __init__(self, node: Any, trigger: Topic) -> None:
        super().__init__()
        self.node, self.trigger = node, trigger
        self.name = f"topic:{trigger.topic}"

    async def step(self) -> Progress:
        result = await self.node.invoke(InvokeRequest(self.trigger.function, {"topic": self.trigger.topic},
                                                      self.trigger.kind, self.trigger.topic))
        return Progress(1, int(result.ok), int(not result.ok))


class TopicSource(Source[Topic]):
    kind = "unit-topic"
    trigger = Topic

    def provision(self, backend) -> None:
        for t in self.triggers:
            backend.table_put("topics", t.topic, {"function": t.function})

    def services(self, node) -> list[Service]:
        return [Subscriber(node, t) for t in self.triggers]


class FakeNode:
    """What a source may use of a node (`NodeContext`), without a node."""

    def __init__(self, app: App, backend: Any, async_retry_base: float = 1.0) -> None:
        self.app, self.backend = app, backend
        self.settings = SimpleNamespace(async_retry_base=async_retry_base)
        self.requests: list[InvokeRequest] = []
        self._shared: dict[type, Service] = {}
        self.runtime_ready = Gate()

    async def invoke(self, request: InvokeRequest):
        self.requests.append(request)
        return invocation(request_id=request.request_id, function=request.function, trigger=request.trigger)

    def shared(self, kind: type, factory: Callable[[], Service]) -> Any:
        if kind not in self._shared:
            self._shared[kind] = factory()
        return self._shared[kind]


def handler(event, ctx):
    return event


# ---- the registry ---------------------------------------------------------------------


def test_the_built_in_kinds_are_registered_first_in_order():
    assert list(squall.sources._REGISTRY.items())[:3] == [("http", HttpSource), ("queue", QueueSource),
                                                          ("async", AsyncInvokeSource)]


def test_registering_the_same_class_again_is_harmless():
    assert register(HttpSource) is HttpSource
    assert register(TopicSource) is TopicSource
    assert register(TopicSource) is TopicSource
    assert squall.sources._REGISTRY["unit-topic"] is TopicSource


def test_register_rejects_another_class_under_a_taken_kind():
    class OtherHttp(Source[HttpRoute]):
        kind = "http"
        trigger = HttpRoute

        def services(self, node):
            return []

    with pytest.raises(ConfigError, match="trigger kind 'http' is already served by HttpSource"):
        register(OtherHttp)
    assert squall.sources._REGISTRY["http"] is HttpSource


def test_register_rejects_a_trigger_of_another_kind():
    class Mismatched(Source[HttpRoute]):
        kind = "webhook"
        trigger = HttpRoute

        def services(self, node):
            return []

    with pytest.raises(ConfigError, match="serves kind 'webhook' but its trigger HttpRoute is of kind 'http'"):
        register(Mismatched)
    assert "webhook" not in squall.sources._REGISTRY


def test_register_works_as_a_class_decorator():
    @register
    class Implicit(Source[Trigger]):
        kind = "unit-implicit"
        trigger = None

        def services(self, node):
            return []

    assert squall.sources._REGISTRY["unit-implicit"] is Implicit
    assert any(isinstance(s, Implicit) for s in sources_for(App("a")))


def test_source_for_the_built_in_triggers():
    assert source_for(HttpRoute(method="GET", path="/")) is HttpSource
    assert source_for(QueueTrigger(queue="q")) is QueueSource


def test_source_for_an_unregistered_trigger_class_is_a_config_error():
    with pytest.raises(ConfigError, match=r"no source is registered for Topic \(kind 'unit-topic'\)"):
        source_for(Topic(topic="t"))


def test_source_for_a_trigger_that_only_borrows_a_kind_is_a_config_error():
    @dataclass(frozen=True, kw_only=True)
    class FakeRoute(Trigger):
        kind: ClassVar[str] = "http"

    with pytest.raises(ConfigError, match="no source is registered for FakeRoute"):
        source_for(FakeRoute())


def test_source_for_the_kind_of_an_implicit_source_is_a_config_error():
    @dataclass(frozen=True, kw_only=True)
    class AsyncTrigger(Trigger):
        kind: ClassVar[str] = "async"

    with pytest.raises(ConfigError, match="no source is registered"):
        source_for(AsyncTrigger())


# ---- sources_for ----------------------------------------------------------------------


def test_sources_for_an_app_without_triggers_is_the_implicit_async_source():
    app = App("plain")
    app.function(handler)
    [source] = sources_for(app)
    assert isinstance(source, AsyncInvokeSource) and source.triggers == []
    assert source.describe() == []


def test_sources_for_gives_each_used_kind_its_triggers_in_registration_order():
    app = App("shop")
    app.on_queue("orders", handler, name="consume")
    app.http("GET", "/a", handler, name="a")
    app.http("POST", "/a", handler, name="a")
    http, queue, implicit = sources_for(app)
    assert isinstance(http, HttpSource) and [t.route_key for t in http.triggers] == ["GET /a", "POST /a"]
    assert isinstance(queue, QueueSource) and [t.queue for t in queue.triggers] == ["orders"]
    assert isinstance(implicit, AsyncInvokeSource)
    assert http.describe() == ["route GET     /a -> a", "route POST    /a -> a"]
    assert queue.describe() == ["queue orders -> consume (batch 10, dlq orders-dlq)"]
    assert queue.function(queue.triggers[0]) is app.functions["consume"]


# ---- App.trigger with a kind defined here ---------------------------------------------


def test_app_trigger_before_the_kind_is_registered_is_a_config_error():
    app = App("a")
    with pytest.raises(ConfigError, match="call squall.sources.register"):
        app.trigger(Topic(topic="t"), handler)
    assert app.functions == {} and app.triggers == []


def test_app_trigger_with_a_kind_defined_here(sqlite):
    register(TopicSource)
    app = App("pubsub")

    @app.trigger(Topic(topic="news"), timeout=5)
    def on_news(event, ctx):
        return event

    app.trigger(Topic(topic="sport"), handler, name="on_sport")

    assert app.triggers == [Topic(topic="news", function="on_news"), Topic(topic="sport", function="on_sport")]
    assert app.functions["on_news"].timeout == 5 and app.functions["on_news"].handler is on_news
    assert app.routes == [] and app.queue_triggers == []
    topic_source = next(s for s in sources_for(app) if isinstance(s, TopicSource))
    assert topic_source.describe() == ["topic news -> on_news", "topic sport -> on_sport"]

    topic_source.provision(sqlite)
    topic_source.provision(sqlite)  # idempotent
    assert [(i.key, i.value, i.version) for i in sqlite.table_scan("topics")] == [
        ("news", {"function": "on_news"}, 2), ("sport", {"function": "on_sport"}, 2)]

    node = FakeNode(app, sqlite)
    services = topic_source.services(node)
    assert [s.name for s in services] == ["topic:news", "topic:sport"]
    assert asyncio.run(services[0].step()) == Progress(1, 1, 0)
    [request] = node.requests
    assert (request.function, request.event, request.trigger, request.source) == (
        "on_news", {"topic": "news"}, "unit-topic", "news")


def test_a_trigger_of_a_kind_defined_here_is_checked_where_it_is_declared():
    register(TopicSource)
    with pytest.raises(ConfigError, match="invalid topic name 'no spaces'"):
        Topic(topic="no spaces")
    with pytest.raises(ConfigError, match="invalid topic name"):
        replace(Topic(topic="ok"), topic="not ok")  # replace() checks again


def test_a_conflict_of_a_kind_defined_here_names_the_reason():
    register(TopicSource)
    app = App("a")
    app.trigger(Topic(topic="t"), handler, name="first")
    with pytest.raises(ConfigError, match="topic 't' already feeds first"):
        app.trigger(Topic(topic="t"), handler, name="second")
    assert list(app.functions) == ["first"]


# ---- conflicts of the built-in kinds --------------------------------------------------


def test_a_route_declared_twice_is_a_config_error():
    app = App("a")
    app.http("GET", "/items/{id}", handler, name="one")
    with pytest.raises(ConfigError, match=r"route GET /items/\{id\} is declared twice"):
        app.http("get", "/items/{id}", handler, name="two")
    with pytest.raises(ConfigError, match="declared twice"):
        app.http("GET", "/items/{id}")  # as a decorator: fails where it is written
    app.http("POST", "/items/{id}", handler, name="two")  # another method is another route
    app.http("ANY", "/items/{id}", handler, name="three")
    assert [r.route_key for r in app.routes] == ["GET /items/{id}", "POST /items/{id}", "ANY /items/{id}"]
    assert set(app.functions) == {"one", "two", "three"}


def test_two_consumers_of_one_queue_is_a_config_error():
    app = App("a")
    app.on_queue("orders", handler, name="one")
    with pytest.raises(ConfigError, match="queue 'orders' already has a consumer"):
        app.on_queue("orders", handler, name="two", batch_size=1)
    app.on_queue("orders-dlq", handler, name="two")  # its dead-letter queue may have one
    assert [t.queue for t in app.queue_triggers] == ["orders", "orders-dlq"]


def test_triggers_of_different_kinds_do_not_conflict():
    assert HttpRoute(method="GET", path="/q").conflict(QueueTrigger(queue="q")) is None
    assert QueueTrigger(queue="q").conflict(HttpRoute(method="GET", path="/q")) is None
    assert Topic(topic="q").conflict(QueueTrigger(queue="q")) is None


# ---- the built-in sources on a node ---------------------------------------------------


def test_queue_source_provisions_the_queue_and_its_dlq(sqlite):
    app = App("a")
    app.on_queue("orders", handler, name="consume", max_receive_count=3, visibility_timeout=12)
    [source] = [s for s in sources_for(app) if isinstance(s, QueueSource)]
    source.provision(sqlite)
    source.provision(sqlite)
    config = sqlite.queue_config("orders")
    assert (config.dlq, config.function, config.max_receive_count, config.visibility_timeout) == (
        "orders-dlq", "consume", 3, 12)
    assert sqlite.queue_config("orders-dlq").dlq_of == "orders"
    assert sqlite.queue_names() == ["orders", "orders-dlq"]


def test_queue_source_consumers_share_one_watcher_with_the_async_source(sqlite):
    app = App("a")
    app.on_queue("orders", handler, name="consume", batch_size=5, max_concurrency=4, reserved_concurrency=2)
    app.on_queue("audit", handler, name="audit", max_concurrency=3)
    app.function(handler, name="throttled", reserved_concurrency=0)
    node = FakeNode(app, sqlite, async_retry_base=0.5)
    queue_source, async_source = sources_for(app)
    consumers = queue_source.services(node)
    internal = async_source.services(node)
    assert all(isinstance(c, QueueConsumer) for c in consumers + internal)
    [watcher] = node._shared.values()
    assert isinstance(watcher, QueueWatcher) and all(c.watcher is watcher for c in consumers + internal)

    orders, audit = (c.config for c in consumers)
    assert (orders.queue, orders.function, orders.batch_size, orders.concurrency, orders.dlq) == (
        "orders", "consume", 5, 2, "orders-dlq")  # reserved concurrency caps max_concurrency
    assert orders.retry_base == orders.visibility_timeout == 30
    assert audit.concurrency == 3
    assert [c.delivery.trigger for c in consumers] == ["queue", "queue"]

    by_function = {c.config.function: c.config for c in internal}
    assert set(by_function) == {"consume", "audit", "throttled"}
    consume = by_function["consume"]
    assert (consume.queue, consume.dlq, consume.batch_size, consume.max_receive_count) == (
        "async.consume", "async.consume-dlq", 1, 3)
    assert consume.visibility_timeout == 3 + 30  # longer than the function's timeout
    assert consume.retry_base == 0.5
    assert (consume.concurrency, by_function["audit"].concurrency, by_function["throttled"].concurrency) == (2, 8, 0)
    assert {c.delivery.trigger for c in internal} == {"async"}


def test_consumers_of_function_invocations_read_ahead_and_deliveries_do_not(sqlite):
    """Each consumer that invokes a function out of a queue may hold claimed batches for
    the visibility timeout less the function's timeout (at most 10 s); rule targets that
    only deliver to a queue never do."""
    app = App("a")
    app.on_queue("orders", handler, name="consume", timeout=3, visibility_timeout=8)
    app.on_topic("news", handler, name="reader", timeout=3)
    app.on_event({"source": ["shop"]}, handler, name="watcher", timeout=3)
    app.rule("to-queue", pattern={"source": ["shop"]}, targets=[{"queue": "orders"}])
    node = FakeNode(app, sqlite)
    configs = {c.config.queue: c.config for source in sources_for(app) for c in source.services(node)
               if isinstance(c, QueueConsumer)}
    read_ahead = {queue: config.read_ahead for queue, config in configs.items()}
    assert read_ahead == {"orders": 5,  # 8 s of visibility less the 3 s timeout
                          "topic.news.reader": 10, "rule/default/watcher/0": 10,  # 3 + 30 s less 3, capped
                          "rule/default/to-queue/0": 0,
                          **{f"async.{name}": 10 for name in ("consume", "reader", "watcher")}}


def test_async_source_provisions_internal_queues(sqlite):
    app = App("a")
    app.function(handler, name="worker", timeout=10)
    [source] = sources_for(app)
    source.provision(sqlite)
    config = sqlite.queue_config("async.worker")
    assert (config.internal, config.dlq, config.max_receive_count, config.visibility_timeout) == (
        True, "async.worker-dlq", 3, 40)
    dlq = sqlite.queue_config("async.worker-dlq")
    assert dlq.internal and dlq.dlq_of == "async.worker"


def test_http_source_has_no_services(sqlite):
    app = App("a")
    app.http("GET", "/", handler)
    http = sources_for(app)[0]
    assert isinstance(http, HttpSource) and http.services(FakeNode(app, sqlite)) == []


@pytest.mark.parametrize("make, complaint", [
    (lambda: HttpRoute(method="FETCH", path="/"), "invalid HTTP method 'FETCH'"),
    (lambda: HttpRoute(method="GET", path="items"), "invalid route path 'items'"),
    (lambda: HttpRoute(method="GET", path="/a//b"), "invalid route path"),
    (lambda: QueueTrigger(queue="bad name"), "invalid queue name 'bad name'"),
    (lambda: QueueTrigger(queue="q", dlq="q"), "cannot be its own dead-letter queue"),
    (lambda: QueueTrigger(queue="q", batch_size=0), "invalid batch_size for queue 'q' 0"),
    (lambda: QueueTrigger(queue="q", batch_size=10001), "batch_size"),
    (lambda: QueueTrigger(queue="q", max_receive_count=0), "max_receive_count"),
    (lambda: QueueTrigger(queue="q", visibility_timeout=-1), "visibility_timeout"),
    (lambda: QueueTrigger(queue="q", visibility_timeout=43201), "visibility_timeout"),
    (lambda: QueueTrigger(queue="q", max_concurrency=0), "max_concurrency"),
])
def test_invalid_built_in_triggers(make, complaint):
    with pytest.raises(ConfigError, match=complaint):
        make()


def test_built_in_trigger_normalisation():
    assert HttpRoute(method="patch", path="/x/{proxy+}").route_key == "PATCH /x/{proxy+}"
    assert QueueTrigger(queue="q").dlq == "q-dlq"
    assert QueueTrigger(queue="q", dlq="elsewhere").dlq == "elsewhere"
    assert QueueTrigger(queue="q.fifo").dlq == "q-dlq.fifo"  # a FIFO queue's DLQ is FIFO
