"""Containment of function instances: a handler cannot signal, trace or read the memory of
the node, its zygote or another function, cannot use more memory or CPU than its
function's budget, stops running when its invocation ends, and leaves nothing behind.

The node decides once how its instances are contained (`Sandbox.open`) and tells the
zygote through the environment (`SQUALL_SANDBOX`, a `Plan` the zygote takes once); every
forked instance confines itself right after the fork, before any of the function's code
runs (`confine`); the node holds a `Cell` per instance to freeze it between invocations
(Lambda freezes an idle execution environment), thaw it for the next one, notice the
moment its process dies, and kill its whole process tree.

Every instance runs in its own session (so `os.kill(0, 9)` reaches only its own tree),
non-dumpable (nobody but root may ptrace it or read `/proc/<pid>/mem`), with
`no_new_privs` (a setuid program cannot give privileges back). Its tree is contained by
the best mechanism the machine offers, chosen in this order:

- cgroup v2, where the node's cgroup can hand the memory, cpu and pids controllers down:
  a cgroup per instance (`cgroup.freeze`, `cgroup.kill`);
- cgroup v1, where the memory, cpu, pids and freezer hierarchies are writable;
- otherwise its session only: the instance is a child subreaper (orphans of its tree stay
  under it) and is stopped with SIGSTOP/SIGCONT of its process group.

With a cgroup the tree shares the function's memory (`memory_mb`, no swap), gets CPU in
proportion to it as Lambda allocates it (1,769 MB is one vCPU), and at most 1,024 tasks
(Lambda's limit on processes and threads). The cgroups live under the node's own cgroup,
`<controller>/<node's cgroup>/squall/<node pid>/<instance pid>`, and are removed when the
instance ends and when the node stops (or, after a node was killed, when the next node
starts).

When the node runs as root, instances also run as an unprivileged user: uid
`USER_BASE + 1 + n` for the app's n-th function (names in sorted order), gid `USER_BASE`
for all. They need the state database and the objects directory, so the node gives that
group read and write access to both (group ownership, setgid directories, umask 007 in
instances) and checks that every directory above them and the app is searchable by it;
if one is not, instances keep the node's user and the node says so once in its log.
"""

from __future__ import annotations

import asyncio
import errno
import json
import logging
import os
import signal
import stat
import sys
import threading
import time
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import urlparse

from squall.core.linux import PR_SET_CHILD_SUBREAPER, PR_SET_DUMPABLE, PR_SET_NO_NEW_PRIVS, prctl
from squall.runtime import scratch
from squall.runtime.scratch import Scratch, pid_alive

if TYPE_CHECKING:
    from squall.app import App

log = logging.getLogger("squall.sandbox")

ENV = "SQUALL_SANDBOX"
LAMBDA_MB_PER_VCPU = 1769
CPU_PERIOD_US = 100_000
MAX_TASKS = 1024
USER_BASE = 200_000
MIB = 1024 * 1024



class Kind(StrEnum):
    CGROUP2 = "cgroup2"
    CGROUP1 = "cgroup1"
    SESSION = "session"


@dataclass(frozen=True)
class Limits:
    """What one instance's tree may use."""

    memory_mb: int
    #: bytes of the zygote's pages resident in the instance at the fork: the tree's memory
    #: budget is `memory_mb` on top of them, as the handler process's address space limit is
    shared: int = 0

    @classmethod
    def at_fork(cls, memory_mb: int) -> Limits:
        with open("/proc/self/statm") as statm:
            resident = int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
        return cls(memory_mb, resident)

    @property
    def memory_bytes(self) -> int:
        return self.memory_mb * MIB + self.shared


#: seconds an idle instance runs on before it is frozen (squall.runtime.process frees them
#: in sweeps): what a thread a handler left behind may use, unbilled, after an invocation
FREEZE_AFTER = 0.01


def cpu_quota_us(memory_mb: int) -> int:
    """CPU time per `CPU_PERIOD_US`: memory_mb / 1769 of one CPU (at least 1 ms, the kernel's floor)."""
    return max(1000, round(CPU_PERIOD_US * memory_mb / LAMBDA_MB_PER_VCPU))


@dataclass(frozen=True)
class Plan:
    """How this node's instances are contained; crosses to the zygote in the environment."""

    kind: Kind
    #: controller -> this node's cgroup directory ("" for cgroup v2's single hierarchy)
    dirs: dict[str, str] = field(default_factory=dict)
    #: instances run as user_base + 1 + function index and group user_base; None: as the node's user
    user_base: int | None = None
    #: how instances get their private /tmp (squall.runtime.scratch)
    scratch: Scratch = Scratch.DIRECTORY
    #: the host directories under /tmp that instances still reach (bound into theirs)
    keep: list[str] = field(default_factory=list)
    #: where Scratch.DIRECTORY instances get theirs
    scratch_dir: str | None = None
    #: directories their user cannot search on the way to Python, with what to show of each
    reveal: list[tuple[str, list[str]]] = field(default_factory=list)

    def encode(self) -> str:
        return json.dumps({"kind": self.kind.value, "dirs": self.dirs, "user_base": self.user_base,
                           "scratch": self.scratch.value, "keep": self.keep, "scratch_dir": self.scratch_dir,
                           "reveal": self.reveal})

    @classmethod
    def decode(cls, text: str) -> Plan:
        data = json.loads(text)
        return cls(Kind(data["kind"]), dict(data["dirs"]), data["user_base"], Scratch(data["scratch"]),
                   list(data["keep"]), data["scratch_dir"], [(d, list(names)) for d, names in data["reveal"]])


def user_of(app: App, function: str, user_base: int) -> int:
    """The uid of a function's instances: distinct per function, the same on every start."""
    return user_base + 1 + sorted(app.functions).index(function)


# ---- inside the instance ---------------------------------------------------------------

def take_plan() -> Plan | None:
    """The zygote's plan from the node (`SQUALL_SANDBOX`), taken out of its environment
    before the app is imported: neither the app nor any instance sees it, and no instance
    decodes it again (after a fork every page a child touches is copied: decoding it in
    each cost a cold start about 70 page faults). None: a zygote started without a sandbox
    (not by a node)."""
    text = os.environ.pop(ENV, None)
    return None if text is None else Plan.decode(text)


def confine(app: App, function: str, plan: Plan | None) -> None:
    """Run in a freshly forked instance, before any of the function's code: its own
    session, its cgroup, its own /tmp, its user, non-dumpable. Raises OSError if any of it
    fails (the instance must not run unconfined)."""
    os.setsid()
    if plan is None:  # a zygote started without a sandbox (not by a node)
        return
    config = app.config(function)
    containment(plan).join(os.getpid(), Limits.at_fork(config.memory_mb))
    owner = None if plan.user_base is None else (user_of(app, function, plan.user_base), plan.user_base)
    scratch.enter(plan.scratch, config.ephemeral_storage_mb, plan.keep, owner, plan.scratch_dir, plan.reveal)
    if owner is not None:
        os.setgroups([])
        os.setgid(owner[1])
        os.setuid(owner[0])
        os.umask(0o007)
    prctl(PR_SET_NO_NEW_PRIVS, 1)
    prctl(PR_SET_DUMPABLE, 0)  # after setuid, which may reset it


# ---- containment mechanisms --------------------------------------------------------------

class Containment(ABC):
    """One mechanism: `join` runs in the instance, the rest in the node."""

    kind: Kind

    def __init__(self, dirs: dict[str, str]):
        self.dirs = dirs

    @abstractmethod
    def join(self, pid: int, limits: Limits) -> None:
        """Put the calling process (`pid`) into its own container, with `limits`."""

    @abstractmethod
    def freeze(self, pid: int) -> None: ...

    @abstractmethod
    def thaw(self, pid: int) -> None: ...

    @abstractmethod
    def kill(self, pid: int) -> None:
        """SIGKILL every process of the instance's tree, frozen or not."""

    def out_of_memory(self, pid: int) -> bool:
        """Whether the kernel killed a process of the tree for going over its memory."""
        return False

    def limit_cpu(self, pid: int, memory_mb: int) -> None:  # noqa: B027 - without cgroups there is no share
        """Give the tree its share of a CPU, from now on: an instance initialises on whatever
        CPU is free (as Lambda's init phase is not held to the share), and runs its
        invocations on `memory_mb / 1769` of one."""

    def watch_memory(self, pid: int) -> tuple[int, ...]:
        """Descriptors that become readable when the tree runs out of memory (the first is
        to be drained and all closed by the caller); none if the kernel handles it alone."""
        return ()

    def remove(self, pid: int) -> bool:
        """Remove the instance's container once its processes are gone; False: not yet."""
        return True

    def open(self) -> None:  # noqa: B027 - optional: the session needs no directories
        """Node side: create this node's directories, clearing any a killed node left."""

    def close(self) -> None:  # noqa: B027 - optional, as open
        """Node side: remove this node's directories (their instances are gone)."""


def _write(path: str, value: str) -> None:
    fd = os.open(path, os.O_WRONLY)
    try:
        os.write(fd, value.encode())
    finally:
        os.close(fd)


def _read(path: str) -> str:
    with open(path) as f:
        return f.read()


def _rmdir(path: str) -> bool:
    try:
        os.rmdir(path)
    except FileNotFoundError:
        pass
    except OSError as exc:
        if exc.errno in (errno.EBUSY, errno.ENOTEMPTY):
            return False
        raise
    return True


class _Cgroups(Containment):
    """What both cgroup versions share: a directory per instance under the node's."""

    controllers: tuple[str, ...]
    #: the freezer's controller and file, and what it takes to freeze and to thaw
    freezer: tuple[str, str, str, str]
    #: the controller and file whose `oom_kill` line counts the tree's out-of-memory kills
    memory_events: tuple[str, str]

    def __init__(self, dirs: dict[str, str]):
        super().__init__(dirs)
        #: each instance's freezer file, kept open from its first freeze to its removal:
        #: opening it (a path walk in the cgroup file system) cost three times the write,
        #: and a function whose instances idle between invocations is frozen and thawed
        #: around each one (a burst of schedules: a fifth of the node's event loop)
        self._freezers: dict[int, int] = {}
        self._freezers_lock = threading.Lock()  # kill() and close() may run on other threads

    def leaf(self, controller: str, pid: int) -> str:
        return f"{self.dirs[controller]}/{pid}"

    def _set(self, controller: str, pid: int, name: str, value: str) -> None:
        try:
            _write(f"{self.leaf(controller, pid)}/{name}", value)
        except FileNotFoundError:  # the instance has already gone
            pass

    def freeze(self, pid: int) -> None:
        self._set_freezer(pid, self.freezer[2])

    def thaw(self, pid: int) -> None:
        self._set_freezer(pid, self.freezer[3])

    def _set_freezer(self, pid: int, state: str) -> None:
        controller, name, _, _ = self.freezer
        with self._freezers_lock:
            fd = self._freezers.get(pid)
            if fd is None:
                try:
                    fd = self._freezers[pid] = os.open(f"{self.leaf(controller, pid)}/{name}",
                                                       os.O_WRONLY | os.O_CLOEXEC)
                except FileNotFoundError:  # the instance has already gone
                    return
            try:
                os.write(fd, state.encode())
            except OSError as exc:
                if exc.errno != errno.ENODEV:
                    raise
                # its cgroup was removed under the open file: the instance has gone
                os.close(self._freezers.pop(pid))

    def memory_counts(self, pid: int) -> dict[str, str]:
        controller, name = self.memory_events
        try:
            text = _read(f"{self.leaf(controller, pid)}/{name}")
        except FileNotFoundError:
            return {}
        return dict(line.split() for line in text.splitlines() if line)

    def out_of_memory(self, pid: int) -> bool:
        return int(self.memory_counts(pid).get("oom_kill", "0")) > 0

    def tasks(self, pid: int) -> list[int]:
        try:
            return [int(line) for line in _read(f"{self.leaf(self.controllers[0], pid)}/cgroup.procs").split()]
        except FileNotFoundError:
            return []

    def remove(self, pid: int) -> bool:
        with self._freezers_lock:
            fd = self._freezers.pop(pid, None)
        if fd is not None:
            os.close(fd)
        return all([_rmdir(self.leaf(c, pid)) for c in self.controllers])

    def open(self) -> None:
        for directory in self.dirs.values():
            os.makedirs(directory, exist_ok=True)
        self._sweep_stale()

    def _sweep_stale(self) -> None:
        """Kill and remove what nodes that are gone (killed, not stopped) left behind."""
        for node_dir in Path(self.dirs[self.controllers[0]]).parent.iterdir():
            if node_dir.is_dir() and node_dir.name.isdigit() and not pid_alive(int(node_dir.name)):
                stale = type(self)({c: str(Path(d).parent / node_dir.name) for c, d in self.dirs.items()})
                stale.clear(int(leaf.name) for leaf in node_dir.iterdir() if leaf.name.isdigit())

    def clear(self, pids: Iterable[int], wait: float = 1.0) -> None:
        """Kill these instances' trees and remove their directories and this node's."""
        pending = set(pids)
        for pid in pending:
            self.kill(pid)
        deadline = time.monotonic() + wait
        while pending and time.monotonic() < deadline:
            pending = {pid for pid in pending if not self.remove(pid)}
            if pending:
                time.sleep(0.01)
        self.close()

    def close(self) -> None:
        for directory in self.dirs.values():
            _rmdir(directory)


class CgroupV1(_Cgroups):
    """Separate memory, cpu, pids and freezer hierarchies, one directory in each."""

    kind = Kind.CGROUP1
    controllers = ("memory", "cpu", "pids", "freezer")
    freezer = ("freezer", "freezer.state", "FROZEN", "THAWED")
    memory_events = ("memory", "memory.oom_control")
    #: an empty cgroup kept frozen while the node runs. The kernel switches its freezer
    #: machinery on while any cgroup is frozen, and switching it costs about 90 µs (a
    #: code patch on every CPU); kept on, a freeze or thaw is a 1 µs flag write.
    ANCHOR = "anchor"

    def join(self, pid: int, limits: Limits) -> None:
        memory = self.leaf("memory", pid)
        os.makedirs(memory, exist_ok=True)
        _write(f"{memory}/memory.limit_in_bytes", str(limits.memory_bytes))
        try:  # the same figure with swap: none of it may go to swap
            _write(f"{memory}/memory.memsw.limit_in_bytes", str(limits.memory_bytes))
        except OSError:  # no swap accounting on this kernel: without swap, nothing to limit
            pass
        # Out of memory, the tree waits for the node, which kills all of it (watch_memory),
        # as Lambda ends the whole environment; the kernel would kill one process at a time
        # and let the others go on allocating, slowly, on the function's share of a CPU.
        _write(f"{memory}/memory.oom_control", "1")
        cpu = self.leaf("cpu", pid)
        os.makedirs(cpu, exist_ok=True)
        _write(f"{cpu}/cpu.cfs_period_us", str(CPU_PERIOD_US))
        _write(f"{cpu}/cpu.cfs_quota_us", "-1")  # no share until it is ready (limit_cpu)
        pids = self.leaf("pids", pid)
        os.makedirs(pids, exist_ok=True)
        _write(f"{pids}/pids.max", str(MAX_TASKS))
        os.makedirs(self.leaf("freezer", pid), exist_ok=True)
        for controller in self.controllers:
            _write(f"{self.leaf(controller, pid)}/cgroup.procs", str(pid))

    def limit_cpu(self, pid: int, memory_mb: int) -> None:
        self._set("cpu", pid, "cpu.cfs_quota_us", str(cpu_quota_us(memory_mb)))

    def kill(self, pid: int) -> None:
        """Frozen first, so nothing forks between the reading of the task list and the
        kill; thawed after, so that the kill is delivered on kernels that hold it."""
        self.freeze(pid)
        for _ in range(3):
            tasks = self.tasks(pid)
            if not tasks:
                break
            for task in tasks:
                try:
                    os.kill(task, signal.SIGKILL)
                except ProcessLookupError:
                    pass
        self.thaw(pid)

    def out_of_memory(self, pid: int) -> bool:
        return self.memory_counts(pid).get("under_oom") == "1" or super().out_of_memory(pid)

    def watch_memory(self, pid: int) -> tuple[int, ...]:
        """An eventfd the memory cgroup signals on OOM (cgroup.event_control)."""
        control = os.open(f"{self.leaf('memory', pid)}/memory.oom_control", os.O_RDONLY | os.O_CLOEXEC)
        event = os.eventfd(0, os.EFD_CLOEXEC | os.EFD_NONBLOCK)
        try:
            _write(f"{self.leaf('memory', pid)}/cgroup.event_control", f"{event} {control}")
        except OSError:
            os.close(event)
            os.close(control)
            raise
        return event, control

    def open(self) -> None:
        super().open()
        anchor = f"{self.dirs['freezer']}/{self.ANCHOR}"
        os.makedirs(anchor, exist_ok=True)
        _write(f"{anchor}/freezer.state", "FROZEN")

    def close(self) -> None:
        anchor = f"{self.dirs['freezer']}/{self.ANCHOR}"
        if os.path.isdir(anchor):
            _write(f"{anchor}/freezer.state", "THAWED")
            _rmdir(anchor)
        super().close()


class CgroupV2(_Cgroups):
    """The unified hierarchy: one directory per instance; limits where the controllers are on."""

    kind = Kind.CGROUP2
    controllers = ("",)
    freezer = ("", "cgroup.freeze", "1", "0")
    memory_events = ("", "memory.events")

    def join(self, pid: int, limits: Limits) -> None:
        leaf = self.leaf("", pid)
        os.makedirs(leaf, exist_ok=True)
        for name, value in (("memory.max", str(limits.memory_bytes)), ("memory.swap.max", "0"),
                            ("memory.oom.group", "1"),  # out of memory, the kernel kills the whole tree
                            ("cpu.max", f"max {CPU_PERIOD_US}"),  # no share until it is ready (limit_cpu)
                            ("pids.max", str(MAX_TASKS))):
            if os.path.exists(f"{leaf}/{name}"):  # the controller is enabled (Sandbox.open requires it)
                _write(f"{leaf}/{name}", value)
        _write(f"{leaf}/cgroup.procs", str(pid))

    def limit_cpu(self, pid: int, memory_mb: int) -> None:
        if os.path.exists(f"{self.leaf('', pid)}/cpu.max"):
            self._set("", pid, "cpu.max", f"{cpu_quota_us(memory_mb)} {CPU_PERIOD_US}")

    def kill(self, pid: int) -> None:
        self._set("", pid, "cgroup.kill", "1")  # the whole tree, frozen or not, at once

    def open(self) -> None:
        """Enable the controllers on the way down to this node's directory."""
        node_dir = Path(self.dirs[""])
        for directory in (node_dir.parent.parent, node_dir.parent, node_dir):
            directory.mkdir(exist_ok=True)
            _write(str(directory / "cgroup.subtree_control"), "+memory +cpu +pids")
        self._sweep_stale()


class SessionOnly(Containment):
    """No cgroup: the instance's session and its subreaper keep its tree together."""

    kind = Kind.SESSION

    def join(self, pid: int, limits: Limits) -> None:
        prctl(PR_SET_CHILD_SUBREAPER, 1)

    def _signal_group(self, pid: int, sig: signal.Signals) -> None:
        try:
            os.killpg(pid, sig)
        except (ProcessLookupError, PermissionError):
            pass

    def freeze(self, pid: int) -> None:
        self._signal_group(pid, signal.SIGSTOP)

    def thaw(self, pid: int) -> None:
        self._signal_group(pid, signal.SIGCONT)

    def kill(self, pid: int) -> None:
        """The instance, its session and its descendants (a process that left the session
        is still a descendant: the instance, a subreaper, adopts its orphans)."""
        for _ in range(3):
            victims = _tree(pid)
            if not victims:
                return
            for victim in victims:
                try:
                    os.kill(victim, signal.SIGKILL)
                except (ProcessLookupError, PermissionError):
                    pass


def _tree(root: int) -> set[int]:
    """Live processes in `root`'s session or below it (one scan of /proc)."""
    parents: dict[int, int] = {}
    members: set[int] = set()
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            text = _read(f"/proc/{entry.name}/stat")
        except OSError:
            continue
        fields = text[text.rindex(")") + 2:].split()  # state ppid pgrp session ...
        if fields[0] in ("Z", "X"):
            continue
        pid = int(entry.name)
        parents[pid] = int(fields[1])
        if pid == root or int(fields[3]) == root:
            members.add(pid)
    changed = True
    while changed:
        below = {pid for pid, parent in parents.items() if parent in members and pid not in members}
        members |= below
        changed = bool(below)
    return members


def containment(plan: Plan) -> Containment:
    kinds: dict[Kind, type[Containment]] = {Kind.CGROUP2: CgroupV2, Kind.CGROUP1: CgroupV1, Kind.SESSION: SessionOnly}
    return kinds[plan.kind](plan.dirs)


# ---- choosing, on the node ---------------------------------------------------------------

def _own_cgroups() -> dict[str, str]:
    """This process's cgroup per hierarchy ("" for v2), from /proc/self/cgroup."""
    own: dict[str, str] = {}
    for line in _read("/proc/self/cgroup").splitlines():
        _, controllers, path = line.split(":", 2)
        for controller in controllers.split(",") if controllers else [""]:
            own[controller] = path
    return own


def _mounts() -> dict[str, str]:
    """Mount point per hierarchy: v1 by controller, "" for v2."""
    points: dict[str, str] = {}
    for line in _read("/proc/self/mounts").splitlines():
        _, point, kind, options = line.split()[:4]
        if kind == "cgroup2":
            points.setdefault("", point)
        elif kind == "cgroup":
            for option in options.split(","):
                points.setdefault(option, point)
    return points


def _node_dir(mount: str, own: str) -> str:
    return f"{mount}{own.rstrip('/')}/squall/{os.getpid()}"


def _candidates() -> Iterable[Containment]:
    """Every mechanism the machine appears to offer, best first."""
    try:
        mounts, own = _mounts(), _own_cgroups()
        v2 = _read(f"{mounts['']}{own['']}/cgroup.controllers").split() if "" in mounts and "" in own else []
    except OSError:
        mounts, own, v2 = {}, {}, []
    if {"memory", "cpu", "pids"} <= set(v2):
        yield CgroupV2({"": _node_dir(mounts[""], own[""])})
    if all(c in mounts and c in own for c in CgroupV1.controllers):
        yield CgroupV1({c: _node_dir(mounts[c], own[c]) for c in CgroupV1.controllers})
    yield SessionOnly({})


def choose() -> Containment:
    """The best mechanism that works here, opened."""
    for candidate in _candidates():
        try:
            candidate.open()
            return candidate
        except OSError as exc:
            log.info("sandbox: %s is not usable (%s)", candidate.kind, exc)
    raise AssertionError("SessionOnly always opens")


# ---- file access for instances running as another user ---------------------------------

def _may_search(directory: Path, gid: int) -> bool:
    """Whether the instance group may search `directory` itself (its parents aside)."""
    mode = directory.stat()
    return bool(mode.st_mode & stat.S_IXOTH or (mode.st_gid == gid and mode.st_mode & stat.S_IXGRP))


def _searchable(path: Path, gid: int) -> Path | None:
    """The first directory from / down to `path` that the instance group cannot search."""
    for directory in [*reversed(path.parents), path]:
        if not _may_search(directory, gid):
            return directory
    return None


def python_path() -> list[Path]:
    """The directories instances import from besides the app's (the zygote's path is the
    node's): the standard library and site-packages, which a lazy import reads."""
    return sorted({Path(entry).resolve() for entry in sys.path if entry and Path(entry).is_dir()})


def _share(directory: Path, gid: int, files: Iterable[Path] = ()) -> None:
    """Give the instance group read-write access to `directory` (new entries inherit the
    group through setgid) and to `files` in it."""
    os.chown(directory, -1, gid)
    os.chmod(directory, stat.S_IMODE(directory.stat().st_mode) | stat.S_IRWXG | stat.S_ISGID)
    for file in files:
        if file.exists():
            os.chown(file, -1, gid)
            os.chmod(file, stat.S_IMODE(file.stat().st_mode) | stat.S_IRGRP | stat.S_IWGRP)


def _local_objects(objects_url: str) -> Path | None:
    if objects_url.startswith("s3://"):
        return None
    return Path(urlparse(objects_url).path if objects_url.startswith("file://") else objects_url).resolve()


def _database(backend_url: str) -> list[Path]:
    """The state database's files (itself first, then its companions), if it is SQLite."""
    if not backend_url.startswith("sqlite:///"):
        return []
    from squall.backends.sqlite.core import COMPANION_SUFFIXES, parse_url

    path = Path(parse_url(backend_url).path).resolve()
    return [path, *(Path(f"{path}{suffix}") for suffix in COMPANION_SUFFIXES)]


def instance_directories(app_ref: str, backend_url: str, objects_url: str) -> list[Path]:
    """The directories instances work in: the app's, the state database's, the objects'."""
    database, objects = _database(backend_url), _local_objects(objects_url)
    return [Path(app_ref.partition(":")[0]).resolve().parent, *([database[0].parent] if database else []),
            *([objects] if objects else [])]


def grant_files(app_ref: str, backend_url: str, objects_url: str, gid: int) -> str | None:
    """Make what instances need reachable by group `gid`; the reason if it cannot be."""
    needed: list[Path] = [Path(app_ref.partition(":")[0]).resolve().parent]
    shared: list[tuple[Path, list[Path]]] = []
    database = _database(backend_url)
    if database:
        shared.append((database[0].parent, database))
    objects = _local_objects(objects_url)
    if objects is not None:
        objects.mkdir(parents=True, exist_ok=True)
        shared += [(Path(root), []) for root, _, _ in os.walk(objects)]
    for path in needed + [directory for directory, _ in shared]:
        blocked = _searchable(path, gid)
        if blocked is not None:
            return f"{blocked} is not searchable by other users"
    for directory, files in shared:
        _share(directory, gid, files)
    return None


# ---- the node's side ---------------------------------------------------------------------

class Cell:
    """The node's handle on one instance's container."""

    def __init__(self, sandbox: Sandbox, pid: int, on_exit: Callable[[], None]):
        self.sandbox = sandbox
        self.pid = pid
        self._on_exit = on_exit
        self._ran_out = False
        self.frozen = False
        self._readers: list[int] = []
        self._fds: list[int] = []
        try:  # the instance's death is seen at once, even if a child still holds its socket
            self._watch(os.pidfd_open(pid), self._exited)
        except OSError:  # already gone: the socket's EOF tells
            pass
        try:
            memory = sandbox.containment.watch_memory(pid)
        except OSError as exc:
            log.warning("cannot watch instance %d for running out of memory: %s", pid, exc)
            memory = ()
        if memory:
            self._watch(memory[0], self._out_of_memory)
            self._fds += memory[1:]

    def _watch(self, fd: int, callback: Callable[[], None]) -> None:
        asyncio.get_running_loop().add_reader(fd, callback)
        self._readers.append(fd)
        self._fds.append(fd)

    def _exited(self) -> None:
        self._close_fds()
        self._on_exit()

    def _out_of_memory(self) -> None:
        self._ran_out = True
        self.kill()
        self._on_exit()

    def freeze(self) -> None:
        """Stop every process of the tree (an idle instance does not run, as on Lambda)."""
        if not self.frozen:
            self.sandbox.containment.freeze(self.pid)
            self.frozen = True

    def limit_cpu(self, memory_mb: int) -> None:
        self.sandbox.containment.limit_cpu(self.pid, memory_mb)

    def thaw(self) -> None:
        """Let the tree run again (nothing to do if it was not frozen yet)."""
        if self.frozen:
            self.sandbox.containment.thaw(self.pid)
            self.frozen = False

    @property
    def ran_out_of_memory(self) -> bool:
        """The tree went over its memory, as the node was told (cheap: for every invocation)."""
        return self._ran_out

    def out_of_memory(self) -> bool:
        """The same, or the kernel killed a process of it for that (asks the kernel: for a crash)."""
        return self._ran_out or self.sandbox.containment.out_of_memory(self.pid)

    def kill(self) -> None:
        """Kill the tree; the container goes now or at the sandbox's next collect."""
        self._close_fds()
        self.sandbox.kill(self.pid)

    def _close_fds(self) -> None:
        loop = asyncio.get_running_loop()
        for fd in self._readers:
            loop.remove_reader(fd)
        for fd in self._fds:
            os.close(fd)
        self._readers, self._fds = [], []


class Sandbox:
    """How one node's instances are contained: the plan its zygote gets, a Cell per
    instance. Until `open`, instances get their own session only."""

    def __init__(self) -> None:
        self.containment: Containment = SessionOnly({})
        self.plan = Plan(Kind.SESSION)
        self.live: set[int] = set()
        self._dead: set[int] = set()
        #: why instances run as root when the node is root (None: they do not)
        self.warning: str | None = None

    def open(self, app_ref: str, backend_url: str, objects_url: str) -> None:
        """Choose the containment, the instances' /tmp and their users (blocking: cgroup,
        file system and namespace work)."""
        self.containment = choose()
        python = python_path()
        keep = scratch.under_tmp(instance_directories(app_ref, backend_url, objects_url) + python)
        if keep is None:
            log.warning("sandbox: the app or its state is in /tmp itself, which a private /tmp would hide: "
                        "instances get a directory of their own as TMPDIR only")
        kind = Scratch.DIRECTORY if keep is None else scratch.choose()
        scratch_dir = scratch.open_directories(os.getpid()) if kind is Scratch.DIRECTORY else None
        user_base = None
        reveal: list[tuple[str, list[str]]] = []
        if os.geteuid() == 0:
            try:
                reason = grant_files(app_ref, backend_url, objects_url, USER_BASE)
            except OSError as exc:  # a read-only or squashed file system, say
                reason = f"cannot share the state with them ({exc})"
            # a Python installed where other users cannot search (pyenv under /root, a venv
            # in a private home) is revealed to instances, alone, in their mount namespace
            reveal = scratch.hidden(python, lambda directory: _may_search(directory, USER_BASE))
            if reason is None and reveal and kind is not Scratch.NAMESPACE:
                reason = f"they could not import from {reveal[0][0]} (not searchable by other users)"
            if reason is None:
                user_base = USER_BASE
            else:
                self.warning = f"instances run as root, not as users of their own: {reason}"
        self.plan = Plan(self.containment.kind, self.containment.dirs, user_base, kind, keep or [], scratch_dir,
                         reveal if user_base is not None else [])

    def describe(self) -> str:
        """One line for the node's start-up log."""
        user = f"uid {USER_BASE + 1} and up" if self.plan.user_base is not None else f"uid {os.geteuid()}"
        tmp = ("a directory of its own as TMPDIR" if self.plan.scratch is Scratch.DIRECTORY
               else f"a private /tmp ({self.plan.scratch})")
        return f"instances contained by {self.containment.kind}, running as {user}, each with {tmp}"

    def environ(self) -> dict[str, str]:
        """What the zygote's environment needs for its instances to confine themselves."""
        return {ENV: self.plan.encode()}

    def cell(self, pid: int, on_exit: Callable[[], None]) -> Cell:
        self.live.add(pid)
        return Cell(self, pid, on_exit)

    def kill(self, pid: int) -> None:
        """SIGKILL the instance and its tree; its container goes as soon as they have."""
        try:
            os.kill(pid, signal.SIGKILL)  # also before it has joined its container
        except ProcessLookupError:
            pass
        self.containment.kill(pid)
        self.live.discard(pid)
        self._dead.add(pid)
        self.collect()

    def collect(self) -> None:
        """Remove the containers (and /tmp directories) of killed instances whose processes have gone."""
        gone = {pid for pid in self._dead if self.containment.remove(pid)}
        if self.plan.scratch_dir is not None:
            for pid in gone:
                scratch.remove_directory(self.plan.scratch_dir, pid)
        self._dead -= gone

    def close(self) -> None:
        """Kill what is left and remove every container this node made."""
        if isinstance(self.containment, _Cgroups):
            self.containment.clear(self.live | self._dead)
        else:
            for pid in list(self.live):
                self.kill(pid)
        if self.plan.scratch_dir is not None:
            scratch.remove_directory(self.plan.scratch_dir)
        self.live.clear()
        self._dead.clear()
