"""Issue 8, items 4, 6 and 7: instances are contained (squall.runtime.sandbox), seen from
outside through a real `squall run` node.

The node runs as root here, on cgroup v1: instances get a user per function, a cgroup per
instance (memory, cpu, pids, freezer) and a session of their own. The app lives in a
directory every user may search (pytest's own temporary directories are private to root,
and the node then keeps instances as root: see `test_a_private_app_directory_keeps_root`).
"""

from __future__ import annotations

import os
import re
import shutil
import tempfile
import time
from pathlib import Path

import httpx
import pytest

from tests.support import NodeProcess, wait_until, write_app

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="these probes check what a root node enforces")

APP = """
import os
import signal
import subprocess
import threading
import time

from squall import App

app = App("sandbox")
KEPT = {}


def arg(event, name, default):
    return type(default)((event.get("queryStringParameters") or {}).get(name, default))


def identity(**extra):
    return {"pid": os.getpid(), "ppid": os.getppid(), "uid": os.getuid(), "sid": os.getsid(0), **extra}


@app.http("GET", "/who")
def who(event, ctx):
    return identity()


@app.http("GET", "/kill-group")
def kill_group(event, ctx):
    os.kill(0, signal.SIGKILL)


@app.http("GET", "/secret")
def secret(event, ctx):
    KEPT["secret"] = value = ("s3cr3t-" + os.urandom(8).hex()).encode()
    return identity(address=id(value), secret=value.decode())


@app.http("GET", "/probe")
def probe(event, ctx):
    pid = arg(event, "pid", 0)
    found = {}
    try:
        with open(f"/proc/{pid}/mem", "rb") as mem:
            mem.seek(arg(event, "address", 0))
            found["mem"] = mem.read(256).hex()
    except OSError as exc:
        found["mem"] = type(exc).__name__
    for name in ("pid", "node", "zygote"):
        try:
            os.kill(arg(event, name, 0), 0)
            found[name] = "reachable"
        except OSError as exc:
            found[name] = type(exc).__name__
    return found


@app.http("GET", "/state")
def state(event, ctx):
    ctx.table("notes").put("n", {"by": os.getuid()})
    ctx.objects("files").put("dir/n.txt", "hello")
    return {"table": ctx.table("notes").get("n"), "object": ctx.objects("files").get("dir/n.txt").decode()}


def fork(count, work):
    children = []
    for _ in range(count):
        pid = os.fork()
        if pid == 0:
            work()
            os._exit(0)
        children.append(pid)
    return children


def touch_100_mb():
    block = bytearray(100 * 1024 * 1024)
    for i in range(0, len(block), 4096):
        block[i] = 1


@app.http("GET", "/spawn", timeout=2, memory_mb=1769)
def spawn(event, ctx):
    children = fork(50, lambda: time.sleep(60))
    escaped = subprocess.Popen(["setsid", "sleep", "60"])
    time.sleep(arg(event, "sleep", 0.0))
    return identity(children=children + [escaped.pid])


@app.http("GET", "/orphan-crash", timeout=10)
def orphan_crash(event, ctx):
    if os.fork() == 0:  # keeps the instance's socket open
        time.sleep(30)
        os._exit(0)
    os.kill(os.getpid(), signal.SIGKILL)


@app.http("GET", "/tree-memory", timeout=15, memory_mb=128)
def tree_memory(event, ctx):
    children = fork(5, touch_100_mb)
    return {"statuses": [os.waitpid(pid, 0)[1] for pid in children]}


def spin(seconds):
    began = time.monotonic()
    cpu = time.process_time()
    while time.monotonic() - began < seconds:
        pass
    return time.process_time() - cpu


def throttled():
    # how many CFS periods the kernel stopped this instance's cgroup for using up its quota
    path = next(line.split(":", 2)[2] for line in open("/proc/self/cgroup").read().splitlines()
                if line.split(":")[1] == "cpu")
    stat = dict(line.split() for line in open(f"/sys/fs/cgroup/cpu{path}/cpu.stat").read().splitlines())
    return int(stat["nr_throttled"])


@app.http("GET", "/spin-128", memory_mb=128)
def spin_128(event, ctx):
    return {"cpu": spin(0.6), "throttled": throttled()}


@app.http("GET", "/spin-1769", memory_mb=1769)
def spin_1769(event, ctx):
    return {"cpu": spin(0.6), "throttled": throttled()}


@app.http("GET", "/busy-thread", memory_mb=1769)
def busy_thread(event, ctx):
    if "thread" not in KEPT:
        KEPT["thread"] = threading.Thread(target=lambda: spin(3600), daemon=True)
        KEPT["thread"].start()
    return identity()


@app.http("GET", "/provisioned", provisioned_concurrency=1)
def provisioned(event, ctx):
    return identity()
"""


@pytest.fixture(scope="module")
def app_dir():
    """A directory others may search, as an app's directory usually is (unlike pytest's)."""
    directory = Path(tempfile.mkdtemp(prefix="squall-sandbox-"))
    directory.chmod(0o755)
    write_app(directory, APP)
    yield directory
    shutil.rmtree(directory, ignore_errors=True)


@pytest.fixture(scope="module")
def node(app_dir):
    with NodeProcess(app_dir / "app.py", extra=["--keep-alive", "60"]) as node:
        yield node


def get(server: NodeProcess, path: str, **params) -> dict:
    response = httpx.get(server.url + path, params=params, timeout=30)
    assert response.status_code == 200, response.text
    return response.json()


def alive(pid: int) -> bool:
    """Running (a zombie waiting for its reaper counts as gone)."""
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().rsplit(")", 1)[1].split()[0] not in ("Z", "X")
    except FileNotFoundError:
        return False


def cpu_seconds(pid: int) -> float:
    """User plus system time of a process and all its threads, from /proc."""
    with open(f"/proc/{pid}/stat") as stat:
        fields = stat.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def node_cgroups(node: NodeProcess) -> list[Path]:
    return [p for p in Path("/sys/fs/cgroup").glob(f"*/**/squall/{node.process.pid}") if p.is_dir()]


# ---- item 4: isolation from the node and from each other --------------------------------

def test_kill_of_its_own_process_group_kills_only_the_instance(node):
    before = get(node, "/who")
    assert before["sid"] == before["pid"], "each instance leads a session of its own"
    response = httpx.get(node.url + "/kill-group", timeout=10)
    assert response.status_code == 502
    after = get(node, "/who")
    assert after["ppid"] == before["ppid"], "the zygote survived"
    assert node.process.poll() is None, "the node survived"


def test_another_function_cannot_read_memory_or_signal_the_node_zygote_or_other_instances(node):
    holder = get(node, "/secret")
    prober = get(node, "/who")
    assert holder["uid"] != prober["uid"] and 0 not in (holder["uid"], prober["uid"]), "a user per function"
    found = get(node, "/probe", pid=holder["pid"], address=holder["address"], node=node.process.pid,
                zygote=holder["ppid"])
    assert found == {"mem": "PermissionError", "pid": "PermissionError", "node": "PermissionError",
                     "zygote": "PermissionError"}


def test_instances_under_their_own_user_still_reach_the_state_and_the_objects(node):
    result = get(node, "/state")
    assert result["table"]["by"] >= 200_000 and result["object"] == "hello"


def test_a_private_app_directory_keeps_root_and_says_why(tmp_path):
    write_app(tmp_path, APP)
    with NodeProcess(tmp_path / "app.py") as node:
        assert get(node, "/who")["uid"] == 0
        assert get(node, "/state")["object"] == "hello"
    assert "instances run as root, not as users of their own" in node.log()
    assert "is not searchable by other users" in node.log()


# ---- item 6: what a handler starts is contained and dies with its instance --------------

def test_timeout_kills_every_process_the_instance_started(node):
    first = get(node, "/spawn")
    assert all(alive(pid) for pid in first["children"])
    response = httpx.get(node.url + "/spawn", params={"sleep": 5}, timeout=10)
    assert response.status_code == 504
    wait_until(lambda: not any(alive(pid) for pid in first["children"]), timeout=3,
               message="the forked children and the setsid'd subprocess to die with the instance")


def test_a_crash_is_reported_at_once_though_a_child_holds_the_socket(node):
    started = time.monotonic()
    response = httpx.get(node.url + "/orphan-crash", timeout=15)
    elapsed = time.monotonic() - started
    assert response.status_code == 502
    assert elapsed < 2, f"reported after {elapsed:.1f}s (the timeout is 10 s)"


def test_the_memory_limit_holds_for_the_whole_tree(node):
    response = httpx.get(node.url + "/tree-memory", timeout=30)
    assert response.status_code == 502, response.text
    assert re.search(r"REPORT RequestId: \S+\t.*\tMemory Size: 128 MB\t.*\tStatus: error\tError Type: "
                     r"Runtime.OutOfMemory\n", node.log())


def test_cpu_is_proportional_to_memory_as_lambda_allocates_it(node):
    small = get(node, "/spin-128")  # 128/1769 of a CPU: 0.04 s of 0.6 s
    assert small["cpu"] < 0.1 and small["throttled"] >= 3, small
    # one CPU: a thread spinning 0.6 s gets about all of it. (Not "never throttled": the
    # kernel hands quota out per CPU in slices, so a thread that migrates between CPUs on a
    # busy machine can be throttled for a period while quota sits unused on the other.)
    full = get(node, "/spin-1769")
    assert full["cpu"] > 0.4, full


def test_node_shutdown_kills_every_process_and_removes_its_cgroups(app_dir):
    with NodeProcess(app_dir / "app.py") as node:
        spawned = get(node, "/spawn")["children"]
        assert node_cgroups(node)
        node.stop()
    assert not [pid for pid in spawned if alive(pid)]
    assert not node_cgroups(node)


def test_what_a_killed_node_left_is_cleared_by_the_next_node(app_dir):
    with NodeProcess(app_dir / "app.py") as crashed:
        spawned = get(crashed, "/spawn")["children"]
        crashed.kill()  # SIGKILL: no clean-up; the zygote and instances die with it, their children not
        assert node_cgroups(crashed)
        with NodeProcess(app_dir / "app.py"):
            assert not [pid for pid in spawned if alive(pid)]
            assert not node_cgroups(crashed)


@pytest.fixture(scope="module")
def reaping_node(app_dir):
    with NodeProcess(app_dir / "app.py", extra=["--keep-alive", "0.5"]) as node:
        yield node


def test_reaping_a_frozen_instance_kills_its_tree(reaping_node):
    spawned = get(reaping_node, "/spawn")
    wait_until(lambda: not alive(spawned["pid"]) and not any(alive(pid) for pid in spawned["children"]),
               timeout=5, message="the idle instance and its tree to be reaped")


# ---- item 7: idle instances are frozen --------------------------------------------------

def test_a_thread_left_running_burns_no_cpu_while_the_instance_is_idle(node):
    first = get(node, "/busy-thread")
    time.sleep(0.2)
    before = cpu_seconds(first["pid"])
    time.sleep(1)
    idle = cpu_seconds(first["pid"]) - before
    assert idle < 0.05, f"the idle instance used {idle:.2f} s of CPU in a second"
    assert get(node, "/busy-thread")["pid"] == first["pid"], "thawed and reused"


def test_provisioned_instances_are_frozen_outlive_the_keep_alive_and_thaw(reaping_node):
    first = get(reaping_node, "/provisioned")
    time.sleep(0.2)
    with open(f"/proc/{first['pid']}/cgroup") as cgroups:
        freezer = next(line.split(":", 2)[2] for line in cgroups.read().splitlines() if ":freezer:" in line)
    assert Path(f"/sys/fs/cgroup/freezer{freezer}/freezer.state").read_text().strip() == "FROZEN"
    time.sleep(1.5)
    assert get(reaping_node, "/provisioned")["pid"] == first["pid"]
