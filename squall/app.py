"""Declarations: an `App` collects functions and the triggers that invoke them.

Nothing here runs anything. A node reads the declarations to build routes and pollers;
a function instance reads them to find its handler. Every argument is checked when it
is declared, so a bad app fails at load with a `ConfigError` naming the problem.
"""

from __future__ import annotations

import importlib
import importlib.util
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, fields, replace
from typing import Any, TypeVar

from squall.backends.fifo import is_fifo
from squall.core.checks import FUNCTION_NAME, check_name, check_number
from squall.dispatch.targets import Target, TargetKind
from squall.errors import ConfigError, FunctionNotFound
from squall.runtime.logs import ApplicationLogLevel, LogFormat, SystemLogLevel, check_logging
from squall.sources import Trigger, source_for
from squall.sources.alarms import AlarmTrigger
from squall.sources.events import (
    EventArchive,
    EventBus,
    EventRule,
    canonical_target,
    check_bus,
    check_rule_references,
)
from squall.sources.http import HttpRoute, PayloadFormat, payload_format
from squall.sources.queues import QueueTrigger
from squall.sources.schedules import ScheduleTrigger
from squall.sources.topics import TopicAttributes, TopicSubscription

Handler = Callable[[Any, Any], Any]
H = TypeVar("H", bound="Handler | str")
Decorator = Callable[[H], H]

#: Lambda's limits: timeout 1..900 s, memory 128..10240 MB, /tmp 512..10240 MB.
MAX_TIMEOUT = 900
MIN_MEMORY_MB, MAX_MEMORY_MB = 128, 10240
MIN_EPHEMERAL_STORAGE_MB, MAX_EPHEMERAL_STORAGE_MB = 512, 10240
#: Lambda's MaximumEventAgeInSeconds: 60 s to 6 hours (the default)
MIN_EVENT_AGE, MAX_EVENT_AGE = 60, 21600
#: where an asynchronous invocation's records may go, as Lambda's destinations
DESTINATION_KINDS = (TargetKind.QUEUE, TargetKind.TOPIC, TargetKind.BUS, TargetKind.FUNCTION)


@dataclass(frozen=True)
class FunctionConfig:
    """A function: its handler and the limits every instance of it runs under."""

    name: str
    handler: Handler | str
    timeout: float = 3.0
    memory_mb: int = 128
    reserved_concurrency: int | None = None
    provisioned_concurrency: int = 0
    #: variables set in its instances (before a 'module.handler' string is imported)
    environment: dict[str, str] = field(default_factory=dict, hash=False)
    #: Lambda's LoggingConfig: the log format and, in JSON, the levels kept (squall.runtime.logs)
    log_format: LogFormat = LogFormat.TEXT
    application_log_level: ApplicationLogLevel | None = None
    system_log_level: SystemLogLevel | None = None
    #: MB of each instance's private /tmp (squall.runtime.scratch)
    ephemeral_storage_mb: int = 512
    #: asynchronous invocation (Lambda's EventInvokeConfig, squall.sources.async_invoke): retries
    #: after a failed attempt, the seconds an event may wait, and where records of the outcome go
    maximum_retry_attempts: int = 2
    maximum_event_age: int = MAX_EVENT_AGE
    on_success: str | None = None
    on_failure: str | None = None

    def __post_init__(self) -> None:
        check_name("function", self.name, FUNCTION_NAME)
        check_environment(f"environment of {self.name!r}", self.environment)
        checked = check_logging(f"function {self.name!r}", self.log_format, self.application_log_level,
                                self.system_log_level)
        for option, value in zip(_LOGGING_OPTIONS, checked, strict=True):
            object.__setattr__(self, option, value)  # the enum member for the string given
        if isinstance(self.handler, str):
            if not re.match(r"^[A-Za-z_][\w.]*\.[A-Za-z_]\w*$", self.handler):
                raise ConfigError(f"invalid handler {self.handler!r}: expected 'module.function'")
        elif not callable(self.handler):
            raise ConfigError(f"handler of {self.name!r} is not callable")
        if (isinstance(self.timeout, bool) or not isinstance(self.timeout, (int, float))
                or not 0 < self.timeout <= MAX_TIMEOUT):
            raise ConfigError(f"invalid timeout {self.timeout!r} for {self.name!r}: must be a number of "
                              f"seconds above 0 and at most {MAX_TIMEOUT}")
        check_number(f"memory_mb for {self.name!r}", self.memory_mb, MIN_MEMORY_MB, MAX_MEMORY_MB, integer=True)
        check_number(f"ephemeral_storage_mb for {self.name!r}", self.ephemeral_storage_mb, MIN_EPHEMERAL_STORAGE_MB,
                     MAX_EPHEMERAL_STORAGE_MB, integer=True)
        if self.reserved_concurrency is not None:
            check_number(f"reserved_concurrency for {self.name!r}", self.reserved_concurrency, 0, 1000, integer=True)
        check_number(f"provisioned_concurrency for {self.name!r}", self.provisioned_concurrency, 0, 1000, integer=True)
        if self.reserved_concurrency is not None and self.provisioned_concurrency > self.reserved_concurrency:
            raise ConfigError(f"provisioned_concurrency ({self.provisioned_concurrency}) of {self.name!r} "
                              f"exceeds its reserved_concurrency ({self.reserved_concurrency})")
        check_number(f"maximum_retry_attempts for {self.name!r}", self.maximum_retry_attempts, 0, 2, integer=True)
        check_number(f"maximum_event_age for {self.name!r}", self.maximum_event_age, MIN_EVENT_AGE, MAX_EVENT_AGE,
                     integer=True)
        for option in ("on_success", "on_failure"):
            if getattr(self, option) is not None:
                target = Target.parse(f"{option} of {self.name!r}", getattr(self, option), DESTINATION_KINDS)
                if target.kind in (TargetKind.QUEUE, TargetKind.TOPIC) and is_fifo(target.name):
                    raise ConfigError(f"{option} of {self.name!r}: {target} is a FIFO {target.kind}; Lambda sends "
                                      f"invocation records to standard SQS queues and SNS topics only")

    def destination(self, option: str) -> Target | None:
        """The parsed `on_success` or `on_failure` target (None if not set)."""
        value = getattr(self, option)
        return None if value is None else Target.parse(option, value, DESTINATION_KINDS)


_LOGGING_OPTIONS = ("log_format", "application_log_level", "system_log_level")
#: what a function declaration takes besides its name and handler (and what its manifest carries)
FUNCTION_OPTIONS = tuple(f.name for f in fields(FunctionConfig) if f.name not in ("name", "handler"))

#: Lambda's rules for environment variables: a key is a letter then letters, digits or
#: underscores; all keys and values together at most 4 KB; these are the runtime's own
ENVIRONMENT_KEY = re.compile(r"[A-Za-z][A-Za-z0-9_]+")
MAX_ENVIRONMENT_BYTES = 4096
RESERVED_VARIABLES = frozenset({
    "_HANDLER", "_X_AMZN_TRACE_ID", "AWS_DEFAULT_REGION", "AWS_REGION", "AWS_EXECUTION_ENV",
    "AWS_LAMBDA_FUNCTION_NAME", "AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "AWS_LAMBDA_FUNCTION_VERSION",
    "AWS_LAMBDA_INITIALIZATION_TYPE", "AWS_LAMBDA_LOG_GROUP_NAME", "AWS_LAMBDA_LOG_STREAM_NAME",
    "AWS_ACCESS_KEY", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN",
    "AWS_LAMBDA_RUNTIME_API", "LAMBDA_TASK_ROOT", "LAMBDA_RUNTIME_DIR",
})


def check_environment(what: str, environment: Any) -> None:
    """ConfigError naming the offending variable, as Lambda's API refuses it."""
    if not isinstance(environment, dict):
        raise ConfigError(f"{what} must be a dict of strings, not {type(environment).__name__}")
    size = 0
    for key, value in environment.items():
        if not isinstance(key, str) or not ENVIRONMENT_KEY.fullmatch(key):
            raise ConfigError(f"{what}: invalid variable name {key!r} (a letter, then letters, digits or "
                              f"underscores)")
        if key in RESERVED_VARIABLES:
            raise ConfigError(f"{what}: {key} is reserved: the runtime sets it")
        if not isinstance(value, str):
            raise ConfigError(f"{what}: the value of {key} must be a string, not {type(value).__name__}")
        size += len(key.encode()) + len(value.encode())
    if size > MAX_ENVIRONMENT_BYTES:
        raise ConfigError(f"{what} is {size} bytes; Lambda allows {MAX_ENVIRONMENT_BYTES} in all")


def _function_name(handler: Handler | str, name: str | None) -> str:
    """A function's name: `name`, else the handler's (a 'module.function' string with its
    dots turned into underscores)."""
    if name is not None:
        return name
    return handler.replace(".", "_") if isinstance(handler, str) else getattr(handler, "__name__", "")


@dataclass
class App:
    """A Squall application: functions plus the triggers that invoke them.

    ```python
    app = App("shop")

    @app.http("GET", "/items/{id}")
    def get_item(event, ctx): ...
    ```

    Each decorator is a short delegate to `trigger()`, which takes the declaration of any
    registered trigger kind (`squall.sources`).
    """

    name: str
    functions: dict[str, FunctionConfig] = field(default_factory=dict)
    triggers: list[Trigger] = field(default_factory=list)
    #: directory of the app file, searched for 'module.handler' strings
    root: str | None = None
    #: variables every function gets (a function's own `environment=` adds to them and wins)
    environment: dict[str, str] = field(default_factory=dict)
    #: every function's logging options unless it sets its own (a function's log_format="Text"
    #: takes none of the app's levels)
    log_format: LogFormat | None = None
    application_log_level: ApplicationLogLevel | None = None
    system_log_level: SystemLogLevel | None = None
    #: the payload format of routes that do not set their own: "2.0" (HTTP API) or "1.0" (REST)
    payload_format: PayloadFormat | str = PayloadFormat.V2

    def __post_init__(self) -> None:
        check_name("app", self.name, FUNCTION_NAME)
        check_environment(f"environment of app {self.name!r}", self.environment)
        fmt, self.application_log_level, self.system_log_level = check_logging(
            f"app {self.name!r}", self.log_format or LogFormat.TEXT, self.application_log_level,
            self.system_log_level)
        self.log_format = fmt if self.log_format is not None else None
        self.payload_format = payload_format(self.payload_format, f"app {self.name!r}")

    @property
    def routes(self) -> list[HttpRoute]:
        return [t for t in self.triggers if isinstance(t, HttpRoute)]

    @property
    def queue_triggers(self) -> list[QueueTrigger]:
        return [t for t in self.triggers if isinstance(t, QueueTrigger)]

    # ---- declarations -------------------------------------------------------------

    def function(self, handler: Handler | str | None = None, *, name: str | None = None,
                 timeout: float | None = None, memory_mb: int | None = None,
                 reserved_concurrency: int | None = None, provisioned_concurrency: int | None = None,
                 environment: dict[str, str] | None = None, ephemeral_storage_mb: int | None = None,
                 log_format: str | None = None, application_log_level: str | None = None,
                 system_log_level: str | None = None,
                 **unknown: Any) -> Any:
        """Declare a function invoked directly (`squall invoke`, `ctx.invoke`).

        Used as `@app.function(timeout=5)` or, for an existing Lambda handler module,
        `app.function(name="resize", handler="resize.handler")`.
        """
        options = dict(timeout=timeout, memory_mb=memory_mb, reserved_concurrency=reserved_concurrency,
                       provisioned_concurrency=provisioned_concurrency, environment=environment,
                       ephemeral_storage_mb=ephemeral_storage_mb, log_format=log_format,
                       application_log_level=application_log_level, system_log_level=system_log_level, **unknown)
        return self._declare(None, handler, name, options)

    def http(self, method: str, path: str, handler: Handler | str | None = None, *,
             name: str | None = None, payload_format: PayloadFormat | str | None = None,
             request_schema: Mapping[str, Any] | None = None, **options: Any) -> Any:
        """Route `method path` (path parameters as `{id}`, greedy as `{proxy+}`) to a function.

        The handler receives an API Gateway HTTP API event: payload format 2.0, or 1.0 (the
        REST API's) with `payload_format="1.0"` here or on the `App`. With `request_schema`
        (a JSON Schema), a body that is not JSON or fails the schema is answered 400 by the
        gateway, as a REST API's request validator answers, and the function never runs.
        """
        declared = HttpRoute(method=method, path=path, request_schema=request_schema,
                             payload_format=payload_format or self.payload_format)
        return self.trigger(declared, handler, name=name, **options)

    def on_queue(self, queue: str, handler: Handler | str | None = None, *, batch_size: int = 10,
                 max_receive_count: int = 5, visibility_timeout: float = 30, dlq: str | None = None,
                 max_concurrency: int = 8, filters: Sequence[Mapping[str, Any] | str] = (),
                 content_based_deduplication: bool = False, name: str | None = None, **options: Any) -> Any:
        """Deliver messages of `queue` to a function in SQS batches (see `QueueTrigger`); with
        `filters` (event patterns), only the messages one of them matches; a queue named
        `*.fifo` is a FIFO queue."""
        declared = QueueTrigger(queue=queue, batch_size=batch_size, max_receive_count=max_receive_count,
                                visibility_timeout=visibility_timeout, dlq=dlq or "", max_concurrency=max_concurrency,
                                filters=filters,  # type: ignore[arg-type]  # checked and made canonical JSON
                                content_based_deduplication=content_based_deduplication)
        return self.trigger(declared, handler, name=name, **options)

    def on_topic(self, topic: str, handler: Handler | str | None = None, *,
                 filter_policy: Mapping[str, Any] | str | None = None,
                 filter_policy_scope: str = "MessageAttributes", dlq: str | None = None, name: str | None = None,
                 **options: Any) -> Any:
        """Subscribe a function to `topic`: each message its `filter_policy` (SNS's) lets
        through arrives as an SNS event, an asynchronous invocation (retried twice, then
        kept in `dlq`; see `TopicSubscription`)."""
        declared = TopicSubscription(topic=topic, filter_policy=filter_policy or "",  # type: ignore[arg-type]
                                     filter_policy_scope=filter_policy_scope, dlq=dlq or "")
        return self.trigger(declared, handler, name=name, **options)

    def subscribe_queue(self, topic: str, queue: str, *, filter_policy: Mapping[str, Any] | str | None = None,
                        filter_policy_scope: str = "MessageAttributes",
                        raw_message_delivery: bool = False) -> TopicSubscription:
        """Subscribe `queue` to `topic` (fan-out to queues): each message its
        `filter_policy` lets through is written into the queue as SNS writes into SQS, the
        SNS envelope as body or, with `raw_message_delivery`, the message itself."""
        declared = TopicSubscription(topic=topic, queue=queue, filter_policy=filter_policy or "",  # type: ignore[arg-type]
                                     filter_policy_scope=filter_policy_scope,
                                     raw_message_delivery=raw_message_delivery)
        self._check_trigger(declared)
        self.triggers.append(declared)
        return declared

    def topic(self, name: str, *, content_based_deduplication: bool = False) -> TopicAttributes:
        """Declare a topic's attributes: `content_based_deduplication` (FIFO topics, SNS's
        ContentBasedDeduplication). A topic needs no declaration otherwise: its
        subscriptions make it."""
        declared = TopicAttributes(topic=name, content_based_deduplication=content_based_deduplication)
        self._check_trigger(declared)
        self.triggers.append(declared)
        return declared

    def alarm(self, name: str, *, metric: str, threshold: float, function: str | None = None,
              queue: str | None = None, period: int = 60, evaluation_periods: int = 1,
              datapoints_to_alarm: int | None = None, comparison: str = "GreaterThanOrEqualToThreshold",
              statistic: str | None = None, treat_missing_data: str = "missing", target: str | None = None,
              description: str = "") -> AlarmTrigger:
        """Declare a CloudWatch metric alarm on `metric` of `function` (every function if
        None) or of `queue`, whose state changes go to `target` ("function:NAME" or
        "queue:NAME" or "topic:NAME") as CloudWatch's state-change events (see `AlarmTrigger`). What it
        names must be declared before it."""
        declared = AlarmTrigger(name=name, metric=metric, threshold=threshold, function_name=function or "",
                                queue_name=queue or "", period=period, evaluation_periods=evaluation_periods,
                                datapoints_to_alarm=datapoints_to_alarm or 0, comparison=comparison,
                                statistic=statistic or "", treat_missing_data=treat_missing_data,
                                target=target or "", description=description)
        declared.check_references(self)
        self._check_trigger(declared)
        self.triggers.append(declared)
        return declared

    def schedule(self, expression: str, handler: Handler | str | None = None, *, timezone: str = "UTC",
                 payload: Any = None, flexible_window: int | None = None, start: Any = None, end: Any = None,
                 catch_up: int | None = None, schedule_name: str | None = None, name: str | None = None,
                 **options: Any) -> Any:
        """Invoke a function on `rate(...)`, `cron(...)` or once `at(...)`, read in `timezone`, with
        an EventBridge `Scheduled Event` (see `ScheduleTrigger`)."""
        declared = ScheduleTrigger(expression=expression, timezone=timezone, payload=payload,
                                   flexible_window=flexible_window, start=start, end=end, catch_up=catch_up,
                                   schedule=schedule_name or "")
        return self.trigger(declared, handler, name=name, **options)

    def on_event(self, pattern: Mapping[str, Any] | str, handler: Handler | str | None = None, *,
                 bus: str = "default", input_path: str | None = None,
                 input_transformer: Mapping[str, Any] | None = None, retry_attempts: int = 185,
                 max_event_age: int = 86400, dlq: str | None = None, rule: str | None = None,
                 name: str | None = None, **options: Any) -> Any:
        """Invoke a function with the events of `bus` that `pattern` matches: an EventBridge
        rule (named `rule`, by default after the function) whose target is the function,
        with EventBridge's retry policy and dead-letter queue (see `EventRule`)."""
        def declare(fn: H) -> H:
            function = _function_name(fn, name)
            transformer = canonical_target(input_transformer) if input_transformer is not None else ""
            declared = EventRule(name=rule or function, bus=bus, pattern=pattern,  # type: ignore[arg-type]
                                 input_path=input_path, input_transformer=transformer, retry_attempts=retry_attempts,
                                 max_event_age=max_event_age, dlq=dlq or "")
            self._use_bus(bus, f"rule {declared.name!r}")
            return self.trigger(declared, fn, name=function, **options)

        return declare(handler) if handler is not None else declare

    def rule(self, name: str, *, pattern: Mapping[str, Any] | str, targets: Sequence[Mapping[str, Any]],
             bus: str = "default") -> EventRule:
        """Declare an EventBridge rule on `bus` sending the events `pattern` matches to each of
        `targets`: `{"function": f}`, `{"queue": q}`, `{"topic": t}` or `{"bus": b}`, each with
        `input_path` or `input_transformer` (AWS's InputPathsMap/InputTemplate) and a retry
        policy (`retry_attempts`, `max_event_age`, `dlq`); a FIFO queue with its
        `message_group_id` (EventBridge's SqsParameters). What it names must be declared before it."""
        if isinstance(targets, (str, Mapping)) or not targets:
            raise ConfigError(f"rule {name!r}: targets must be a non-empty list of targets such as {{'queue': 'q'}}")
        declared = EventRule(name=name, bus=bus, pattern=pattern, targets=tuple(targets))  # type: ignore[arg-type]
        check_rule_references(self, declared)
        self._check_trigger(declared)
        self._use_bus(bus, f"rule {name!r}")
        self.triggers.append(declared)
        return declared

    def bus(self, name: str) -> EventBus:
        """Declare a custom event bus (the default bus always exists)."""
        if name == "default":
            raise ConfigError("the default event bus always exists: declare only custom buses")
        declared = EventBus(name=name)
        self._check_trigger(declared)
        self.triggers.append(declared)
        return declared

    def archive(self, name: str, *, bus: str = "default", pattern: Mapping[str, Any] | str | None = None,
                retention_days: int = 0) -> EventArchive:
        """Archive the events of `bus` (those `pattern` matches) for `retention_days` (0:
        indefinitely), for `squall events replay`."""
        declared = EventArchive(name=name, bus=bus, pattern=pattern or "", retention_days=retention_days)  # type: ignore[arg-type]
        self._check_trigger(declared)
        self._use_bus(bus, f"archive {name!r}")
        self.triggers.append(declared)
        return declared

    def _use_bus(self, bus: str, what: str) -> None:
        declared = check_bus(self, bus, what)
        if declared is not None:
            self.triggers.append(declared)

    def trigger(self, trigger: Trigger, handler: Handler | str | None = None, *, name: str | None = None,
                **options: Any) -> Any:
        """Declare that `trigger` invokes the handler (a decorator without `handler`).

        `trigger` is the declaration of any registered trigger kind, checked against the
        app's other triggers (a route declared twice, a queue with two consumers).
        """
        self._check_trigger(trigger)
        return self._declare(trigger, handler, name, options)

    def _check_trigger(self, trigger: Trigger) -> None:
        source_for(trigger)
        for other in self.triggers:
            if reason := trigger.conflict(other):
                raise ConfigError(reason)

    def _declare(self, trigger: Trigger | None, handler: Handler | str | None, name: str | None,
                 options: dict[str, Any]) -> Any:
        unknown = set(options) - set(FUNCTION_OPTIONS)
        if unknown:
            raise ConfigError(f"unknown option(s) {sorted(unknown)}: expected {list(FUNCTION_OPTIONS)}")
        settings = {k: v for k, v in options.items() if v is not None}
        if self.environment or "environment" in settings:
            own = settings.get("environment", {})
            check_environment("environment", own)
            settings["environment"] = {**self.environment, **own}
        self._inherit_logging(settings)

        def register(fn: H) -> H:
            fn_name = _function_name(fn, name)
            self._add_function(FunctionConfig(fn_name, fn, **settings), explicit=settings)
            if trigger is not None:
                self.triggers.append(replace(trigger, function=fn_name))
            return fn

        if handler is not None:
            register(handler)
            return handler
        return register

    def _inherit_logging(self, settings: dict[str, Any]) -> None:
        """The app's logging options for those the function does not set; its levels only
        for a function in the JSON format (levels go with it)."""
        if "log_format" not in settings and self.log_format is not None:
            settings["log_format"] = self.log_format
        if settings.get("log_format") != LogFormat.JSON:
            return
        for option in ("application_log_level", "system_log_level"):
            if option not in settings and getattr(self, option) is not None:
                settings[option] = getattr(self, option)

    def _add_function(self, config: FunctionConfig, explicit: dict[str, Any]) -> None:
        existing = self.functions.get(config.name)
        if existing is None:
            self.functions[config.name] = config
            return
        if existing.handler is not config.handler and existing.handler != config.handler:
            raise ConfigError(f"function name {config.name!r} is declared twice with different handlers")
        for key, value in explicit.items():
            current = getattr(existing, key)
            default = getattr(FunctionConfig(config.name, config.handler), key)
            if current != default and current != value:
                raise ConfigError(f"function {config.name!r}: conflicting {key} ({current!r} and {value!r})")
        self.functions[config.name] = replace(existing, **explicit)

    def check_destinations(self) -> None:
        """ConfigError for an `on_success` / `on_failure` naming a function or queue the app
        does not declare. Run once the whole app is declared (at load), so a destination
        may be declared after the function that sends to it."""
        known = {TargetKind.FUNCTION: set(self.functions),
                 TargetKind.QUEUE: {q for t in self.queue_triggers for q in (t.queue, t.dlq)}}
        for config in self.functions.values():
            for option in ("on_success", "on_failure"):
                target = config.destination(option)
                if target is not None and target.kind in known and target.name not in known[target.kind]:
                    names = ", ".join(sorted(known[target.kind])) or "none"
                    raise ConfigError(f"{option} of {config.name!r}: unknown {target.kind} {target.name!r} "
                                      f"({target.kind}s: {names})")

    # ---- lookups --------------------------------------------------------------------

    def config(self, function: str) -> FunctionConfig:
        try:
            return self.functions[function]
        except KeyError:
            known = ", ".join(sorted(self.functions)) or "none"
            raise FunctionNotFound(f"unknown function {function!r} (functions: {known})") from None

    def locate(self, function: str) -> None:
        """Check that a 'module.attr' handler's module exists, without importing it: it is
        imported in each instance (`resolve`), once the function's environment is set, as
        Lambda imports a handler module when its execution environment initialises."""
        handler = self.config(function).handler
        if callable(handler):
            return
        module_name = handler.rpartition(".")[0]
        try:
            found = importlib.util.find_spec(module_name)
        except (ImportError, ValueError) as exc:
            raise ConfigError(f"handler {handler!r} of {function!r} cannot be loaded: {exc}") from None
        if found is None:
            raise ConfigError(f"handler {handler!r} of {function!r} cannot be loaded: No module named "
                              f"{module_name!r}")

    def resolve(self, function: str) -> Handler:
        """The callable for a function, importing a 'module.attr' handler from the app root
        (`squall.errors.InitFailed`, with Lambda's error type and message, if it cannot)."""
        from squall.runtime.loading import load_handler

        return load_handler(self, function)
