"""The process runtime: isolated function instances forked from a zygote.

Each instance is a process serving one function, one invocation at a time (Lambda's
model). Warm instances are reused most-recently-used first, so the others go idle and are
reaped after the keep-alive (scale to zero); `provisioned_concurrency` instances are
started up front and never reaped; `reserved_concurrency` caps instances. A timeout
kills the instance; a crash or out-of-memory replaces it. The node is never at risk.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import logging
import os
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, TextIO

from squall.core.health import Gate
from squall.core.lifecycle import PeriodicService, Progress, Service
from squall.core.pipeline import Handler, InvokeRequest
from squall.errors import (
    AppLoadError,
    FunctionTimeout,
    InitFailed,
    InstanceCrashed,
    InvalidPayload,
    InvocationError,
    OutOfMemory,
    RuntimeUnavailable,
)
from squall.loader import app_root
from squall.runtime import wire
from squall.runtime.base import FunctionLog, Runtime, RuntimeSettings
from squall.runtime.environment import Initialization, zygote_environment
from squall.runtime.invocation import Invocation, error_from_dict, too_large
from squall.runtime.platform import PlatformLog
from squall.runtime.sandbox import FREEZE_AFTER, Cell, Sandbox
from squall.runtime.slots import ClusterSlots, throttled

if TYPE_CHECKING:
    from squall.app import App, FunctionConfig

log = logging.getLogger("squall.runtime")


#: seconds the zygote has to answer a fork before it is taken for dead (stopped, wedged)
FORK_TIMEOUT = 5.0
#: restart delays after the zygote dies: the first, and the most (doubling in between)
RESTART_DELAY, MAX_RESTART_DELAY = 0.1, 30.0
#: a zygote that ran this long before dying restarts after the first delay again
STABLE_AFTER = 30.0


class Zygote:
    """The node's handle on its zygote process (see squall.runtime.zygote): starts it,
    forks instances through it, and supervises it.

    A zygote can die (the OOM killer, `kill -9`, a handler that finds its pid) or wedge
    (SIGSTOP). Either way the node restarts it, with a doubling delay while it keeps
    dying, and meanwhile `gate` is closed with the reason: cold starts fail at once with
    RuntimeUnavailable (503 at the gateway), queue consumers stop claiming, and the node
    reports itself unhealthy. Instances die with their zygote (PR_SET_PDEATHSIG).
    """

    def __init__(self, app_ref: str, backend_url: str, objects_url: str, output: TextIO | None = None):
        """`output` is where the functions' log goes (default: this process's stdout)."""
        self.app_ref = app_ref
        self.output = output
        self.backend_url = backend_url
        self.objects_url = objects_url
        self.process: subprocess.Popen[bytes] | None = None
        self.control: socket.socket | None = None
        self.gate = Gate()
        self.gate.close("the zygote has not started")
        #: the app's description, as the zygote first sent it (squall.manifest)
        self.manifest: dict[str, Any] | None = None
        #: bumped at every start: an instance forked by an earlier zygote died with it
        self.generation = 0
        self._tokens = itertools.count(1)
        self._forks: dict[int, asyncio.Future[int]] = {}
        self._exits: dict[int, asyncio.Future[int | None]] = {}
        self._ready: asyncio.Future[wire.ZygoteReady | wire.ZygoteFailed] | None = None
        self._chunks: list[str] = []
        self._stopping = False
        self._starting = False
        self._started_at = 0.0
        self._delay = RESTART_DELAY
        self._restart: asyncio.Task[None] | None = None
        #: how instances are contained (squall.runtime.sandbox): chosen at the first start,
        #: handed to every zygote in its environment
        self.sandbox = Sandbox()
        self._sandboxed = False

    async def start(self) -> dict[str, Any]:
        """Start the zygote; the app's manifest. AppLoadError if the app does not load."""
        loop = asyncio.get_running_loop()
        if not self._sandboxed:
            await asyncio.to_thread(self.sandbox.open, self.app_ref, self.backend_url, self.objects_url)
            self._sandboxed = True
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        try:
            self.process = subprocess.Popen(
                [sys.executable, "-P", "-m", "squall.runtime.zygote", str(theirs.fileno()), self.app_ref,
                 self.backend_url, self.objects_url],
                pass_fds=[theirs.fileno()],
                env={**zygote_environment(os.environ, str(app_root(self.app_ref))), "MALLOC_ARENA_MAX": "2",
                     **self.sandbox.environ()},
                stdout=self.output)
        except OSError:
            ours.close()
            raise
        finally:
            theirs.close()
        ours.setblocking(False)
        self.control = ours
        self._chunks = []
        self._ready = loop.create_future()
        loop.add_reader(ours, self._on_message)
        self._starting = True
        try:
            ready = await self._ready
            if isinstance(ready, wire.ZygoteFailed):
                raise AppLoadError(ready.message)
            try:
                manifest: dict[str, Any] = json.loads("".join(self._chunks))
            except ValueError:
                raise AppLoadError("the zygote sent a malformed app manifest") from None
        except AppLoadError:
            await self._close()
            raise
        finally:
            self._starting = False
        if self.manifest is None:
            self.manifest = manifest
        self.generation += 1
        self._started_at = time.monotonic()
        self.gate.open()
        return manifest

    def _on_message(self) -> None:
        assert self.control is not None
        while True:
            try:
                data = self.control.recv(65536)
            except BlockingIOError:
                return
            except OSError:
                data = b""
            if not data:
                self._lost()
                return
            try:
                message = wire.unpack(data)
            except wire.WireError:
                log.error("zygote sent a malformed message; restarting it")
                self._kill()
                return
            if isinstance(message, wire.Manifest):
                self._chunks.append(message.chunk)
            elif isinstance(message, (wire.ZygoteReady, wire.ZygoteFailed)):
                if self._ready is not None and not self._ready.done():
                    self._ready.set_result(message)
            elif isinstance(message, wire.Forked):
                future = self._forks.pop(message.token, None)
                if future is not None and not future.done():
                    future.set_result(message.pid)
            elif isinstance(message, wire.Exited):
                self._exit_future(message.pid).set_result(message.status)

    def _lost(self) -> None:
        """The zygote died: fail whatever waits on it, close the gate, restart it."""
        assert self.control is not None
        loop = asyncio.get_running_loop()
        loop.remove_reader(self.control)
        self.control.close()
        self.control = None
        if self._ready is not None and not self._ready.done():
            self._ready.set_result(wire.ZygoteFailed("the zygote process exited while loading the app"))
        error = RuntimeUnavailable("the zygote process exited", "Runtime.Unavailable")
        for future in self._forks.values():
            if not future.done():
                future.set_exception(error)
        self._forks.clear()
        for exit_notice in self._exits.values():  # a dead zygote sends none: nobody waits for them
            if not exit_notice.done():
                exit_notice.set_result(None)
        if self._stopping or self._starting:
            return  # stopping, or start() reports the failure
        self.gate.close("the zygote process exited; restarting it")
        self._restart = loop.create_task(self._supervise(), name="zygote-restart")

    async def _supervise(self) -> None:
        """Restart the zygote until it is back, doubling the delay while it keeps failing."""
        assert self.process is not None
        status = await asyncio.to_thread(self.process.wait)
        if time.monotonic() - self._started_at > STABLE_AFTER:
            self._delay = RESTART_DELAY
        while not self._stopping:
            log.error("zygote %d ended (%s); restarting it in %.1fs", self.process.pid, describe_returncode(status),
                      self._delay)
            self.gate.close(f"the zygote process ended ({describe_returncode(status)}); restarting it")
            await asyncio.sleep(self._delay)
            self._delay = min(self._delay * 2, MAX_RESTART_DELAY)
            if self._stopping:
                return
            try:
                manifest = await self.start()
            except (AppLoadError, OSError) as exc:  # the app, or the fork itself (short of memory, of fds)
                log.error("zygote restart failed: %s", exc)
                status = self.process.returncode if self.process.returncode is not None else 1
                continue
            if manifest != self.manifest:
                log.warning("the app changed on disk since the node started; restart the node to serve the new "
                            "declarations")
            log.info("zygote restarted (pid %d)", self.process.pid)
            return

    def _kill(self) -> None:
        """Take a wedged zygote down: its control socket then closes and `_lost` restarts it."""
        if self.process is not None and self.process.poll() is None:
            self.process.kill()

    def _exit_future(self, pid: int) -> asyncio.Future[int | None]:
        future = self._exits.get(pid)
        if future is None or future.done():
            future = self._exits[pid] = asyncio.get_running_loop().create_future()
        return future

    async def fork(self, function: str, initialization: Initialization) -> tuple[int, wire.Channel]:
        """A new instance of `function`: its pid and channel. RuntimeUnavailable while the
        zygote is down, or when it does not answer within FORK_TIMEOUT (it is then killed
        and restarted)."""
        if not self.gate.is_open or self.control is None:
            raise RuntimeUnavailable(f"cannot start an instance: {self.gate.reason or 'no zygote'}",
                                     "Runtime.Unavailable")
        ours, theirs = socket.socketpair()
        token = next(self._tokens)
        loop = asyncio.get_running_loop()
        future = self._forks[token] = loop.create_future()
        message = wire.pack(wire.Fork(token, function, initialization.value))
        deadline = loop.time() + FORK_TIMEOUT
        try:
            while True:
                try:
                    socket.send_fds(self.control, [message], [theirs.fileno()])
                    break
                except BlockingIOError:
                    if loop.time() > deadline:
                        raise TimeoutError from None
                    await asyncio.sleep(0.001)
                except (OSError, AttributeError):  # the zygote went away while we waited
                    raise RuntimeUnavailable("the zygote process exited", "Runtime.Unavailable") from None
            theirs.close()
            pid = await asyncio.wait_for(future, max(0.0, deadline - loop.time()))
        except TimeoutError:
            self._forks.pop(token, None)
            ours.close()
            log.error("zygote did not answer a fork within %.0fs (stopped or wedged); restarting it", FORK_TIMEOUT)
            self._kill()
            raise RuntimeUnavailable(f"the zygote did not answer within {FORK_TIMEOUT:.0f}s",
                                     "Runtime.Unavailable") from None
        finally:
            if theirs.fileno() != -1:
                theirs.close()
        _, channel = await loop.create_unix_connection(wire.Channel, sock=ours)
        return pid, channel

    async def exit_status(self, pid: int, timeout: float = 1.0) -> int | None:
        """How an instance ended (its wait status), as its zygote reports it; None if it
        cannot say within `timeout`, or has died itself."""
        if self.control is None:
            return None
        try:
            return await asyncio.wait_for(asyncio.shield(self._exit_future(pid)), timeout)
        except TimeoutError:
            return None
        finally:
            self._exits.pop(pid, None)

    def forget(self, pid: int) -> None:
        """Drop the exit notice of an instance the node killed itself."""
        future = self._exits.pop(pid, None)
        if future is not None and not future.done():
            future.cancel()

    async def stop(self) -> None:
        """Stop the zygote (its instances die with it) and release the sandbox."""
        self._stopping = True
        if self._restart is not None:
            self._restart.cancel()
        await self._close()
        if self._sandboxed:
            await asyncio.to_thread(self.sandbox.close)

    async def _close(self) -> None:
        if self.control is not None:
            try:
                asyncio.get_running_loop().remove_reader(self.control)
            except (ValueError, RuntimeError):
                pass
            self.control.close()
            self.control = None
        if self.process is not None:
            if self.process.poll() is None:
                try:
                    os.kill(self.process.pid, signal.SIGCONT)  # a stopped zygote cannot see its socket close
                except ProcessLookupError:
                    pass
            try:
                await asyncio.to_thread(self.process.wait, 5)
            except subprocess.TimeoutExpired:
                self.process.kill()
                await asyncio.to_thread(self.process.wait)


@dataclass(eq=False)
class Instance:
    pid: int
    channel: wire.Channel
    init_ms: float
    cell: Cell
    #: the zygote generation that forked it (Zygote.generation)
    generation: int = 0
    last_used: float = field(default_factory=time.monotonic)
    invocations: int = 0
    #: the spans that came with its last result (`wire.Spans`)
    spans: list[Any] | None = None
    #: whether the platform's START has been written for the invocation it is running
    log_opened: bool = False

    def kill(self) -> None:
        self.cell.kill()
        self.channel.close()


#: distinct init errors a pool remembers having logged
MAX_INIT_ERRORS = 32


class FunctionPool:
    """The instances of one function on this node."""

    def __init__(self, config: FunctionConfig, cap: int, zygote: Zygote, sandbox: Sandbox, log: FunctionLog):
        self.config = config
        self.log = log
        self.platform = PlatformLog(config)
        self.zygote = zygote
        self.sandbox = sandbox
        self.idle: list[Instance] = []
        self.live = 0
        self.busy = 0
        self.permits = asyncio.Semaphore(cap)
        self._sweep: asyncio.TimerHandle | None = None
        #: the init errors already in the node's log (each instance logs its own, as on Lambda)
        self._init_errors: set[tuple[str, str]] = set()

    async def acquire(self, wait: float | None) -> tuple[Instance, bool]:
        """A free instance (and whether it was a cold start); waits for a permit."""
        if wait is None or not self.permits.locked():
            await self.permits.acquire()
        else:
            try:
                async with asyncio.timeout(wait):
                    await self.permits.acquire()
            except TimeoutError:
                raise throttled(self.config.name) from None
        self.busy += 1
        try:
            while self.idle:
                instance = self.idle.pop()
                if not instance.channel.closed:
                    instance.cell.thaw()
                    return instance, False
                self.discard(instance)
            return await self.spawn(), True
        except BaseException:
            self.busy -= 1
            self.permits.release()
            raise

    def release(self, instance: Instance | None) -> None:
        """Give back the permit; a healthy instance goes back to the idle list."""
        if instance is not None:
            instance.last_used = time.monotonic()
            self.idle.append(instance)
            if self._sweep is None:
                self._sweep = asyncio.get_running_loop().call_later(FREEZE_AFTER, self._freeze_idle)
        self.busy -= 1
        self.permits.release()

    def _freeze_idle(self) -> None:
        """Freeze the instances idle for FREEZE_AFTER (Lambda freezes an idle environment
        too), and come back for those idle for less. One timer per pool, not a freeze per
        invocation: a busy function's instances are reused before the sweep, and pay nothing."""
        self._sweep = None
        now = time.monotonic()
        pending = False
        for instance in self.idle:
            if not instance.cell.frozen:
                if now - instance.last_used >= FREEZE_AFTER:
                    instance.cell.freeze()
                else:
                    pending = True
        if pending:
            self._sweep = asyncio.get_running_loop().call_later(FREEZE_AFTER, self._freeze_idle)

    async def spawn(self, initialization: Initialization = Initialization.ON_DEMAND) -> Instance:
        started = time.perf_counter()
        generation = self.zygote.generation
        pid, channel = await self.zygote.fork(self.config.name, initialization)
        self.live += 1
        expires = asyncio.get_running_loop().time() + 30
        try:
            message = await channel.receive(expires)
            while isinstance(message, wire.Log):  # what it wrote while it initialised
                self.log.write(self.config.name, "", "", message.text)
                message = await channel.receive(expires)
        except (ConnectionError, TimeoutError, wire.WireError):
            message = wire.InitError({"errorMessage": "instance exited during init", "errorType": "Runtime.ExitError"})
        if not isinstance(message, wire.Ready):
            self.live -= 1
            self.sandbox.kill(pid)
            channel.close()
            if isinstance(message, wire.InitError):
                raise self._init_failed(error_from_dict(message.error, InitFailed))
            raise InstanceCrashed(f"unexpected message from a starting instance: {type(message).__name__}")
        cell = self.sandbox.cell(pid, channel.close)
        cell.limit_cpu(self.config.memory_mb)  # initialised on free CPU; invocations run on its share
        # the instance's own measurement, the one its REPORT line gives (one figure for both),
        # bounded by the node's: an instance's word is not taken for what it is billed
        init_ms = min(max(message.init_ms, 0.0), (time.perf_counter() - started) * 1000)
        return Instance(pid, channel, init_ms, cell, generation)

    def _init_failed(self, error: InvocationError) -> InvocationError:
        """The node logs one line per distinct init error of a function, not one per
        invocation that failed with it (a bounded set: a message that changes every time
        cannot grow it without end)."""
        key = (error.error_type, str(error))
        if key not in self._init_errors:
            if len(self._init_errors) >= MAX_INIT_ERRORS:
                self._init_errors.clear()
            self._init_errors.add(key)
            log.error("function %s cannot initialise: %s: %s", self.config.name, error.error_type, error)
        return error

    def clear(self) -> None:
        """Stop every idle instance (the node is stopping)."""
        if self._sweep is not None:
            self._sweep.cancel()
            self._sweep = None
        for instance in self.idle:
            self.discard(instance)
        self.idle.clear()

    def discard(self, instance: Instance) -> None:
        instance.kill()
        self.zygote.forget(instance.pid)
        self.live -= 1

    def reap(self, keep_alive: float) -> int:
        """Stop instances idle longer than keep_alive, keeping the provisioned ones."""
        now = time.monotonic()
        keep = self.config.provisioned_concurrency
        expired = [i for i in self.idle[:max(0, len(self.idle) - keep)] if now - i.last_used > keep_alive]
        for instance in expired:
            self.idle.remove(instance)
            self.discard(instance)
        return len(expired)


class Reaper(PeriodicService):
    """Stops instances idle past the keep-alive (scale to zero), a few times a keep-alive."""

    name = "instance-reaper"

    def __init__(self, runtime: ProcessRuntime) -> None:
        super().__init__()
        self.runtime = runtime
        self.interval = min(1.0, max(0.05, runtime.settings.keep_alive / 4))

    async def step(self) -> Progress:
        for pool in self.runtime.pools.values():
            pool.reap(self.runtime.settings.keep_alive)
        self.runtime.sandbox.collect()
        return Progress()


class ProcessRuntime(Runtime):
    """Runs each function in its own forked instances."""

    def __init__(self, app: App, nested: Handler, zygote: Zygote, log: FunctionLog,
                 settings: RuntimeSettings | None = None, slots: ClusterSlots | None = None, node: str = ""):
        """`zygote` is started already: the node learnt the app from it (squall.manifest).
        What instances write goes to `log`."""
        super().__init__(app, nested, settings, slots, node)
        self.zygote = zygote
        self.log = log
        self.ready = zygote.gate
        self.sandbox = zygote.sandbox
        self.pools: dict[str, FunctionPool] = {}
        self.reaper = Reaper(self)

    async def start(self) -> None:
        for name, config in self.app.functions.items():
            cap = (config.reserved_concurrency if config.reserved_concurrency is not None
                   else self.settings.max_instances)
            self.pools[name] = FunctionPool(config, cap, self.zygote, self.sandbox, self.log)
        warm = [pool.spawn(Initialization.PROVISIONED) for pool in self.pools.values()
                for _ in range(pool.config.provisioned_concurrency)]
        for pool, instance in zip([p for p in self.pools.values() for _ in range(p.config.provisioned_concurrency)],
                                  await asyncio.gather(*warm), strict=True):
            instance.last_used = time.monotonic()
            instance.cell.freeze()
            pool.idle.append(instance)

    async def stop(self) -> None:
        if self.slots is not None:
            await self.slots.close()  # the cluster's slots this node kept for its next invocations
        for pool in self.pools.values():
            pool.clear()
        await self.zygote.stop()

    def services(self) -> list[Service]:
        return [self.reaper]

    def instance_counts(self) -> dict[str, dict[str, int]]:
        return {name: {"instances": pool.live, "busy": pool.busy} for name, pool in self.pools.items()}

    async def _run(self, config: FunctionConfig, request: InvokeRequest) -> Invocation:
        pool = self.pools[config.name]
        start = time.time()
        try:  # before an instance is taken: an event that cannot be sent must not cost one
            event = wire.Fragment(wire.to_json(request.event))
        except wire.WireError as exc:
            raise InvalidPayload(f"the event cannot be sent to the function: {exc}",
                                 "InvalidRequestContentException") from None
        instance, cold = await pool.acquire(request.wait)
        trace = request.trace_id
        instance.log_opened = False
        report_init_ms = instance.init_ms if instance.invocations == 0 else None
        healthy: Instance | None = None
        produced = 0
        try:
            deadline = time.time() + config.timeout
            message = wire.Invoke(request.request_id, event, deadline, wire.Headers(request.headers))
            result = await self._exchange(instance, pool, message, trace)
            if instance.cell.ran_out_of_memory:  # a process of its tree went over
                raise out_of_memory(config)
            invocation = Invocation(request.request_id, config.name, request.trigger, start, result.duration_ms,
                                    config.memory_mb, cold=cold, init_ms=instance.init_ms if cold else None,
                                    max_memory_mb=result.max_memory_mb)
            invocation.spans, instance.spans = instance.spans, None
            if pool.platform.counts_bytes:
                produced = len(wire.to_json(result.payload))
            if result.ok:
                invocation.result = result.payload
                healthy = instance
            else:
                invocation.error = error_from_dict(result.payload)
                if not isinstance(invocation.error, OutOfMemory):
                    healthy = instance
            instance.invocations += 1
        except InvocationError as error:
            invocation = Invocation(request.request_id, config.name, request.trigger, start,
                                    (time.time() - start) * 1000, config.memory_mb, cold=cold,
                                    init_ms=instance.init_ms if cold else None, error=error)
        finally:
            if healthy is None:
                pool.discard(instance)
            pool.release(healthy)
        # the platform's lines close the invocation's log, however it ended (one write
        # with START when the instance sent no output)
        self.log.write(config.name, request.request_id, trace,
                       pool.platform.end(invocation, report_init_ms, produced, instance.log_opened))
        return invocation

    async def _exchange(self, instance: Instance, pool: FunctionPool, request: wire.Invoke,
                        trace: str) -> wire.Result:
        """Send the invocation; take its output and serve its nested ctx.invoke calls until
        the result arrives."""
        config, platform = pool.config, pool.platform
        channel = instance.channel
        expires = asyncio.get_running_loop().time() + (request.deadline - time.time())
        try:
            channel.send(request)
            while True:
                message = await channel.receive(expires)
                if isinstance(message, wire.Log):  # the instance's word is taken for "outside one" only
                    if not message.request_id:
                        self.log.write(config.name, "", "", message.text)
                    elif instance.log_opened:
                        self.log.write(config.name, request.request_id, trace, message.text)
                    else:
                        instance.log_opened = True
                        self.log.write(config.name, request.request_id, trace,
                                       platform.start(request.request_id) + message.text)
                    continue
                if isinstance(message, wire.Result):
                    if message.request_id != request.request_id:
                        raise InstanceCrashed("the instance answered for another request (it wrote on its own "
                                              "socket)", "Runtime.ExitError")
                    return message
                if isinstance(message, wire.Spans):
                    instance.spans = message.spans
                    continue
                if isinstance(message, wire.Oversized):
                    raise too_large(message.size)
                if not isinstance(message, wire.Call):
                    raise InstanceCrashed(f"unexpected message from the instance: {type(message).__name__}",
                                          "Runtime.ExitError")
                async with asyncio.timeout_at(expires):
                    nested = await self.nested(InvokeRequest(message.function, message.payload,
                                                             headers=message.headers))
                error = nested.error
                channel.send(wire.Reply(True, nested.result) if error is None else wire.Reply(False, error.to_dict()))
        except TimeoutError:
            raise FunctionTimeout(f"Task timed out after {config.timeout:.2f} seconds", "Sandbox.Timedout") from None
        except wire.WireError as exc:
            raise InstanceCrashed(f"the instance sent a malformed message: {exc}", "Runtime.ExitError") from None
        except ConnectionError:
            if instance.cell.out_of_memory():
                raise out_of_memory(config) from None
            status = await self.zygote.exit_status(instance.pid)
            if not self.zygote.gate.is_open or self.zygote.generation != instance.generation:
                raise RuntimeUnavailable("the instance was lost with its zygote", "Runtime.Unavailable") from None
            raise InstanceCrashed(f"Runtime exited with error: {describe_exit(status)}", "Runtime.ExitError") from None


def out_of_memory(config: FunctionConfig) -> OutOfMemory:
    """Lambda's error when the instance's tree went over its memory (its cgroup's OOM kill)."""
    return OutOfMemory(f"Runtime exited with error: signal: killed (function exceeded its memory limit "
                       f"of {config.memory_mb} MB)", "Runtime.OutOfMemory")


def describe_returncode(code: int) -> str:
    """How a child process ended, from Popen's returncode (negative: the signal)."""
    return f"signal {_signal_name(-code)}" if code < 0 else f"exit status {code}"


def describe_exit(status: int | None) -> str:
    """Lambda's wording for how a runtime process ended."""
    if status is None:
        return "exited"
    if os.WIFSIGNALED(status):
        return f"signal: {_signal_name(os.WTERMSIG(status))}"
    return f"exit status {os.WEXITSTATUS(status)}"


def _signal_name(number: int) -> str:
    return signal.Signals(number).name if number in signal.Signals._value2member_map_ else str(number)
