"""The inside of a function instance: a process forked from the zygote that serves one
function, one invocation at a time, until the node closes its socket or kills it."""

from __future__ import annotations

import os
import resource
import socket
import threading
import time
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from squall.backends import Backend, open_backend
from squall.errors import InitFailed, OutOfMemory
from squall.objects import ObjectStore, open_objects
from squall.runtime import tracing, wire
from squall.runtime.context import Context
from squall.runtime.environment import Initialization, lambda_environment, log_stream_name, trace_header
from squall.runtime.invocation import error_from_dict, run_handler
from squall.runtime.loading import load_handler
from squall.runtime.logs import function_log
from squall.runtime.output import Output

if TYPE_CHECKING:
    from squall.app import App

MIB = 1024 * 1024


def limit_memory(memory_mb: int) -> None:
    """Cap the address space at what the instance was forked with plus `memory_mb`.

    The zygote's pages (interpreter and imported app) are shared and already mapped, so
    the budget is what the function may allocate on top of them; going over it raises
    MemoryError inside the handler, which the instance reports as Runtime.OutOfMemory.
    """
    with open("/proc/self/statm") as statm:
        mapped = int(statm.read().split()[0]) * resource.getpagesize()
    limit = mapped + memory_mb * MIB
    resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))  # a crash ends at once, without a core dump


def max_memory_mb() -> int:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss // 1024


class _Instance:
    def __init__(self, sock: socket.socket, app: App, function: str, backend_url: str, objects_url: str):
        self.sock = sock
        self.app = app
        self.function = function
        self.backend_url = backend_url
        self._backend: Backend | None = None
        self.objects_url = objects_url
        self._objects: ObjectStore | None = None
        self._call_lock = threading.Lock()
        self.output = Output(sock)
        self.known_queues: set[str] = set()

    def backend(self) -> Backend:
        """Opened on first use, in this process: connections never cross a fork."""
        if self._backend is None:
            self._backend = open_backend(self.backend_url)
        return self._backend

    def objects(self) -> ObjectStore:
        if self._objects is None:
            self._objects = open_objects(self.objects_url)
        return self._objects

    def call(self, function: str, payload: str, headers: Mapping[str, str]) -> Any:
        """ctx.invoke (the payload already JSON): ask the node to run the invocation and
        wait for its result."""
        with self._call_lock:
            self.output.send(wire.Call(function, wire.Fragment(payload), wire.Headers(headers)))
            reply = wire.recv(self.sock)
        assert isinstance(reply, wire.Reply)
        if reply.ok:
            return reply.value
        raise error_from_dict(reply.value)

    def serve(self, started: float, initialization: Initialization) -> None:
        config = self.app.config(self.function)
        log_stream = log_stream_name()
        os.environ.update(config.environment)  # layer 3 (squall.runtime.environment), then 4
        os.environ.update(lambda_environment(self.app, config, initialization, log_stream))
        time.tzset()  # TZ=:UTC, as on Lambda
        output = self.output
        output.capture()
        log = function_log(config)  # before the handler module's import, as Lambda's runtime does
        try:
            handler = load_handler(self.app, self.function)  # a 'module.handler' imports here, seeing the environment
        except InitFailed as failure:
            log.error(failure.error_type, str(failure), failure.stack)  # once per failed init, as on Lambda
            output.send(wire.InitError(failure.to_dict()))
            return
        limit_memory(config.memory_mb)
        init_ms = (time.perf_counter() - started) * 1000
        output.send(wire.Ready(init_ms))
        output.start_flusher()
        while True:
            try:
                request = wire.recv(self.sock)
            except (EOFError, ConnectionError):
                return
            assert isinstance(request, wire.Invoke)
            trace = tracing.InvocationTrace.of(request.headers)
            os.environ["_X_AMZN_TRACE_ID"] = trace_header(request.headers) if trace is None else trace.context.xray()
            ctx = Context(self.app, self.function, request.request_id, request.deadline, self.backend, self.call,
                          self.known_queues, self.objects, request.headers, log_stream, trace)
            output.begin(request.request_id)
            log.start(request.request_id)
            began = time.perf_counter()
            token = tracing.activate(trace)
            outcome = run_handler(handler, request.event, ctx)
            tracing.deactivate(token)
            duration = (time.perf_counter() - began) * 1000
            output.finish()
            memory = max_memory_mb()
            error = outcome.error
            if error is not None:
                # running out of memory is the platform's report, not a trace of the handler's
                log.error(error.error_type, str(error), None if isinstance(error, OutOfMemory) else error.stack,
                          request.request_id)
            log.end()
            # the spans made since the last result go in the same write, before it
            output.complete(wire.Result(request.request_id, outcome.ok, wire.Fragment(outcome.payload), duration,
                                        memory), tracing.frame() if tracing.pending else b"")
            if isinstance(error, OutOfMemory):
                return  # the heap may be in any state: the node replaces this instance


def serve(sock: socket.socket, app: App, function: str, backend_url: str, objects_url: str,
          started: float, initialization: Initialization) -> None:
    """Entry point in the forked child; returns when the instance should exit."""
    _Instance(sock, app, function, backend_url, objects_url).serve(started, initialization)
