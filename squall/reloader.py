"""`squall dev` hot reload: run the node as a child and restart it when a .py file changes.

Restarting the whole node (as uvicorn --reload does) is what makes reload trustworthy: the
zygote, every instance and every route come from the new code. State survives in the
backend, and the old node stops gracefully first, so no acknowledged event is lost.

The node never outlives its supervisor: the supervisor names itself in the node's
environment, and the node (`follow_supervisor`) asks Linux for a SIGTERM — its graceful
stop — when that process dies, even by SIGKILL; otherwise an orphaned node would keep the
port and the next `squall dev` would find it taken. A node that exits by itself is never
waited on in silence: the supervisor exits with its code, unless the node was started by
a reload, whose failure (a syntax error mid-edit) the next change may fix.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

from squall.core.linux import die_with_parent

#: the environment variable through which the supervisor gives the node its pid
SUPERVISOR_PID = "SQUALL_SUPERVISOR_PID"


def supervise(args: list[str], root: Path) -> int:
    """Run `args` (a `squall run` command), restarting it on changes under `root`; return
    the exit code for `squall dev`: 0 once stopped, the node's code if it ended by itself."""
    from watchfiles import PythonFilter, watch  # here: the node imports this module too

    env = {**os.environ, SUPERVISOR_PID: str(os.getpid())}
    child = subprocess.Popen(args, env=env)
    reloaded = False
    stop = False

    def interrupt(*_: object) -> None:
        nonlocal stop
        stop = True

    # Ctrl-C reaches the node too, which may exit before the next round: stop first, so that
    # is not mistaken for a node that ended by itself
    signal.signal(signal.SIGTERM, interrupt)
    signal.signal(signal.SIGINT, interrupt)
    for changes in watch(root, watch_filter=PythonFilter(ignore_paths=[root / ".squall"]),
                         rust_timeout=500, yield_on_timeout=True, raise_interrupt=False):
        if stop:
            break
        if changes:
            names = ", ".join(sorted({Path(path).name for _, path in changes}))
            print(f"squall dev: {names} changed, reloading", file=sys.stderr, flush=True)
            _stop(child)
            child, reloaded = subprocess.Popen(args, env=env), True
        elif child.returncode is None and (code := child.poll()) is not None:  # reported once
            ended = f"exited with code {code}" if code >= 0 else f"was killed by {signal.Signals(-code).name}"
            if not reloaded:
                print(f"squall dev: the node {ended}", file=sys.stderr, flush=True)
                return code if code >= 0 else 128 - code  # as a shell reports a signal
            print(f"squall dev: the node {ended}; waiting for a change", file=sys.stderr, flush=True)
    _stop(child)
    return 0


def follow_supervisor() -> None:
    """In the node: if a supervisor started it, receive SIGTERM when the supervisor dies.

    Exits at once if the supervisor is already gone (it died before the request took
    effect). The variable is removed so the zygote and instances do not inherit it.
    """
    pid = os.environ.pop(SUPERVISOR_PID, None)
    if pid is None:
        return
    if not die_with_parent(signal.SIGTERM):  # not Linux: nothing to ask for
        return
    if os.getppid() != int(pid):
        sys.exit("squall dev: the supervisor has exited; not starting the node")


def _stop(child: subprocess.Popen) -> None:
    if child.poll() is None:
        child.send_signal(signal.SIGTERM)
        try:
            child.wait(30)
        except subprocess.TimeoutExpired:
            child.kill()
            child.wait()
