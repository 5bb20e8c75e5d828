"""The containment mechanisms of squall.runtime.sandbox on real processes: the
session-only fallback (any user) and cgroup v2's freeze and kill (where a v2 hierarchy is
writable; this machine's has no controllers, which those two do not need)."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from squall.runtime.sandbox import (
    CgroupV1,
    CgroupV2,
    Containment,
    Kind,
    Limits,
    Plan,
    SessionOnly,
    _mounts,
    _own_cgroups,
    _tree,
    cpu_quota_us,
)
from squall.runtime.scratch import Scratch
from tests.support import wait_until

TREE = """
import os, subprocess, sys, time
from squall.runtime.sandbox import {kind}, Limits
os.setsid()
{kind}({dirs!r}).join(os.getpid(), Limits(128))
if os.fork() == 0:  # a child that leaves the session, then orphans its own child
    os.setsid()
    if os.fork() == 0:
        time.sleep(60)
        os._exit(0)
    os._exit(0)
child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
print(child.pid, flush=True)
time.sleep(60)
"""


def start_tree(containment: Containment) -> tuple[subprocess.Popen, int]:
    source = textwrap.dedent(TREE).format(kind=type(containment).__name__, dirs=containment.dirs)
    process = subprocess.Popen([sys.executable, "-c", source], stdout=subprocess.PIPE, text=True)
    child = int(process.stdout.readline())
    return process, child


def state(pid: int) -> str:
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().rsplit(")", 1)[1].split()[0]
    except FileNotFoundError:
        return "gone"


def descendants_gone(pids: set[int]) -> bool:
    return all(state(pid) in ("gone", "Z", "X") for pid in pids)


def test_cpu_follows_memory_as_lambda_allocates_it():
    assert cpu_quota_us(1769) == 100_000
    assert cpu_quota_us(128) == 7_236
    assert cpu_quota_us(10240) == 578_858
    assert Limits(128, shared=1024).memory_bytes == 128 * 1024 * 1024 + 1024


def test_a_plan_survives_the_environment():
    plan = Plan(Kind.CGROUP1, {"memory": "/sys/fs/cgroup/memory/squall/1"}, 200_000)
    assert Plan.decode(plan.encode()) == plan
    plan = Plan(Kind.SESSION, {}, None, Scratch.DIRECTORY, ["/tmp/app"], "/tmp/squall-scratch-0/1")
    assert Plan.decode(plan.encode()) == plan


def test_session_only_stops_and_kills_the_tree_including_what_left_the_session():
    process, child = start_tree(SessionOnly({}))
    try:
        wait_until(lambda: len(_tree(process.pid)) == 3, timeout=5, message="the tree to be up")
        tree = _tree(process.pid)
        containment = SessionOnly({})
        containment.freeze(process.pid)
        wait_until(lambda: state(process.pid) == "T" and state(child) == "T", timeout=2, message="stopped")
        containment.thaw(process.pid)
        wait_until(lambda: state(process.pid) != "T", timeout=2, message="running again")
        containment.kill(process.pid)
        process.wait(5)
        wait_until(lambda: descendants_gone(tree), timeout=5, message="the whole tree to be killed")
    finally:
        process.kill()


def _v2_node_dir() -> Path | None:
    mounts, own = _mounts(), _own_cgroups()
    if "" not in mounts or "" not in own or not os.access(f"{mounts['']}{own['']}", os.W_OK):
        return None
    return Path(f"{mounts['']}{own[''].rstrip('/')}/squall/{os.getpid()}")


@pytest.mark.skipif(_v2_node_dir() is None, reason="no writable cgroup v2 hierarchy")
def test_cgroup_v2_freezes_and_kills_the_tree_and_removes_its_directory():
    node_dir = _v2_node_dir()
    assert node_dir is not None
    node_dir.mkdir(parents=True, exist_ok=True)
    containment = CgroupV2({"": str(node_dir)})
    process, child = start_tree(containment)
    try:
        leaf = node_dir / str(process.pid)
        wait_until(lambda: len((leaf / "cgroup.procs").read_text().split()) == 3, timeout=5, message="the tree")
        tasks = set(containment.tasks(process.pid))
        containment.freeze(process.pid)
        wait_until(lambda: "frozen 1" in (leaf / "cgroup.events").read_text(), timeout=2, message="frozen")
        containment.kill(process.pid)  # frozen: cgroup.kill still ends it
        process.wait(5)
        wait_until(lambda: descendants_gone(tasks), timeout=5, message="the whole tree to be killed")
        wait_until(lambda: containment.remove(process.pid), timeout=2, message="the directory to go")
        assert not leaf.exists()
    finally:
        process.kill()
        for _ in range(50):
            if containment.remove(process.pid):
                break
            time.sleep(0.02)
        containment.close()
        if not any(node_dir.parent.iterdir()):
            node_dir.parent.rmdir()


def _v1_dirs() -> dict[str, str] | None:
    mounts, own = _mounts(), _own_cgroups()
    if not all(c in mounts and c in own for c in CgroupV1.controllers) or not os.access(
            f"{mounts['freezer']}{own['freezer']}", os.W_OK):
        return None
    return {c: f"{mounts[c]}{own[c].rstrip('/')}/squall/{os.getpid()}" for c in CgroupV1.controllers}


def _open_files_under(directory: str) -> list[str]:
    found = []
    for fd in os.listdir("/proc/self/fd"):
        try:
            target = os.readlink(f"/proc/self/fd/{fd}")
        except OSError:
            continue
        if target.startswith(directory):
            found.append(target)
    return found


@pytest.mark.skipif(_v1_dirs() is None, reason="no writable cgroup v1 hierarchies")
def test_cgroup_v1_freezes_and_thaws_through_one_open_file_closed_at_removal():
    """The freezer file stays open from the first freeze to the removal (an open per
    freeze and thaw cost the node's event loop more than the writes)."""
    dirs = _v1_dirs()
    assert dirs is not None
    containment = CgroupV1(dirs)
    containment.open()
    process, child = start_tree(containment)
    freezer_state = Path(dirs["freezer"]) / str(process.pid) / "freezer.state"
    try:
        wait_until(lambda: len(containment.tasks(process.pid)) == 3, timeout=5, message="the tree")
        for _ in range(3):
            containment.freeze(process.pid)
            wait_until(lambda: freezer_state.read_text().strip() == "FROZEN", timeout=2, message="frozen")
            assert state(child) in ("S", "D")
            containment.thaw(process.pid)
            assert freezer_state.read_text().strip() == "THAWED"
        assert _open_files_under(str(freezer_state)) == [str(freezer_state)]  # one, reused
        containment.kill(process.pid)
        process.wait(5)
        wait_until(lambda: not containment.tasks(process.pid), timeout=2, message="the tree to go")
        os.rmdir(freezer_state.parent)  # its cgroup removed under the open file
        containment.freeze(process.pid)  # no error, and the file is closed
        assert _open_files_under(dirs["freezer"]) == []
        containment.thaw(process.pid)  # gone: nothing to thaw
        wait_until(lambda: containment.remove(process.pid), timeout=2, message="the directories to go")
        assert _open_files_under(dirs["freezer"]) == []
    finally:
        process.kill()
        containment.clear([process.pid])
    assert not Path(dirs["freezer"]).exists()
