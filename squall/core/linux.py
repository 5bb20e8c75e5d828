"""The Linux process controls Squall relies on (prctl), in one place."""

from __future__ import annotations

import ctypes
import signal

PR_SET_PDEATHSIG = 1
PR_SET_DUMPABLE = 4
PR_SET_CHILD_SUBREAPER = 36
PR_SET_NO_NEW_PRIVS = 38


def prctl(option: int, value: int) -> None:
    """prctl(2); OSError if the kernel refuses (or is not Linux)."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        failed = libc.prctl(option, value, 0, 0, 0) != 0
    except (OSError, AttributeError) as exc:
        raise OSError(f"prctl is not available: {exc}") from None
    if failed:
        raise OSError(ctypes.get_errno(), f"prctl({option}) failed")


def die_with_parent(sig: signal.Signals = signal.SIGKILL) -> bool:
    """Ask Linux to send this process `sig` when its parent dies, so nothing is orphaned.
    False where that cannot be asked (not Linux)."""
    try:
        prctl(PR_SET_PDEATHSIG, sig)
    except OSError:
        return False
    return True
