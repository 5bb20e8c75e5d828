"""Declarations: an `App` collects functions and the triggers that invoke them.

Nothing here runs anything. A node reads the declarations to build routes and pollers;
a function instance reads them to find its handler. Every argument is checked when it
is declared, so a bad app fails at load with a `ConfigError` naming the problem.
"""

from __future__ import annotations

import importlib
import re
from dataclasses import dataclass, field, replace
from typing import Any, Callable

from squall.errors import ConfigError, FunctionNotFound

Handler = Callable[[Any, Any], Any]

FUNCTION_NAME = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
QUEUE_NAME = re.compile(r"^[A-Za-z0-9_-]{1,80}$")
TABLE_NAME = re.compile(r"^[A-Za-z0-9_.-]{3,255}$")
HTTP_METHODS = {"GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS", "ANY"}
PATH_PATTERN = re.compile(r"^/([A-Za-z0-9._~\-]+|\{[A-Za-z_][A-Za-z0-9_]*\+?\})?(/([A-Za-z0-9._~\-]+|\{[A-Za-z_][A-Za-z0-9_]*\+?\}))*$")

#: Lambda's limits: timeout 1..900 s, memory 128..10240 MB.
MAX_TIMEOUT = 900
MIN_MEMORY_MB, MAX_MEMORY_MB = 128, 10240
#: Lambda's SQS event source limits.
MAX_BATCH_SIZE = 10000
MAX_VISIBILITY_TIMEOUT = 43200


def check_name(kind: str, name: Any, pattern: re.Pattern[str]) -> str:
    """Return `name` if it matches `pattern`, else raise a ConfigError that says why."""
    if not isinstance(name, str) or not pattern.match(name):
        raise ConfigError(f"invalid {kind} name {name!r}: must match {pattern.pattern}")
    return name


def check_queue_name(name: Any) -> str:
    """Queue names as SQS allows them; FIFO queues end in `.fifo`."""
    base = name[:-5] if isinstance(name, str) and name.endswith(".fifo") else name
    check_name("queue", base, QUEUE_NAME)
    return name


def _check_number(what: str, value: Any, low: float, high: float, integer: bool = False) -> None:
    kind = int if integer else (int, float)
    if isinstance(value, bool) or not isinstance(value, kind) or not low <= value <= high:
        raise ConfigError(f"invalid {what} {value!r}: must be a{'n integer' if integer else ' number'} "
                          f"from {low:g} to {high:g}")


@dataclass(frozen=True)
class FunctionConfig:
    """A function: its handler and the limits every instance of it runs under."""

    name: str
    handler: Handler | str
    timeout: float = 3.0
    memory_mb: int = 128
    reserved_concurrency: int | None = None
    provisioned_concurrency: int = 0

    def __post_init__(self) -> None:
        check_name("function", self.name, FUNCTION_NAME)
        if isinstance(self.handler, str):
            if not re.match(r"^[A-Za-z_][\w.]*\.[A-Za-z_]\w*$", self.handler):
                raise ConfigError(f"invalid handler {self.handler!r}: expected 'module.function'")
        elif not callable(self.handler):
            raise ConfigError(f"handler of {self.name!r} is not callable")
        if isinstance(self.timeout, bool) or not isinstance(self.timeout, (int, float)) or not 0 < self.timeout <= MAX_TIMEOUT:
            raise ConfigError(f"invalid timeout {self.timeout!r} for {self.name!r}: must be a number of "
                              f"seconds above 0 and at most {MAX_TIMEOUT}")
        _check_number(f"memory_mb for {self.name!r}", self.memory_mb, MIN_MEMORY_MB, MAX_MEMORY_MB, integer=True)
        if self.reserved_concurrency is not None:
            _check_number(f"reserved_concurrency for {self.name!r}", self.reserved_concurrency, 0, 1000, integer=True)
        _check_number(f"provisioned_concurrency for {self.name!r}", self.provisioned_concurrency, 0, 1000, integer=True)
        if self.reserved_concurrency is not None and self.provisioned_concurrency > self.reserved_concurrency:
            raise ConfigError(f"provisioned_concurrency ({self.provisioned_concurrency}) of {self.name!r} "
                              f"exceeds its reserved_concurrency ({self.reserved_concurrency})")


@dataclass(frozen=True)
class HttpRoute:
    """`method path` -> function, as an API Gateway HTTP API route key."""

    method: str
    path: str
    function: str

    @property
    def route_key(self) -> str:
        return f"{self.method} {self.path}"


@dataclass(frozen=True)
class QueueTrigger:
    """A queue whose messages are delivered to a function in SQS batches.

    Names are checked by `App.on_queue`; the node also builds triggers for its internal
    queues (asynchronous invocations), whose names users cannot declare.
    """

    queue: str
    function: str
    batch_size: int = 10
    max_receive_count: int = 5
    visibility_timeout: float = 30
    dlq: str = ""
    max_concurrency: int = 8

    def __post_init__(self) -> None:
        _check_number(f"batch_size for queue {self.queue!r}", self.batch_size, 1, MAX_BATCH_SIZE, integer=True)
        _check_number(f"max_receive_count for queue {self.queue!r}", self.max_receive_count, 1, 1000, integer=True)
        _check_number(f"visibility_timeout for queue {self.queue!r}", self.visibility_timeout, 0, MAX_VISIBILITY_TIMEOUT)
        _check_number(f"max_concurrency for queue {self.queue!r}", self.max_concurrency, 1, 1000, integer=True)
        if not self.dlq:
            object.__setattr__(self, "dlq", f"{self.queue}-dlq")
        if self.dlq == self.queue:
            raise ConfigError(f"queue {self.queue!r} cannot be its own dead-letter queue")

    def queue_config(self) -> dict[str, Any]:
        """What the backend's queue registry records for this queue."""
        return {"dlq": self.dlq, "function": self.function, "max_receive_count": self.max_receive_count,
                "visibility_timeout": self.visibility_timeout}


_FUNCTION_OPTIONS = ("timeout", "memory_mb", "reserved_concurrency", "provisioned_concurrency")


@dataclass
class App:
    """A Squall application: functions plus their triggers.

    ```python
    app = App("shop")

    @app.http("GET", "/items/{id}")
    def get_item(event, ctx): ...
    ```
    """

    name: str
    functions: dict[str, FunctionConfig] = field(default_factory=dict)
    routes: list[HttpRoute] = field(default_factory=list)
    queue_triggers: list[QueueTrigger] = field(default_factory=list)
    #: directory of the app file, searched for 'module.handler' strings
    root: str | None = None

    def __post_init__(self) -> None:
        check_name("app", self.name, FUNCTION_NAME)

    # ---- declarations -------------------------------------------------------------

    def function(self, handler: Handler | str | None = None, *, name: str | None = None,
                 timeout: float | None = None, memory_mb: int | None = None,
                 reserved_concurrency: int | None = None, provisioned_concurrency: int | None = None,
                 **unknown: Any):
        """Declare a function invoked directly (`squall invoke`, `ctx.invoke`).

        Used as `@app.function(timeout=5)` or, for an existing Lambda handler module,
        `app.function(name="resize", handler="resize.handler")`.
        """
        options = dict(timeout=timeout, memory_mb=memory_mb, reserved_concurrency=reserved_concurrency,
                       provisioned_concurrency=provisioned_concurrency, **unknown)
        return self._declare(handler, name, options, lambda fn: None)

    def http(self, method: str, path: str, handler: Handler | str | None = None, *,
             name: str | None = None, **options: Any):
        """Route `method path` (path parameters as `{id}`, greedy as `{proxy+}`) to a function.

        The handler receives an API Gateway HTTP API (payload format 2.0) event.
        """
        method = method.upper() if isinstance(method, str) else method
        if method not in HTTP_METHODS:
            raise ConfigError(f"invalid HTTP method {method!r}: expected one of {sorted(HTTP_METHODS)}")
        if not isinstance(path, str) or not PATH_PATTERN.match(path):
            raise ConfigError(f"invalid route path {path!r}: expected '/segment/{{param}}' form")
        for route in self.routes:
            if route.method == method and route.path == path:
                raise ConfigError(f"route {method} {path} is declared twice")

        def add(fn: str) -> None:
            self.routes.append(HttpRoute(method, path, fn))

        return self._declare(handler, name, options, add)

    def on_queue(self, queue: str, handler: Handler | str | None = None, *, batch_size: int = 10,
                 max_receive_count: int = 5, visibility_timeout: float = 30, dlq: str | None = None,
                 max_concurrency: int = 8, name: str | None = None, **options: Any):
        """Deliver messages of `queue` to a function in SQS batches.

        A message whose handler fails is retried with backoff; after `max_receive_count`
        receives it moves to `dlq` (default `<queue>-dlq`).
        """
        check_queue_name(queue)
        if dlq is not None:
            check_queue_name(dlq)
        if any(t.queue == queue for t in self.queue_triggers):
            raise ConfigError(f"queue {queue!r} already has a consumer")
        QueueTrigger(queue, "probe", batch_size, max_receive_count, visibility_timeout, dlq or "",
                     max_concurrency)  # checks the arguments before the handler is known

        def add(fn: str) -> None:
            self.queue_triggers.append(QueueTrigger(queue, fn, batch_size, max_receive_count,
                                                    visibility_timeout, dlq or "", max_concurrency))

        return self._declare(handler, name, options, add)

    def _declare(self, handler: Handler | str | None, name: str | None, options: dict[str, Any],
                 add_trigger: Callable[[str], None]):
        unknown = set(options) - set(_FUNCTION_OPTIONS)
        if unknown:
            raise ConfigError(f"unknown option(s) {sorted(unknown)}: expected {list(_FUNCTION_OPTIONS)}")
        settings = {k: v for k, v in options.items() if v is not None}

        def register(fn: Handler | str) -> Handler | str:
            fn_name = name if name is not None else (fn.replace(".", "_") if isinstance(fn, str) else getattr(fn, "__name__", ""))
            self._add_function(FunctionConfig(fn_name, fn, **settings), explicit=settings)
            add_trigger(fn_name)
            return fn

        if handler is not None:
            register(handler)
            return handler
        return register

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

    # ---- lookups --------------------------------------------------------------------

    def config(self, function: str) -> FunctionConfig:
        try:
            return self.functions[function]
        except KeyError:
            known = ", ".join(sorted(self.functions)) or "none"
            raise FunctionNotFound(f"unknown function {function!r} (functions: {known})") from None

    def resolve(self, function: str) -> Handler:
        """The callable for a function, importing 'module.attr' handlers from the app root."""
        handler = self.config(function).handler
        if callable(handler):
            return handler
        module_name, _, attr = handler.rpartition(".")
        try:
            module = importlib.import_module(module_name)
            target = getattr(module, attr)
        except (ImportError, AttributeError) as exc:
            raise ConfigError(f"handler {handler!r} of {function!r} cannot be loaded: {exc}") from None
        if not callable(target):
            raise ConfigError(f"handler {handler!r} of {function!r} is not callable")
        return target

    def queue_trigger(self, queue: str) -> QueueTrigger | None:
        return next((t for t in self.queue_triggers if t.queue == queue), None)

    def declared_queues(self) -> dict[str, dict[str, Any]]:
        """Every queue the app consumes or dead-letters into, with its registry config."""
        queues: dict[str, dict[str, Any]] = {}
        for trigger in self.queue_triggers:
            queues[trigger.queue] = trigger.queue_config()
            queues.setdefault(trigger.dlq, {"dlq_of": trigger.queue})
        return queues
