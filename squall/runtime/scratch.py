"""Each instance's private /tmp, as every Lambda execution environment has its own: of the
function's `ephemeral_storage_mb`, kept while the instance is warm, gone with it.

Where the kernel allows it the instance enters a mount namespace of its own, with private
propagation, and mounts a tmpfs of that size over `/tmp`: code that writes the literal path
`/tmp/x` is isolated from the host and from every other instance, a write past the size
fails with ENOSPC, and the kernel frees it all when the instance's last process exits (a
reap, a crash, a node stop or a node killed alike: nothing on disk to sweep). Its pages are
charged to the instance's memory cgroup: unlike Lambda's, this /tmp counts against
`memory_mb` too (the tree's memory limit is not loosened for it).

- root: `Scratch.NAMESPACE`, a mount namespace (before the instance drops to its user);
- not root, where unprivileged user namespaces work: `Scratch.USER_NAMESPACE`, a user
  namespace mapping the node's user to itself, then the same (its capabilities in that
  namespace are dropped once /tmp is mounted);
- otherwise `Scratch.DIRECTORY`: a directory per instance named by `TMPDIR` only (the
  literal `/tmp` stays the host's, and nothing limits its size); the node removes it.

Directories the instance must keep reaching under the host's /tmp (the app, the state
database, the objects, when they live there) are bound back in at the same paths.

This module uses the standard library only: the node runs it as a script
(`python -I -S scratch.py KIND`) to learn whether a kind works here.
"""

from __future__ import annotations

import ctypes
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Callable
from enum import StrEnum
from pathlib import Path

TMP = "/tmp"
CLONE_NEWNS = 0x00020000
CLONE_NEWUSER = 0x10000000
MS_NOSUID, MS_NODEV, MS_BIND, MS_REC, MS_PRIVATE = 2, 4, 4096, 16384, 1 << 18
_CAPABILITY_VERSION_3 = 0x20080522


class Scratch(StrEnum):
    NAMESPACE = "namespace"
    USER_NAMESPACE = "user-namespace"
    DIRECTORY = "directory"


def _libc() -> ctypes.CDLL:
    return ctypes.CDLL(None, use_errno=True)


def _check(result: int, what: str) -> None:
    if result != 0:
        number = ctypes.get_errno()
        raise OSError(number, f"{what}: {os.strerror(number)}")


def _write(path: str, text: str) -> None:
    with open(path, "w") as f:
        f.write(text)


def _drop_capabilities(libc: ctypes.CDLL) -> None:
    """capset(2) to nothing: the user namespace's creator holds every capability in it."""
    header = (ctypes.c_uint32 * 2)(_CAPABILITY_VERSION_3, 0)
    data = (ctypes.c_uint32 * 6)()
    _check(libc.capset(header, data), "capset")


def mount_source(pid: int) -> str:
    """The tmpfs's source name in /proc/*/mountinfo: says whose /tmp it is."""
    return f"squall-tmp-{pid}"


def _overlay(libc: ctypes.CDLL, directory: str, source: str, options: str, keep: list[str]) -> None:
    """Cover `directory` with a tmpfs, then bind the host's `keep` (paths below it) back in
    at the same places."""
    host = os.open(directory, os.O_PATH | os.O_DIRECTORY)  # the host's, reachable once covered
    try:
        _check(libc.mount(source.encode(), directory.encode(), b"tmpfs", MS_NOSUID | MS_NODEV, options.encode()),
               f"mount tmpfs on {directory}")
        for kept in keep:
            relative = os.path.relpath(kept, directory)
            os.makedirs(os.path.join(directory, relative), exist_ok=True)
            _check(libc.mount(f"/proc/self/fd/{host}/{relative}".encode(), os.path.join(directory, relative).encode(),
                              None, MS_BIND | MS_REC, None), f"bind {kept}")
    finally:
        os.close(host)


def enter(kind: Scratch, size_mb: int, keep: list[str], owner: tuple[int, int] | None = None,
          directory: str | None = None, reveal: list[tuple[str, list[str]]] | None = None) -> str:
    """Give the calling, freshly forked and single-threaded process its own /tmp; where it
    is (`TMPDIR` is set to it). `owner` is the (uid, gid) the instance will run as, `keep`
    the host directories under /tmp it still needs, `directory` where `DIRECTORY` kind
    instances get theirs, `reveal` the directories (outside /tmp) its user could not search
    on the way to its Python installation, each with the names below it to keep: each is
    covered by a searchable tmpfs holding only those (see `hidden`). Raises OSError if it
    cannot (the instance must not start)."""
    pid = os.getpid()
    if kind is Scratch.DIRECTORY:
        assert directory is not None
        path = os.path.join(directory, str(pid))
        os.mkdir(path, 0o700)
        if owner is not None:
            os.chown(path, *owner)
    else:
        uid, gid = owner or (os.getuid(), os.getgid())
        libc = _libc()
        if kind is Scratch.USER_NAMESPACE:
            _check(libc.unshare(CLONE_NEWUSER | CLONE_NEWNS), "unshare")
            _write("/proc/self/setgroups", "deny")
            _write("/proc/self/uid_map", f"{uid} {uid} 1")
            _write("/proc/self/gid_map", f"{gid} {gid} 1")
        else:
            _check(libc.unshare(CLONE_NEWNS), "unshare")
        _check(libc.mount(b"none", b"/", None, MS_REC | MS_PRIVATE, None), "mount --make-rprivate /")
        _overlay(libc, TMP, mount_source(pid), f"size={size_mb}m,mode=0700,uid={uid},gid={gid}", keep)
        for directory, names in reveal or []:
            _overlay(libc, directory, "squall-reveal", "size=64k,mode=0755",
                     [os.path.join(directory, name) for name in names])
        if kind is Scratch.USER_NAMESPACE:
            _drop_capabilities(libc)
        path = TMP
    os.environ["TMPDIR"] = path
    tempfile.tempdir = None  # the zygote may have cached the host's
    return path


def hidden(paths: list[Path], can_search: Callable[[Path], bool]) -> list[tuple[str, list[str]]]:
    """The directories outside /tmp that stand between an instance's user and `paths` (its
    Python installation under /root, say), each with the names below it on the way to
    them, parents first: what `enter` reveals, and nothing else of those directories."""
    tmp = Path(TMP).resolve()
    found: dict[Path, set[str]] = {}
    for path in paths:
        if path == tmp or tmp in path.parents:
            continue  # bound back into the private /tmp, through searchable directories
        for directory in reversed(path.parents):
            if not can_search(directory):
                found.setdefault(directory, set()).add(path.relative_to(directory).parts[0])
    return [(str(d), sorted(names)) for d, names in sorted(found.items(), key=lambda item: len(item[0].parts))]


def under_tmp(paths: list[Path]) -> list[str] | None:
    """The directories of `paths` that lie under the host's /tmp, to bind back in (one
    bind covers the directories below it); None if one is /tmp itself (a private /tmp
    would hide it)."""
    tmp = Path(TMP).resolve()
    kept: list[Path] = []
    for path in sorted(path.resolve() for path in paths):
        if path == tmp:
            return None
        if tmp in path.parents and not any(path == k or k in path.parents for k in kept):
            kept.append(path)
    return [f"{TMP}/{path.relative_to(tmp)}" for path in kept]


def works(kind: Scratch) -> bool:
    """Whether `kind` works on this machine, tried in a fresh interpreter (once per node)."""
    try:
        probe = subprocess.run([sys.executable, "-I", "-S", __file__, kind.value], capture_output=True, timeout=10)
    except (OSError, subprocess.TimeoutExpired):
        return False
    return probe.returncode == 0


def choose() -> Scratch:
    """The best kind that works here: a namespace as root, a user namespace otherwise."""
    preferred = Scratch.NAMESPACE if os.geteuid() == 0 else Scratch.USER_NAMESPACE
    return preferred if works(preferred) else Scratch.DIRECTORY


# ---- the node's side of Scratch.DIRECTORY -----------------------------------------------

def directory_root(node_pid: int) -> str:
    """Where this node's instances get their directories."""
    return os.path.join(tempfile.gettempdir(), f"squall-scratch-{os.geteuid()}", str(node_pid))


def open_directories(node_pid: int) -> str:
    """Create this node's directory, removing those of nodes that are gone (killed)."""
    root = Path(directory_root(node_pid))
    root.parent.mkdir(mode=0o711, exist_ok=True)  # searchable: instances may run as other users
    for stale in root.parent.iterdir():
        if stale.name.isdigit() and not pid_alive(int(stale.name)):
            shutil.rmtree(stale, ignore_errors=True)
    root.mkdir(mode=0o711, exist_ok=True)
    return str(root)


def remove_directory(root: str, pid: int | None = None) -> None:
    """Remove one instance's directory (or, without `pid`, the whole node's)."""
    shutil.rmtree(root if pid is None else os.path.join(root, str(pid)), ignore_errors=True)


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


if __name__ == "__main__":  # the probe: enter a scratch of the given kind, then exit
    enter(Scratch(sys.argv[1]), 1, [])
