"""Each instance's private /tmp, on a real node: kept while the instance is warm, seen by no
other instance nor by the host, limited to the function's `ephemeral_storage_mb` (ENOSPC
past it), and gone when the instance is reaped, crashes, or its node
stops or is killed."""

from __future__ import annotations

import errno
import os
import uuid
from pathlib import Path

import pytest

from tests.support import NodeProcess, squall, wait_until, write_app

APP = """
    import errno
    import os
    import tempfile

    from squall import App

    app = App("scratch")
    MB = 1024 * 1024


    def tmp_mount():
        for line in open("/proc/self/mountinfo"):
            left, _, right = line.partition(" - ")
            if left.split()[4] == "/tmp":
                kind, source, options = right.split()[:3]
                return {"kind": kind, "source": source, "options": options}


    @app.http("POST", "/write")
    @app.http("POST", "/read")
    def notes(event, ctx):
        if event["rawPath"] == "/read":
            with open(event["body"]) as f:
                return {"pid": os.getpid(), "text": f.read()}
        with open(event["body"], "w") as f:  # a literal path under /tmp
            f.write("from the first invocation")
        return {"pid": os.getpid(), "mount": tmp_mount(), "tmpdir": os.environ["TMPDIR"],
                "gettempdir": tempfile.gettempdir()}


    @app.http("POST", "/sibling")
    def sibling(event, ctx):
        return {"exists": os.path.exists(event["body"]), "entries": sorted(os.listdir("/tmp"))}


    @app.http("GET", "/fill", memory_mb=1024, ephemeral_storage_mb=520, timeout=30)
    def fill(event, ctx):
        size = os.statvfs("/tmp")
        outcome = {"size_mb": size.f_blocks * size.f_frsize // MB}
        fd = os.open("/tmp/big", os.O_CREAT | os.O_WRONLY)
        try:
            os.posix_fallocate(fd, 0, 600 * MB)  # past the size: refused at once
        except OSError as exc:
            outcome["past"] = errno.errorcode[exc.errno]
        os.posix_fallocate(fd, 0, 500 * MB)
        os.lseek(fd, 500 * MB, os.SEEK_SET)
        chunk = b"x" * MB
        try:
            for _ in range(30):  # past the 520
                os.write(fd, chunk)
        except OSError as exc:
            outcome["full"] = errno.errorcode[exc.errno]
        outcome["written_mb"] = os.lseek(fd, 0, os.SEEK_CUR) // MB
        os.close(fd)
        os.unlink("/tmp/big")
        return outcome


    @app.http("GET", "/overfill", memory_mb=128)
    def overfill(event, ctx):
        fd = os.open("/tmp/big", os.O_CREAT | os.O_WRONLY)
        try:
            os.posix_fallocate(fd, 0, 300 * MB)
        except OSError as exc:
            return {"error": errno.errorcode[exc.errno]}
        finally:
            os.close(fd)
            os.unlink("/tmp/big")


    @app.http("POST", "/crash")
    def crash(event, ctx):
        if event["body"] == "now":
            os._exit(1)
        return {"pid": os.getpid(), "mount": tmp_mount()}
"""

KEEP_ALIVE = 2.0


def mounted_anywhere(source: str) -> list[int]:
    """The processes on this machine that have a mount of `source` (its tmpfs)."""
    holders = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if f" {source} " in (entry / "mountinfo").read_text():
                    holders.append(int(entry.name))
            except OSError:
                continue
    return holders


def alive(pid: int) -> bool:
    """Running (not gone, not a zombie its zygote has yet to collect)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return False
    return stat[stat.rindex(")") + 2] != "Z"


@pytest.fixture(scope="module")
def node(tmp_path_factory):
    with NodeProcess(write_app(tmp_path_factory.mktemp("scratch"), APP),
                     extra=["--keep-alive", str(KEEP_ALIVE)]) as running:
        yield running


@pytest.fixture
def path():
    """A literal path under /tmp no one else uses."""
    name = f"/tmp/squall-scratch-test-{uuid.uuid4().hex}"
    yield name
    assert not os.path.exists(name)


def test_a_warm_instance_keeps_its_tmp_and_nobody_else_sees_it(node, path):
    with node.client() as client:
        wrote = client.post("/write", content=path).json()
        assert wrote["mount"]["kind"] == "tmpfs" and "size=524288k" in wrote["mount"]["options"]  # 512 MB
        assert wrote["tmpdir"] == wrote["gettempdir"] == "/tmp"
        assert client.post("/read", content=path).json() == {"pid": wrote["pid"], "text": "from the first invocation"}
        assert not os.path.exists(path)  # the host's /tmp
        assert Path(f"/proc/{wrote['pid']}/root{path}").read_text() == "from the first invocation"
        sibling = client.post("/sibling", content=path).json()
        assert sibling["exists"] is False and Path(path).name not in sibling["entries"]


def test_the_host_tmp_does_not_reach_an_instance(node, path):
    Path(path).write_text("the host's")
    try:
        with node.client() as client:
            assert client.post("/sibling", content=path).json()["exists"] is False
    finally:
        os.unlink(path)


def test_a_write_past_ephemeral_storage_fails_with_enospc(node):
    with node.client() as client:
        outcome = client.get("/fill", timeout=60).json()
    enospc = errno.errorcode[errno.ENOSPC]
    assert outcome == {"size_mb": 520, "past": enospc, "full": enospc, "written_mb": 520}


def test_tmp_counts_against_memory_mb_too(node):
    """Unlike Lambda's (README: a tmpfs is charged to the instance's memory cgroup)."""
    with node.client() as client:
        assert client.get("/overfill").json() == {"error": errno.errorcode[errno.ENOMEM]}


def test_tmp_is_gone_when_the_instance_is_reaped_or_crashes(node, path):
    with node.client() as client:
        wrote = client.post("/write", content=path).json()
        assert mounted_anywhere(wrote["mount"]["source"]) == [wrote["pid"]]
        first = client.post("/crash", content="report").json()
        assert client.post("/crash", content="now").status_code == 502
    wait_until(lambda: not mounted_anywhere(first["mount"]["source"]), timeout=10, message="the crashed one's /tmp")
    wait_until(lambda: not mounted_anywhere(wrote["mount"]["source"]), timeout=KEEP_ALIVE + 10,
               message="the reaped one's /tmp")
    # the kernel drops an exiting process's mounts a moment before it becomes a zombie
    wait_until(lambda: not alive(wrote["pid"]), timeout=5, message="the reaped instance's exit")


def test_tmp_is_gone_when_the_node_stops(tmp_path, path):
    with NodeProcess(write_app(tmp_path, APP)) as running, running.client() as client:
        wrote = client.post("/write", content=path).json()
        assert mounted_anywhere(wrote["mount"]["source"])
        running.stop()
    wait_until(lambda: not mounted_anywhere(wrote["mount"]["source"]), timeout=10, message="the instance's /tmp")


def test_tmp_is_swept_after_its_node_was_killed(tmp_path, path):
    """A frozen instance outlives its killed node (it cannot take the signal), as its
    cgroup does: the next node's start sweeps both."""
    app = write_app(tmp_path, APP)
    with NodeProcess(app) as running, running.client() as client:
        wrote = client.post("/write", content=path).json()
        running.kill()
    with NodeProcess(app):
        wait_until(lambda: not mounted_anywhere(wrote["mount"]["source"]), timeout=10, message="the instance's /tmp")


@pytest.mark.parametrize("value", [511, 10241, "1024", 1024.0, True, None])
def test_an_invalid_ephemeral_storage_is_refused_at_load(tmp_path, value):
    app = write_app(tmp_path, f"""
        from squall import App

        app = App("bad")
        app.function(lambda event, ctx: 1, name="f", ephemeral_storage_mb={value!r})
    """)
    result = squall("invoke", str(app), "f", cwd=tmp_path)
    if value is None:  # the default, 512
        assert result.returncode == 0, result.stderr
    else:
        assert result.returncode == 1, result.stderr
        assert f"invalid ephemeral_storage_mb for 'f' {value!r}: must be an integer from 512 to 10240" \
            in result.stderr
