"""QueueConsumer and its pure parts: Lambda's batchItemFailures rules, the backoff, settling
(ack / release / dead-letter), one step(), and the pump on a real loop."""

from __future__ import annotations

import asyncio
import json
import logging

import pytest

from squall.backends import QueueConfig
from squall.backends.fifo import FifoEntry
from squall.core.lifecycle import Progress
from squall.core.pipeline import InvokeRequest
from squall.dispatch import consumer as consumer_module
from squall.dispatch.consumer import (
    MAX_BACKOFF,
    ConsumerConfig,
    QueueConsumer,
    Settlement,
    batch_failures,
    retry_delay,
    single_failure,
)
from squall.errors import BackendUnavailable, FunctionError, FunctionTimeout
from squall.events.sqs import sqs_event
from squall.runtime.invocation import Invocation
from squall.sources.async_invoke import ASYNC
from squall.sources.queues import SQS
from tests.unit.support import CountingBackend, invocation, message, until

MESSAGES = [message("a"), message("b"), message("c")]
ALL = {"a", "b", "c"}


def failures(*ids: object) -> dict[str, object]:
    return {"batchItemFailures": [{"itemIdentifier": i} for i in ids]}


# ---- batch_failures -------------------------------------------------------------------


@pytest.mark.parametrize("result, error, expected", [
    # a failed invocation fails the whole batch, whatever it returned
    (None, FunctionError("boom"), ALL),
    (failures("a"), FunctionTimeout("slow", "Sandbox.Timedout"), ALL),
    # no batchItemFailures key: everything succeeded
    (None, None, set()),
    ({}, None, set()),
    ({"statusCode": 200, "body": "ok"}, None, set()),
    # an empty list: everything succeeded
    ({"batchItemFailures": []}, None, set()),
    # the named ones failed
    (failures("b"), None, {"b"}),
    (failures("a", "c"), None, {"a", "c"}),
    (failures("b", "b"), None, {"b"}),
    (failures("a", "b", "c"), None, ALL),
    # an id that is not in the batch fails the whole batch, even beside good ones
    (failures("zzz"), None, ALL),
    (failures("a", "zzz"), None, ALL),
    # malformed items: null or empty identifier, a bad key name, not an object
    (failures(None), None, ALL),
    (failures(""), None, ALL),
    ({"batchItemFailures": [{"id": "a"}]}, None, ALL),
    ({"batchItemFailures": [{"ItemIdentifier": "a"}]}, None, ALL),
    ({"batchItemFailures": [{}]}, None, ALL),
    ({"batchItemFailures": ["a"]}, None, ALL),
    ({"batchItemFailures": [["a"]]}, None, ALL),
    # a malformed list
    ({"batchItemFailures": "a"}, None, ALL),
    ({"batchItemFailures": {"itemIdentifier": "a"}}, None, ALL),
    ({"batchItemFailures": 3}, None, ALL),
    # a result that is not an object: the batch succeeded (as the docstring says)
    ("ok", None, set()),
    (["a"], None, set()),
    (7, None, set()),
    (True, None, set()),
])
def test_batch_failures(result, error, expected):
    assert batch_failures(invocation(result, error), MESSAGES) == expected


def test_batch_failures_of_a_single_message_batch():
    assert batch_failures(invocation(failures("a")), [message("a")]) == {"a"}
    assert batch_failures(invocation(failures("b")), [message("a")]) == {"a"}


def test_null_batch_item_failures_list_is_success():
    assert batch_failures(invocation({"batchItemFailures": None}), MESSAGES) == set()


@pytest.mark.parametrize("identifier", [["a"], {"id": "a"}])
def test_unhashable_item_identifier_fails_the_whole_batch(identifier):
    assert batch_failures(invocation(failures(identifier)), MESSAGES) == ALL


@pytest.mark.parametrize("error, expected", [(None, set()), (FunctionError("boom"), {"a"})])
def test_single_failure(error, expected):
    assert single_failure(invocation({"batchItemFailures": [{"itemIdentifier": "zzz"}]}, error),
                          [message("a")]) == expected


# ---- retry_delay ----------------------------------------------------------------------


class _Jitter:
    """Stands for the random module in the consumer: uniform(a, b) returns a or b."""

    def __init__(self, high: bool) -> None:
        self.high = high

    def uniform(self, low: float, high: float) -> float:
        return high if self.high else low


@pytest.mark.parametrize("base, receive_count, expected", [
    (30, 0, 30),  # never received (as if): the base
    (30, 1, 30),
    (30, 2, 60),
    (30, 3, 120),
    (30, 5, 480),
    (30, 6, 900),  # 960, capped
    (30, 1000, 900),
    (1, 1, 1),
    (1, 2, 2),
    (1, 10, 512),
    (1, 11, 900),
    (0.5, 3, 2),
    (0, 4, 0),
    (2000, 1, 900),
])
def test_retry_delay_doubles_per_receive_and_is_capped(monkeypatch, base, receive_count, expected):
    monkeypatch.setattr(consumer_module, "random", _Jitter(high=False))
    assert retry_delay(base, receive_count) == expected
    monkeypatch.setattr(consumer_module, "random", _Jitter(high=True))
    assert retry_delay(base, receive_count) == pytest.approx(expected * 1.25)


def test_retry_delay_jitter_stays_within_a_quarter():
    assert MAX_BACKOFF == 900
    for receive_count in (0, 1, 2, 3, 7, 12):
        low = min(10 * 2 ** max(0, receive_count - 1), MAX_BACKOFF)
        delays = [retry_delay(10, receive_count) for _ in range(200)]
        assert all(low <= d <= 1.25 * low for d in delays)
        assert len(set(delays)) > 1  # jittered, not constant


# ---- settle ---------------------------------------------------------------------------


def config(**overrides) -> ConsumerConfig:
    values = dict(queue="q", function="f", batch_size=10, max_receive_count=3, visibility_timeout=30, dlq="q-dlq",
                  concurrency=2, retry_base=10)
    values.update(overrides)
    return ConsumerConfig(**values)  # type: ignore[arg-type]


async def no_invoke(request: InvokeRequest) -> Invocation:
    raise AssertionError("not invoked in this test")


def declare(backend, queue: str = "q", dlq: str = "q-dlq") -> None:
    backend.queue_declare(queue, QueueConfig(dlq=dlq, function="f", max_receive_count=3, visibility_timeout=30))
    backend.queue_declare(dlq, QueueConfig(dlq_of=queue))


@pytest.fixture
def no_jitter(monkeypatch):
    monkeypatch.setattr(consumer_module, "random", _Jitter(high=False))


def test_settle_acks_the_successes_in_one_call_and_releases_failures_with_backoff(sqlite, clock, no_jitter):
    declare(sqlite)
    for body in ("1", "2", "3", "4"):
        sqlite.enqueue("q", body)
    backend = CountingBackend(sqlite)
    consumer = QueueConsumer(backend, no_invoke, config(batch_size=2), SQS)  # type: ignore[arg-type]
    first, second = consumer.claim(), consumer.claim()
    assert [m.body for m in first + second] == ["1", "2", "3", "4"]
    backend.calls.clear()

    consumer.settle([Settlement(first, {first[1].id}), Settlement(second, set())])

    assert backend.calls == ["settle"]  # one call for both batches: the ack and the release
    stats = sqlite.queue_stats("q")
    assert (stats.visible, stats.in_flight, stats.delayed) == (0, 1, 0)
    clock.advance(10 - 0.001)  # retry_base * 2^0
    assert consumer.claim() == []
    clock.advance(0.001)
    [again] = consumer.claim()
    assert (again.id, again.body, again.receive_count) == (first[1].id, "2", 2)


def test_settle_backoff_doubles_with_the_receive_count(sqlite, clock, no_jitter):
    declare(sqlite)
    sqlite.enqueue("q", "x")
    consumer = QueueConsumer(sqlite, no_invoke, config(max_receive_count=5), SQS)
    waited = []
    for receive in (1, 2, 3):
        [m] = consumer.claim()
        assert m.receive_count == receive
        consumer.settle([Settlement([m], {m.id})])
        start = clock.now
        while not sqlite.queue_stats("q").visible:
            clock.advance(1)
        waited.append(clock.now - start)
    assert waited == [10, 20, 40]


def test_settle_dead_letters_a_message_out_of_receives(sqlite, clock, no_jitter):
    declare(sqlite)
    sqlite.enqueue("q", "poison")
    sqlite.enqueue("q", "fine")
    backend = CountingBackend(sqlite)
    consumer = QueueConsumer(backend, no_invoke, config(max_receive_count=2), SQS)  # type: ignore[arg-type]
    batch = consumer.claim()
    consumer.settle([Settlement(batch, {m.id for m in batch})])  # both failed: receive 1 of 2, released
    clock.advance(10)
    batch = consumer.claim()
    assert [m.receive_count for m in batch] == [2, 2]
    backend.calls.clear()

    consumer.settle([Settlement(batch, {batch[0].id})])

    assert backend.calls == ["settle"]  # the ack and the dead letter
    assert sqlite.queue_stats("q").total == 0
    [dead] = sqlite.peek("q-dlq")
    assert (dead.id, dead.body) == (batch[0].id, "poison")


def test_settle_of_nothing_makes_no_call(sqlite):
    backend = CountingBackend(sqlite)
    QueueConsumer(backend, no_invoke, config(), SQS).settle([])  # type: ignore[arg-type]
    QueueConsumer(backend, no_invoke, config(), SQS).settle([Settlement([], set())])  # type: ignore[arg-type]
    assert backend.calls == []


def test_settle_with_every_message_failed_releases_them_in_one_call(sqlite, no_jitter):
    declare(sqlite)
    sqlite.enqueue("q", "1")
    sqlite.enqueue("q", "2")
    backend = CountingBackend(sqlite)
    consumer = QueueConsumer(backend, no_invoke, config(), SQS)  # type: ignore[arg-type]
    batch = consumer.claim()
    backend.calls.clear()
    consumer.settle([Settlement(batch, {m.id for m in batch})])
    assert backend.calls == ["settle"]
    assert sqlite.queue_stats("q").delayed + sqlite.queue_stats("q").in_flight == 2


# ---- step -----------------------------------------------------------------------------


class Recorder:
    """An invoke handler: records the requests, answers with `respond(request)`."""

    def __init__(self, respond=lambda request: None, gate: asyncio.Event | None = None,
                 pause=lambda request: 0.0) -> None:
        self.requests: list[InvokeRequest] = []
        self.respond = respond
        self.gate = gate
        self.pause = pause
        self.running = 0
        self.most = 0

    async def __call__(self, request: InvokeRequest) -> Invocation:
        self.requests.append(request)
        self.running += 1
        self.most = max(self.most, self.running)
        try:
            if self.gate is not None:
                await self.gate.wait()
            else:
                await asyncio.sleep(self.pause(request))
            answer = self.respond(request)
        finally:
            self.running -= 1
        if isinstance(answer, Invocation):
            return answer
        return invocation(answer, request_id=request.request_id, trigger=request.trigger)

    @property
    def bodies(self) -> list[list[str]]:
        return [[r["body"] for r in request.event["Records"]] for request in self.requests]


def fail_body(body: str):
    def respond(request: InvokeRequest):
        return failures(*(r["messageId"] for r in request.event["Records"] if r["body"] == body))

    return respond


def test_step_claims_one_batch_invokes_it_with_an_sqs_event_and_settles_it(sqlite, clock, no_jitter):
    declare(sqlite)
    for body in ("1", "2", "3"):
        sqlite.enqueue("q", body)
    invoke = Recorder(fail_body("2"))
    consumer = QueueConsumer(sqlite, invoke, config(batch_size=2), SQS)

    assert asyncio.run(consumer.step()) == Progress(1, 1, 1)
    [request] = invoke.requests
    assert (request.function, request.trigger, request.source) == ("f", "queue", "q")
    assert request.event.keys() == {"Records"}
    assert [r["body"] for r in request.event["Records"]] == ["1", "2"]
    assert request.event["Records"][0]["eventSource"] == "aws:sqs"

    assert asyncio.run(consumer.step()) == Progress(1, 1, 0)
    assert invoke.bodies[1] == ["3"]
    progress = asyncio.run(consumer.step())
    assert progress == Progress() and not progress  # "2" waits out its backoff
    stats = sqlite.queue_stats("q")
    assert (stats.visible, stats.in_flight) == (0, 1)

    clock.advance(10)
    invoke.respond = lambda request: None
    assert asyncio.run(consumer.step()) == Progress(1, 1, 0)
    assert invoke.bodies[2] == ["2"]
    assert invoke.requests[2].event["Records"][0]["attributes"]["ApproximateReceiveCount"] == "2"
    assert sqlite.queue_stats("q").total == 0


def test_step_event_is_sqs_event_of_the_claimed_messages(sqlite):
    declare(sqlite)
    sqlite.enqueue("q", "hello")
    seen = []

    async def invoke(request: InvokeRequest) -> Invocation:
        seen.append(request.event)
        return invocation()

    consumer = QueueConsumer(sqlite, invoke, config(), SQS)
    claimed = []
    original = consumer.claim

    def claim(batches: int = 1):
        claimed.extend(original(batches))
        return claimed

    consumer.claim = claim  # type: ignore[method-assign]
    asyncio.run(consumer.step())
    assert seen == [sqs_event(claimed)]


def test_step_failed_invocation_fails_the_batch(sqlite):
    declare(sqlite)
    sqlite.enqueue("q", "1")
    sqlite.enqueue("q", "2")
    consumer = QueueConsumer(sqlite, Recorder(lambda r: invocation(error=FunctionError("boom"))), config(), SQS)
    assert asyncio.run(consumer.step()) == Progress(1, 0, 2)
    assert sqlite.queue_stats("q").in_flight == 2


def test_step_with_concurrency_zero_does_nothing(sqlite):
    declare(sqlite)
    sqlite.enqueue("q", "1")
    backend = CountingBackend(sqlite)
    invoke = Recorder()
    consumer = QueueConsumer(backend, invoke, config(concurrency=0), SQS)  # type: ignore[arg-type]
    assert asyncio.run(consumer.step()) == Progress()
    assert backend.calls == [] and invoke.requests == []
    assert sqlite.queue_stats("q").visible == 1


def test_step_of_an_empty_queue(sqlite):
    declare(sqlite)
    invoke = Recorder()
    assert asyncio.run(QueueConsumer(sqlite, invoke, config(), SQS).step()) == Progress()
    assert invoke.requests == []


def test_step_with_the_async_delivery_sends_the_payload_itself(sqlite, no_jitter):
    declare(sqlite, "async.f", "async.f-dlq")
    sqlite.enqueue("async.f", json.dumps({"n": 1}))
    invoke = Recorder(lambda r: invocation(error=FunctionError("boom")))
    consumer = QueueConsumer(sqlite, invoke, config(queue="async.f", dlq="async.f-dlq", batch_size=1), ASYNC)
    assert asyncio.run(consumer.step()) == Progress(1, 0, 1)
    [request] = invoke.requests
    assert (request.event, request.trigger, request.source) == ({"n": 1}, "async", "async.f")


# ---- the pump -------------------------------------------------------------------------


def drain(sqlite, backend, invoke: Recorder, settings: ConsumerConfig) -> None:
    """Run a consumer on a loop until the queue is empty, then stop it."""
    async def main():
        consumer = QueueConsumer(backend, invoke, settings, SQS)
        await consumer.start()
        try:
            await until(lambda: sqlite.queue_stats(settings.queue).total == 0, what="the queue to drain")
        finally:
            await consumer.stop()

    asyncio.run(main())


def test_pump_consumes_everything_with_at_most_concurrency_batches_in_flight(sqlite):
    declare(sqlite)
    for n in range(7):
        sqlite.enqueue("q", str(n))
    invoke = Recorder()
    drain(sqlite, sqlite, invoke, config(batch_size=2, concurrency=3))
    assert sorted(b for batch in invoke.bodies for b in batch) == [str(n) for n in range(7)]
    assert all(len(batch) <= 2 for batch in invoke.bodies)
    assert invoke.most <= 3


def test_stop_lets_the_batch_in_flight_finish_and_be_acked(sqlite):
    declare(sqlite)
    sqlite.enqueue("q", "first")
    sqlite.enqueue("q", "second")
    gate = asyncio.Event()
    invoke = Recorder(gate=gate)
    backend = CountingBackend(sqlite)

    async def main():
        consumer = QueueConsumer(backend, invoke, config(batch_size=1, concurrency=1), SQS)  # type: ignore[arg-type]
        await consumer.start()
        await until(lambda: invoke.running == 1, what="the handler to start")
        stopping = asyncio.create_task(consumer.stop())
        await asyncio.sleep(0.05)
        assert not stopping.done()  # waits for the batch in flight
        assert sqlite.queue_stats("q").in_flight == 1
        gate.set()
        await asyncio.wait_for(stopping, 5)

    asyncio.run(main())
    assert invoke.bodies == [["first"]]  # nothing claimed after stop()
    assert backend.calls[-1] == "settle"
    [left] = sqlite.peek("q")
    assert left.body == "second" and sqlite.queue_stats("q").visible == 1


def receive_counts(invoke: Recorder) -> dict[str, list[int]]:
    """Each body's ApproximateReceiveCount, once per time it was delivered."""
    counts: dict[str, list[int]] = {}
    for request in invoke.requests:
        for record in request.event["Records"]:
            counts.setdefault(record["body"], []).append(int(record["attributes"]["ApproximateReceiveCount"]))
    return counts


@pytest.mark.parametrize("read_ahead", [0.0, 1.0])
def test_a_quick_consumer_reads_ahead_and_turns_once_per_concurrency_batches(sqlite, read_ahead):
    declare(sqlite)
    for n in range(80):
        sqlite.enqueue("q", str(n))
    backend = CountingBackend(sqlite)
    # handlers that end one at a time, as real ones do
    invoke = Recorder(pause=lambda request: 0.001 * (int(request.event["Records"][0]["body"]) % 7))
    drain(sqlite, backend, invoke, config(batch_size=1, concurrency=4, read_ahead=read_ahead))
    assert receive_counts(invoke) == {str(n): [1] for n in range(80)}  # each once, in slots of 4
    assert invoke.most <= 4
    turns = backend.calls.count("settle")
    if read_ahead:
        assert turns <= 80 // 4 + 8  # and one per batch as the queue runs dry
    else:
        assert turns >= 80 // 2  # a turn per batch or two


def test_a_fifo_consumer_never_reads_ahead(sqlite):
    """A batch claimed ahead would hold its group's next messages back from other nodes."""
    declare(sqlite, "q.fifo", "q-dlq.fifo")
    sqlite.enqueue_fifo("q.fifo", [FifoEntry(str(n), None, f"g{n % 8}", str(n)) for n in range(40)])
    backend = CountingBackend(sqlite)
    invoke = Recorder(pause=lambda request: 0.001 * (int(request.event["Records"][0]["body"]) % 7))
    drain(sqlite, backend, invoke, config(queue="q.fifo", dlq="q-dlq.fifo", batch_size=1, concurrency=4,
                                          read_ahead=1.0))
    assert receive_counts(invoke) == {str(n): [1] for n in range(40)}
    assert backend.calls.count("settle") >= 40 // 2


async def slow_with_one_ahead(sqlite, invoke: Recorder, gate: asyncio.Event, hold: float,
                              *bodies: str) -> QueueConsumer:
    """A consumer of concurrency 1 reading ahead (a quick message ran first), running the
    first of `bodies` until `gate` is set, with the second claimed ahead."""
    declare(sqlite)
    sqlite.enqueue("q", "quick")
    consumer = QueueConsumer(sqlite, invoke, config(batch_size=1, concurrency=1, read_ahead=hold), SQS)
    await consumer.start()
    await until(lambda: sqlite.queue_stats("q").total == 0, what="the quick message")
    invoke.gate = gate
    for body in bodies:
        sqlite.enqueue("q", body)
    consumer.wake()
    await until(lambda: invoke.running == 1 and sqlite.queue_stats("q").in_flight == 2,
                what="the slow handler to start, with one batch claimed ahead")
    return consumer


def test_stop_gives_back_the_batches_claimed_ahead_uncounted(sqlite):
    gate = asyncio.Event()
    invoke = Recorder()

    async def main():
        consumer = await slow_with_one_ahead(sqlite, invoke, gate, 1.0, "slow", "ahead", "behind")
        stopping = asyncio.create_task(consumer.stop())
        await until(lambda: sqlite.queue_stats("q").visible == 2, what="the batch claimed ahead to come back")
        gate.set()
        await asyncio.wait_for(stopping, 5)

    asyncio.run(main())
    assert receive_counts(invoke) == {"quick": [1], "slow": [1]}
    left = {m.body: m.receive_count for m in sqlite.peek("q")}
    assert left == {"ahead": 0, "behind": 0}  # given back as if never received


def test_a_batch_that_waits_too_long_for_a_slot_is_given_back_and_read_ahead_stops(sqlite):
    gate = asyncio.Event()
    invoke = Recorder()

    async def main():
        consumer = await slow_with_one_ahead(sqlite, invoke, gate, 0.2, "slow", "ahead")
        try:
            # past its hold the batch claimed ahead is visible again, the slow one still running
            await until(lambda: sqlite.queue_stats("q").visible == 1, what="the batch to be given back")
            assert invoke.running == 1
            gate.set()
            await until(lambda: sqlite.queue_stats("q").total == 0, what="the rest")
        finally:
            gate.set()
            await consumer.stop()

    asyncio.run(main())
    assert receive_counts(invoke) == {"quick": [1], "slow": [1], "ahead": [1]}  # the give-back did not count


def test_stop_without_start_returns(sqlite):
    asyncio.run(QueueConsumer(sqlite, Recorder(), config(), SQS).stop())


def test_idle_consumer_makes_no_backend_calls_and_claims_again_on_wake(sqlite):
    declare(sqlite)
    backend = CountingBackend(sqlite)
    invoke = Recorder()

    async def main():
        consumer = QueueConsumer(backend, invoke, config(), SQS)  # type: ignore[arg-type]
        await consumer.start()
        try:
            await until(lambda: backend.calls == ["settle"], what="the first claim")
            await asyncio.sleep(0.2)
            assert backend.calls == ["settle"]  # the claim came back short: idle

            sqlite.enqueue("q", "hello")  # behind the proxy's back: only wake() tells
            await asyncio.sleep(0.05)
            assert backend.calls == ["settle"] and invoke.requests == []
            consumer.wake()
            await until(lambda: backend.calls == ["settle"] * 3, what="claim, invoke, ack")
            await asyncio.sleep(0.2)
            assert backend.calls == ["settle"] * 3  # idle again
        finally:
            await consumer.stop()

    asyncio.run(main())
    assert invoke.bodies == [["hello"]]
    assert sqlite.queue_stats("q").total == 0


def test_consumer_with_concurrency_zero_does_not_start(sqlite):
    declare(sqlite)
    sqlite.enqueue("q", "1")
    backend = CountingBackend(sqlite)

    async def main():
        consumer = QueueConsumer(backend, Recorder(), config(concurrency=0), SQS)  # type: ignore[arg-type]
        await consumer.start()
        consumer.wake()
        await asyncio.sleep(0.05)
        await consumer.stop()

    asyncio.run(main())
    assert backend.calls == []


@pytest.mark.parametrize("error,level,said", [
    (BackendUnavailable("the disk is gone"), logging.WARNING, "backend unreachable"),
    (RuntimeError("a bug in a backend script"), logging.ERROR, "turn failed, retrying: RuntimeError"),
], ids=["backend unavailable", "any other error"])
def test_a_failed_claim_is_logged_and_retried(sqlite, monkeypatch, caplog, error, level, said):
    monkeypatch.setattr(consumer_module, "UNREACHABLE_RETRY", 0.05)
    caplog.set_level(logging.WARNING, logger="squall.queues")
    declare(sqlite)
    sqlite.enqueue("q", "1")
    backend = CountingBackend(sqlite)
    backend.fail_once("settle", error)
    invoke = Recorder()

    async def main():
        consumer = QueueConsumer(backend, invoke, config(), SQS)  # type: ignore[arg-type]
        await consumer.start()
        try:
            await until(lambda: sqlite.queue_stats("q").total == 0, what="the retried claim")
        finally:
            await consumer.stop()

    asyncio.run(main())
    assert invoke.bodies == [["1"]]
    assert backend.calls[:2] == ["settle", "settle"]
    logged = [r for r in caplog.records if r.name == "squall.queues"]
    assert any(r.levelno == level and said in r.getMessage() and str(error) in r.getMessage() for r in logged)
    # only an outage is announced as over
    assert any("reachable again" in r.getMessage() for r in logged) == isinstance(error, BackendUnavailable)


def test_backend_unavailable_during_an_ack_redelivers_after_the_visibility_timeout(sqlite, clock, monkeypatch):
    monkeypatch.setattr(consumer_module, "UNREACHABLE_RETRY", 0.05)
    declare(sqlite)
    sqlite.enqueue("q", "1")
    backend = CountingBackend(sqlite)
    gate = asyncio.Event()
    invoke = Recorder(gate=gate)

    async def main():
        consumer = QueueConsumer(backend, invoke, config(), SQS)  # type: ignore[arg-type]
        await consumer.start()
        try:
            await until(lambda: invoke.running == 1, what="the handler to start")
            backend.fail_once("settle", BackendUnavailable("down"))  # the turn that acks it
            gate.set()
            await until(lambda: backend.calls.count("settle") == 2, what="the failed ack")
            clock.advance(30)  # the visibility timeout: the unsettled message is visible again
            await until(lambda: sqlite.queue_stats("q").total == 0, what="the redelivery")
        finally:
            await consumer.stop()

    asyncio.run(main())
    assert invoke.bodies == [["1"], ["1"]]  # at least once


