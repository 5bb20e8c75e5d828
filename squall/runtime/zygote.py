"""The zygote: a process that has imported the app and forks function instances on request.

A cold start is then a fork (a few milliseconds), not an interpreter start and app import.
It speaks to its node over a SOCK_SEQPACKET socket (the messages are in `wire`): the node
sends `Fork(token, function, initialization)` with one end of a fresh socketpair attached (SCM_RIGHTS);
the zygote answers `Forked(token, pid)`, and `Exited(pid, status)` whenever a child ends,
so the node can say how an instance died (exit code or signal). Once the app is loaded it
first sends the app's description (`Manifest` pieces, see squall.manifest): the node
learns the app from it and never imports the app itself.

Run as `python -m squall.runtime.zygote FD APP_REF BACKEND_URL OBJECTS_URL`.
"""

from __future__ import annotations

import gc
import json
import os
import selectors
import signal
import socket
import sys
import time

from squall.backends import open_backend
from squall.core.linux import die_with_parent
from squall.errors import SquallError
from squall.loader import load_app
from squall.manifest import describe
from squall.objects import open_objects
from squall.runtime import instance, logs, output, sandbox, tracing, wire
from squall.runtime.environment import Initialization

#: characters of the manifest per datagram: JSON-escaped, they fit the node's 64 KiB reads
MANIFEST_CHUNK = 8000


def main(fd: int, app_ref: str, backend_url: str, objects_url: str) -> None:
    die_with_parent()
    plan = sandbox.take_plan()
    # Ctrl-C, or a SIGTERM sent to the whole process group (systemd, `timeout`), is for the
    # node: it stops gracefully, letting invocations in flight finish, then shuts us down
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    control = socket.socket(fileno=fd)
    output.install_streams()  # kept by reference at import time, they still reach each instance's buffer
    logs.install()  # before the app's code, as Lambda's runtime does: its basicConfig() is then a no-op
    try:
        # the backend's and object store's modules imported before any fork, and before the
        # app's code, whose instrumentation (aws-xray-sdk's patch_all) is not for Squall's calls
        open_backend(backend_url).close()
        open_objects(objects_url).preload()
        app = load_app(app_ref)
        tracing.preload()  # an app that uses OpenTelemetry: set up once, shared by every fork
        manifest = json.dumps(describe(app))
    except SquallError as exc:
        control.send(wire.pack(wire.ZygoteFailed(str(exc))))
        sys.exit(1)
    except (TypeError, ValueError) as exc:
        control.send(wire.pack(wire.ZygoteFailed(f"the app's declarations cannot be described as JSON: {exc}")))
        sys.exit(1)
    # Everything imported so far is shared with every instance. Frozen, the collector of an
    # instance never walks it: a collection costs what the invocation allocated, and does
    # not copy the shared pages by touching their objects' headers.
    gc.collect()
    gc.freeze()
    try:
        for start in range(0, len(manifest), MANIFEST_CHUNK):
            control.send(wire.pack(wire.Manifest(manifest[start:start + MANIFEST_CHUNK])))
        control.send(wire.pack(wire.ZygoteReady(os.getpid())))
    except OSError:
        sys.exit(0)  # the node stopped while we loaded the app

    wake_r, wake_w = os.pipe()
    os.set_blocking(wake_r, False)
    os.set_blocking(wake_w, False)
    signal.set_wakeup_fd(wake_w)
    signal.signal(signal.SIGCHLD, lambda *_: None)
    selector = selectors.DefaultSelector()
    selector.register(control, selectors.EVENT_READ)
    selector.register(wake_r, selectors.EVENT_READ)

    while True:
        for key, _ in selector.select():
            if key.fileobj == wake_r:
                _drain(wake_r)
                _report_exits(control)
                continue
            try:
                data, fds, _, _ = socket.recv_fds(control, 65536, 1)
            except ConnectionError:  # the node closed with our exit notices unread
                data = b""
            if not data:
                sys.exit(0)  # the node has gone; die_with_parent takes the instances
            request = wire.unpack(data)
            if not isinstance(request, wire.Fork) or not fds:
                continue
            sys.stdout.flush()
            sys.stderr.flush()
            started = time.perf_counter()
            pid = os.fork()
            if pid == 0:
                selector.close()
                control.close()
                os.close(wake_r)
                os.close(wake_w)
                signal.set_wakeup_fd(-1)
                signal.signal(signal.SIGCHLD, signal.SIG_DFL)
                # the node's event loop serves every function: an instance woken by a
                # request must not preempt it (SCHED_BATCH wakes without preempting; the
                # CPU shares are unchanged). The node's loop then finishes its turn, and
                # under load keeps a core's worth of dispatch instead of 0.7 of one
                os.sched_setscheduler(0, os.SCHED_BATCH, os.sched_param(0))
                code = 0
                try:
                    sandbox.confine(app, request.function, plan)
                    die_with_parent()  # after confine: a change of user clears it
                    instance.serve(socket.socket(fileno=fds[0]), app, request.function, backend_url, objects_url,
                                   started, Initialization(request.initialization))
                except BaseException:  # noqa: BLE001 - an instance never unwinds into the zygote loop
                    code = 1
                finally:
                    sys.stdout.flush()
                    os._exit(code)
            os.close(fds[0])
            try:
                control.send(wire.pack(wire.Forked(request.token, pid)))
            except OSError:
                sys.exit(0)


def _drain(fd: int) -> None:
    try:
        while os.read(fd, 512):
            pass
    except BlockingIOError:
        pass


def _report_exits(control: socket.socket) -> None:
    while True:
        try:
            pid, status = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return
        if pid == 0:
            return
        try:
            control.send(wire.pack(wire.Exited(pid, status)))
        except OSError:
            sys.exit(0)  # the node has gone


if __name__ == "__main__":
    main(int(sys.argv[1]), sys.argv[2], sys.argv[3], sys.argv[4])
