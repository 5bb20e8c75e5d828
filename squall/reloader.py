"""`squall dev` hot reload: run the node as a child and restart it when a .py file changes.

Restarting the whole node (as uvicorn --reload does) is what makes reload trustworthy: the
zygote, every instance and every route come from the new code. State survives in the
backend, and the old node stops gracefully first, so no acknowledged event is lost.
"""

from __future__ import annotations

import signal
import subprocess
import sys
from pathlib import Path

from watchfiles import PythonFilter, watch


def supervise(args: list[str], root: Path) -> int:
    child = subprocess.Popen(args)
    stop = False

    def interrupt(*_: object) -> None:
        nonlocal stop
        stop = True

    signal.signal(signal.SIGTERM, interrupt)
    try:
        for changes in watch(root, watch_filter=PythonFilter(ignore_paths=[root / ".squall"]),
                             rust_timeout=500, yield_on_timeout=True, raise_interrupt=False):
            if stop:
                break
            if not changes:
                continue
            names = ", ".join(sorted({Path(path).name for _, path in changes}))
            print(f"squall dev: {names} changed, reloading", file=sys.stderr, flush=True)
            _stop(child)
            child = subprocess.Popen(args)
    except KeyboardInterrupt:
        pass
    _stop(child)
    return 0


def _stop(child: subprocess.Popen) -> None:
    if child.poll() is None:
        child.send_signal(signal.SIGTERM)
        try:
            child.wait(30)
        except subprocess.TimeoutExpired:
            child.kill()
            child.wait()
