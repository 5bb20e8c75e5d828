"""squall.runtime.scratch on real processes: the unprivileged user namespace (run as
`nobody`, where the machine lets root switch to it), the TMPDIR-only directory and its
sweep, and which host directories are bound back into a private /tmp."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest

from squall.runtime import scratch
from squall.runtime.environment import XRAY_DEFAULTS, zygote_environment
from squall.runtime.scratch import Scratch

#: forks a child that enters a 1 MB private /tmp and reports what it sees; run by path
#: (the module needs only the standard library)
CHILD = """
import importlib.util, json, os, sys
spec = importlib.util.spec_from_file_location("scratch", sys.argv[1])
scratch = importlib.util.module_from_spec(spec)
sys.modules["scratch"] = scratch
spec.loader.exec_module(scratch)
read, write = os.pipe()
if os.fork() == 0:
    report = {"tmpdir": scratch.enter(scratch.Scratch(sys.argv[2]), 1, [sys.argv[3]]), "uid": os.getuid()}
    open("/tmp/mine", "w").write("x")
    report["kept"] = open(os.path.join(sys.argv[3], "kept")).read()
    try:
        os.posix_fallocate(os.open("/tmp/big", os.O_CREAT | os.O_WRONLY), 0, 2 * 1024 * 1024)
    except OSError as exc:
        report["big"] = exc.errno
    report["capabilities"] = open("/proc/self/status").read().split("CapEff:")[1].split()[0]
    os.write(write, json.dumps(report).encode())
    os._exit(0)
os.close(write)
os.wait()
print(os.read(read, 65536).decode())
"""


def test_an_unprivileged_instance_gets_a_private_tmp_in_a_user_namespace(tmp_path):
    python = shutil.which("python3", path="/usr/bin:/bin")
    if os.geteuid() != 0 or python is None or shutil.which("setpriv") is None:
        pytest.skip("needs root (to become nobody), setpriv and a system python3")
    kept = Path("/tmp") / f"squall-kept-{os.getpid()}"
    kept.mkdir(mode=0o755)
    (kept / "kept").write_text("the host's")
    as_nobody = ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", python, "-I", "-S"]
    try:
        if subprocess.run([*as_nobody, scratch.__file__, Scratch.USER_NAMESPACE.value]).returncode != 0:
            pytest.skip("unprivileged user namespaces are not allowed here")
        result = subprocess.run([*as_nobody, "-c", CHILD, scratch.__file__, Scratch.USER_NAMESPACE.value, str(kept)],
                                capture_output=True, text=True, cwd="/")
        report = json.loads(result.stdout)
    finally:
        shutil.rmtree(kept)
    assert report == {"tmpdir": "/tmp", "uid": 65534, "kept": "the host's", "big": 28,  # ENOSPC
                      "capabilities": "0000000000000000"}
    assert not Path("/tmp/mine").exists()


def test_a_directory_scratch_is_tmpdir_and_is_swept(tmp_path, monkeypatch):
    monkeypatch.setattr(scratch.tempfile, "tempdir", str(tmp_path))
    stale = Path(scratch.directory_root(2**22 + 1))  # above pid_max: a node that is gone
    stale.mkdir(parents=True)
    root = scratch.open_directories(os.getpid())
    assert not stale.exists() and Path(root).is_dir()
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:
        os.write(write, scratch.enter(Scratch.DIRECTORY, 512, [], directory=root).encode())
        os._exit(0)
    os.waitpid(pid, 0)
    assert os.read(read, 4096).decode() == os.path.join(root, str(pid)) and Path(root, str(pid)).is_dir()
    scratch.remove_directory(root, pid)
    assert not Path(root, str(pid)).exists()
    scratch.remove_directory(root)
    assert not Path(root).exists()


def test_directories_under_tmp_are_bound_back_and_tmp_itself_cannot_be():
    assert scratch.under_tmp([Path("/tmp/a/b"), Path("/srv/app"), Path("/tmp/a/b")]) == ["/tmp/a/b"]
    assert scratch.under_tmp([Path("/tmp/app/.squall/objects"), Path("/tmp/app"), Path("/tmp/other")]) == [
        "/tmp/app", "/tmp/other"]
    assert scratch.under_tmp([Path("/srv/app")]) == []
    assert scratch.under_tmp([Path("/tmp")]) is None


def test_the_zygote_inherits_the_node_but_squall_s_variables():
    node = {"DATABASE_URL": "postgres://node", "SQUALL_BACKEND": "redis://:secret@db/0", "TZ": "Europe/Paris",
            "AWS_XRAY_DAEMON_ADDRESS": "10.0.0.5:2000"}
    environment = zygote_environment(node, "/srv/app")
    assert environment["DATABASE_URL"] == "postgres://node" and "SQUALL_BACKEND" not in environment
    assert environment["TZ"] == ":UTC" and environment["LAMBDA_TASK_ROOT"] == "/srv/app"
    assert environment["AWS_XRAY_DAEMON_ADDRESS"] == "10.0.0.5:2000"  # the operator's daemon
    assert environment["AWS_XRAY_CONTEXT_MISSING"] == XRAY_DEFAULTS["AWS_XRAY_CONTEXT_MISSING"]


def test_hidden_names_each_unsearchable_directory_with_what_to_show_parents_first():
    blocked = {Path("/root"), Path("/home/ada/venv/private")}
    paths = [Path("/root/.pyenv/versions/3.11/lib/python3.11"), Path("/root/.pyenv/versions/3.11/lib/site"),
             Path("/root/other"), Path("/home/ada/venv/private/lib"), Path("/usr/lib/python3"),
             Path("/tmp/venv/lib")]
    assert scratch.hidden(paths, lambda directory: directory not in blocked | {Path("/tmp")}) == [
        ("/root", [".pyenv", "other"]), ("/home/ada/venv/private", ["lib"])]
