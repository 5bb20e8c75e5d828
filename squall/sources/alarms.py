"""Alarms: CloudWatch metric alarms on the functions' and the queues' metrics.

`app.alarm(...)` declares an `AlarmTrigger`: a metric (a Lambda metric of one function or
of all, or an SQS metric of a queue), a statistic, a threshold and CloudWatch's evaluation
settings, and optionally a target that gets each state change as the EventBridge event
CloudWatch sends ("CloudWatch Alarm State Change"): a function, as an asynchronous
invocation (retried as any), or a queue, as a message.

One node of the cluster at a time evaluates (the holder of the `alarms` leader lease),
once per period, `SETTLE` seconds after the period ends so that every node's metering
flush is in. Function metrics come from the metering records of every node
(`squall.observability.statistics`); queue metrics are sampled from the backend when the
period is evaluated, one sample per period (SQS publishes its queue metrics once a
minute). Each alarm's state, its recent queue samples and the last period evaluated are
kept in the backend table `squall.alarms`, so a restarted or another node continues
where the last leader stopped; `squall alarms` reads them.
"""

from __future__ import annotations

import asyncio
import logging
import math
import re
from dataclasses import dataclass
from enum import StrEnum
from typing import TYPE_CHECKING, Any, ClassVar

from squall.backends import Backend
from squall.cluster import LeaderLease
from squall.core.checks import FUNCTION_NAME, check_name, check_number, check_queue_name
from squall.core.lifecycle import PeriodicService, Progress, Service
from squall.dispatch.targets import Target, TargetKind, deliver
from squall.errors import ConditionFailed, ConfigError
from squall.events.cloudwatch import MetricStat, StateRecord, state_change_event
from squall.observability.alarms import EXTRA_PERIODS, AlarmState, Comparison, Datapoint, Rule, TreatMissingData, decide
from squall.observability.statistics import FunctionMetric, QueueMetric, Statistic, check_statistic, datapoints
from squall.observability.statistics import period_start as aligned
from squall.observability.window import MeteringWindow
from squall.runtime import wire
from squall.sources.base import NodeContext, Source, Trigger
from squall.sources.queues import QueueTrigger
from squall.sources.topics import declared_topics

if TYPE_CHECKING:
    from squall.app import App

log = logging.getLogger("squall.alarms")

#: the backend table holding each alarm's state
ALARMS_TABLE = "squall.alarms"
#: seconds after a period ends before it is evaluated (metering is flushed every second)
SETTLE = 2.0
#: CloudWatch's limits: ASCII names up to 255 characters, N × period at most a day
ALARM_NAME = re.compile(r"[\x20-\x7e]{1,255}")
MAX_EVALUATION_RANGE = 86400
HIGH_RESOLUTION_PERIODS = (10, 30)

#: the statistic CloudWatch's recommended alarms use for each metric
DEFAULT_STATISTIC: dict[str, Statistic] = {
    FunctionMetric.INVOCATIONS: Statistic.SUM, FunctionMetric.ERRORS: Statistic.SUM,
    FunctionMetric.THROTTLES: Statistic.SUM, FunctionMetric.DURATION: Statistic.AVERAGE,
    FunctionMetric.CONCURRENT_EXECUTIONS: Statistic.MAXIMUM,
    **{metric: Statistic.MAXIMUM for metric in QueueMetric},
}
_SYMBOLS = {Comparison.GREATER_OR_EQUAL: ">=", Comparison.GREATER: ">", Comparison.LESS: "<",
            Comparison.LESS_OR_EQUAL: "<="}


#: what an alarm's state changes may go to (CloudWatch: an SNS topic, or EventBridge's targets)
ALARM_TARGETS = (TargetKind.FUNCTION, TargetKind.QUEUE, TargetKind.TOPIC)


def _choice(enum: type[StrEnum], what: str, value: Any) -> Any:
    try:
        return enum(value)
    except ValueError:
        raise ConfigError(f"invalid {what} {value!r}: expected one of {', '.join(enum)}") from None


@dataclass(frozen=True, kw_only=True)
class AlarmTrigger(Trigger):
    """A metric alarm, with CloudWatch's names: `metric` (`Errors`, ...) of `function_name`
    (every function when empty) or of `queue_name`; `statistic` (`Sum`, `Average`,
    `Minimum`, `Maximum`, `SampleCount`, `pNN`; by default the one CloudWatch's
    recommended alarms use), `comparison` against `threshold`, `period` (10, 30 or a
    multiple of 60 seconds), `evaluation_periods` (N), `datapoints_to_alarm` (M, default
    N), `treat_missing_data`. `function` is the target function, when the target is one."""

    kind: ClassVar[str] = "alarm"

    name: str
    metric: FunctionMetric | QueueMetric | str
    threshold: float
    function_name: str = ""
    queue_name: str = ""
    period: int = 60
    evaluation_periods: int = 1
    datapoints_to_alarm: int = 0
    comparison: Comparison | str = Comparison.GREATER_OR_EQUAL
    statistic: str = ""
    treat_missing_data: TreatMissingData | str = TreatMissingData.MISSING
    target: str = ""
    description: str = ""

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not ALARM_NAME.fullmatch(self.name):
            raise ConfigError(f"invalid alarm name {self.name!r}: 1 to 255 printable ASCII characters")
        what = f"alarm {self.name!r}"
        metric = _metric(what, self.metric)
        if isinstance(metric, QueueMetric):
            if not self.queue_name or self.function_name:
                raise ConfigError(f"{what}: {metric} is a queue metric: give queue=, not function=")
            check_queue_name(self.queue_name)
        else:
            if self.queue_name:
                raise ConfigError(f"{what}: {metric} is a function metric: give function=, not queue=")
            if self.function_name:
                check_name("function", self.function_name, FUNCTION_NAME)
        if (isinstance(self.threshold, bool) or not isinstance(self.threshold, (int, float))
                or not math.isfinite(self.threshold)):
            raise ConfigError(f"invalid threshold {self.threshold!r} for {what}: must be a finite number")
        if isinstance(self.period, bool) or not isinstance(self.period, int) or not (
                self.period in HIGH_RESOLUTION_PERIODS or (self.period >= 60 and self.period % 60 == 0)):
            raise ConfigError(f"invalid period {self.period!r} for {what}: CloudWatch allows 10, 30 or a multiple of "
                              f"60 seconds")
        check_number(f"evaluation_periods for {what}", self.evaluation_periods, 1,
                      MAX_EVALUATION_RANGE // self.period, integer=True)
        if self.datapoints_to_alarm == 0:
            object.__setattr__(self, "datapoints_to_alarm", self.evaluation_periods)
        check_number(f"datapoints_to_alarm for {what}", self.datapoints_to_alarm, 1, self.evaluation_periods,
                     integer=True)
        statistic = check_statistic(self.statistic or DEFAULT_STATISTIC[metric], f"statistic for {what}")
        if not isinstance(self.description, str) or len(self.description) > 1024:
            raise ConfigError(f"{what}: description must be a string of at most 1024 characters")
        object.__setattr__(self, "metric", metric)
        object.__setattr__(self, "statistic", statistic)
        object.__setattr__(self, "comparison", _choice(Comparison, f"comparison for {what}", self.comparison))
        object.__setattr__(self, "treat_missing_data",
                           _choice(TreatMissingData, f"treat_missing_data for {what}", self.treat_missing_data))
        target = self.destination
        object.__setattr__(self, "function", target.name if target and target.kind is TargetKind.FUNCTION else "")

    @property
    def destination(self) -> Target | None:
        return Target.parse(f"alarm {self.name!r}", self.target, ALARM_TARGETS) if self.target else None

    @property
    def watched(self) -> FunctionMetric | QueueMetric:
        return _metric(self.name, self.metric)

    @property
    def rule(self) -> Rule:
        return Rule(float(self.threshold), Comparison(self.comparison), self.evaluation_periods,
                    self.datapoints_to_alarm, TreatMissingData(self.treat_missing_data), self.statistic, self.period)

    @property
    def metric_stat(self) -> MetricStat:
        if isinstance(self.watched, QueueMetric):
            return MetricStat("AWS/SQS", self.watched, {"QueueName": self.queue_name}, self.period, self.statistic)
        dimensions = {"FunctionName": self.function_name} if self.function_name else {}
        return MetricStat("AWS/Lambda", self.watched, dimensions, self.period, self.statistic)

    def check_references(self, app: App) -> None:
        """ConfigError if the function or queue watched, or the target, is not declared
        in `app` (before the alarm)."""
        queues = {name for t in app.triggers if isinstance(t, QueueTrigger) for name in (t.queue, t.dlq)}
        functions = set(app.functions)
        wanted = [("function", self.function_name, functions), ("queue", self.queue_name, queues)]
        target = self.destination
        if target is not None:
            declared = {TargetKind.FUNCTION: functions, TargetKind.QUEUE: queues,
                        TargetKind.TOPIC: set(declared_topics(app))}
            wanted.append((str(target.kind), target.name, declared[target.kind]))
        for kind, name, known in wanted:
            if name and name not in known:
                raise ConfigError(f"alarm {self.name!r}: unknown {kind} {name!r} ({kind}s: "
                                  f"{', '.join(sorted(known)) or 'none'}); declare it before the alarm")

    def conflict(self, other: Trigger) -> str | None:
        if isinstance(other, AlarmTrigger) and other.name == self.name:
            return f"alarm {self.name!r} is declared twice"
        return None

    def condition(self) -> str:
        """`Errors of charge >= 5 (Sum, 1 of 1 x 60 s)`: what the alarm watches."""
        of = self.function_name or self.queue_name or "all functions"
        return (f"{self.metric} of {of} {_SYMBOLS[Comparison(self.comparison)]} {self.threshold:g} ({self.statistic}, "
                f"{self.datapoints_to_alarm} of {self.evaluation_periods} x {self.period} s)")

    def describe(self) -> str:
        return f"alarm {self.name}: {self.condition()}" + (f" -> {self.target}" if self.target else "")


def _metric(what: str, value: Any) -> FunctionMetric | QueueMetric:
    for enum in (FunctionMetric, QueueMetric):
        try:
            return enum(value)
        except ValueError:
            pass
    known = ", ".join([*FunctionMetric, *QueueMetric])
    raise ConfigError(f"{what}: unknown metric {value!r}: expected one of {known}")


@dataclass(frozen=True)
class AlarmRecord:
    """What the table keeps per alarm: its state, the last period evaluated (its end)
    and, for a queue metric, the samples of the recent periods."""

    state: StateRecord
    evaluated: float = 0.0
    condition: str = ""
    samples: tuple[Datapoint, ...] = ()

    @classmethod
    def initial(cls, alarm: AlarmTrigger, now: float) -> AlarmRecord:
        return cls(StateRecord(AlarmState.INSUFFICIENT_DATA, "Unchecked: Initial alarm creation", "", now),
                   condition=alarm.condition())

    def to_json(self) -> dict[str, Any]:
        state = self.state
        return {"state": {"value": str(state.value), "reason": state.reason, "reasonData": state.reason_data,
                          "timestamp": state.timestamp},
                "evaluated": self.evaluated, "condition": self.condition,
                "samples": [[p.start, p.value] for p in self.samples]}

    @classmethod
    def of(cls, data: dict[str, Any]) -> AlarmRecord:
        state = data["state"]
        return cls(StateRecord(AlarmState(state["value"]), state["reason"], state["reasonData"], state["timestamp"]),
                   data["evaluated"], data.get("condition", ""),
                   tuple(Datapoint(start, value) for start, value in data.get("samples", [])))


class AlarmEvaluator(PeriodicService):
    """Evaluates every alarm of the app once per period, on the leader only. Between
    evaluations a round costs nothing but a look at the clock."""

    name = "alarms"
    interval = 1.0

    def __init__(self, backend: Backend, alarms: list[AlarmTrigger], holder: str):
        super().__init__()
        self.backend = backend
        self.alarms = alarms
        # renewed at every evaluation, so it outlives the shortest period
        self.lease = LeaderLease(backend, "alarms", holder, ttl=3 * min(a.period for a in alarms))
        self.window = MeteringWindow(backend)
        #: per alarm, the end of the last period this node handled (evaluated, or left to the leader)
        self._handled: dict[str, float] = {}

    @staticmethod
    def period_end(alarm: AlarmTrigger, now: float) -> float:
        """The end of the latest period that is ready to be evaluated at `now`."""
        return aligned(now - SETTLE, alarm.period)

    async def step(self) -> Progress:
        now = self.backend.clock()
        due = [a for a in self.alarms if self.period_end(a, now) > self._handled.get(a.name, -math.inf)]
        if not due:
            return Progress()
        for alarm in due:
            self._handled[alarm.name] = self.period_end(alarm, now)
        if not await asyncio.to_thread(self.lease.renew):
            return Progress()
        return Progress(succeeded=await asyncio.to_thread(self.evaluate, due, now))

    async def settle(self) -> None:
        await asyncio.to_thread(self.lease.resign)

    def evaluate(self, alarms: list[AlarmTrigger], now: float) -> int:
        """Evaluate `alarms` at `now`; returns how many changed state."""
        ranges = {a.name: self.period_end(a, now) - (a.evaluation_periods + EXTRA_PERIODS) * a.period for a in alarms}
        function_alarms = [a for a in alarms if isinstance(a.watched, FunctionMetric)]
        calls = self.window.calls(min(ranges[a.name] for a in function_alarms)) if function_alarms else []
        changed = 0
        for alarm in alarms:
            end, first = self.period_end(alarm, now), ranges[alarm.name]
            item = self.backend.table_get(ALARMS_TABLE, alarm.name)
            record = AlarmRecord.of(item.value) if item else AlarmRecord.initial(alarm, now)
            if record.evaluated >= end:
                continue  # another node evaluated this period
            starts = [first + i * alarm.period for i in range(alarm.evaluation_periods + EXTRA_PERIODS)]
            watched = alarm.watched
            if isinstance(watched, FunctionMetric):
                found = datapoints(calls, watched, alarm.statistic, alarm.period, first, end,
                                   alarm.function_name or None)
                samples: tuple[Datapoint, ...] = ()
            else:
                kept = [p for p in record.samples if p.start >= first]
                samples = (*kept, Datapoint(end - alarm.period, self._sample(watched, alarm.queue_name)))
                found = {p.start: p.value for p in samples}
            points = [Datapoint(s, found[s]) if s in found else None for s in starts]
            decision = decide(alarm.rule, points, record.state.value, now)
            previous = record.state
            state = previous
            if decision.state is not previous.value:
                state = StateRecord(decision.state, decision.reason, decision.reason_data, now)
            update = AlarmRecord(state, end, alarm.condition(), samples)
            try:
                if item is None:
                    self.backend.table_put(ALARMS_TABLE, alarm.name, update.to_json(), if_absent=True)
                else:
                    self.backend.table_put(ALARMS_TABLE, alarm.name, update.to_json(), if_version=item.version)
            except ConditionFailed:
                continue  # another node got there first, and delivers the change itself
            if state is not previous:
                changed += 1
                self._deliver(alarm, previous, state)
        return changed

    def _sample(self, metric: QueueMetric, queue: str) -> float:
        if metric is QueueMetric.AGE_OF_OLDEST:
            return self.backend.queue_oldest_age(queue)
        stats = self.backend.queue_stats(queue)
        return float({QueueMetric.VISIBLE: stats.visible, QueueMetric.NOT_VISIBLE: stats.in_flight,
                      QueueMetric.DELAYED: stats.delayed}[metric])

    def _deliver(self, alarm: AlarmTrigger, previous: StateRecord, state: StateRecord) -> None:
        target = alarm.destination
        log.info("alarm %s: %s -> %s: %s%s", alarm.name, previous.value, state.value, state.reason,
                 f" (event to {alarm.target})" if target else "")
        if target is None:
            return
        event = state_change_event(alarm.name, alarm.description, alarm.metric_stat, previous, state)
        deliver(self.backend, target, wire.dumps(event).decode())


class AlarmSource(Source[AlarmTrigger]):
    kind = "alarm"
    trigger = AlarmTrigger

    def provision(self, backend: Backend) -> None:
        """Every new alarm starts in INSUFFICIENT_DATA, as on CloudWatch."""
        for alarm in self.triggers:
            if backend.table_get(ALARMS_TABLE, alarm.name) is None:
                try:
                    backend.table_put(ALARMS_TABLE, alarm.name,
                                      AlarmRecord.initial(alarm, backend.clock()).to_json(), if_absent=True)
                except ConditionFailed:
                    pass  # another node provisioned it at the same moment

    def services(self, node: NodeContext) -> list[Service]:
        return [AlarmEvaluator(node.backend, self.triggers, node.settings.node_id)]
