"""The runtime's serverless semantics, observed from outside through a real node.

Handlers report `os.getpid()` / `os.getppid()`, so the tests see which process (instance)
served each request: cold starts, warm reuse, zygote forks, reaping, limits and crashes.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import time
from pathlib import Path

import httpx
import pytest

from squall.backends import open_backend
from squall.observability.metering import read_records
from tests.support import NodeProcess, squall, wait_until, write_app

APP = """
import ctypes
import os
import time

from squall import App

app = App("runtime")


def arg(event, name, default):
    # HTTP events carry arguments in the query string; `squall invoke` events are the arguments
    params = (event.get("queryStringParameters") or {}) if "rawPath" in event else event
    return type(default)(params.get(name, default))


def identity(ctx, **extra):
    return {"pid": os.getpid(), "ppid": os.getppid(), "requestId": ctx.aws_request_id, **extra}


@app.http("GET", "/whoami")
def whoami(event, ctx):
    time.sleep(arg(event, "sleep", 0.0))
    return identity(ctx)


@app.http("GET", "/fresh")
def fresh(event, ctx):
    time.sleep(arg(event, "sleep", 0.0))
    return identity(ctx)


@app.http("GET", "/provisioned", provisioned_concurrency=2)
def provisioned(event, ctx):
    time.sleep(arg(event, "sleep", 0.0))
    return identity(ctx)


@app.http("GET", "/capped", reserved_concurrency=2)
def capped(event, ctx):
    started = time.time()
    time.sleep(0.3)
    return identity(ctx, started=started, ended=time.time())


@app.http("GET", "/single", reserved_concurrency=1, timeout=10)
def single(event, ctx):
    time.sleep(arg(event, "sleep", 0.0))
    return identity(ctx)


@app.http("GET", "/slow", timeout=1)
def slow(event, ctx):
    time.sleep(arg(event, "sleep", 0.0))
    return identity(ctx)


@app.http("GET", "/hog", memory_mb=128, timeout=15)  # reaching the OOM killer takes seconds on a loaded machine
def hog(event, ctx):
    chunks = [bytearray(8 * 1024 * 1024) for _ in range(arg(event, "mb", 0) // 8)]
    return identity(ctx, allocated=len(chunks) * 8)


@app.http("GET", "/crash")
def crash(event, ctx):
    how = arg(event, "how", "")
    if how == "raise":
        raise ValueError("handler gave up")
    if how == "exit":
        os._exit(3)
    if how == "segfault":
        ctypes.string_at(0)
    return identity(ctx)


@app.function(memory_mb=256)
def echo(event, ctx):
    return {"echo": event, "requestId": ctx.aws_request_id}
"""


def backend_url(directory: Path) -> str:
    return f"sqlite:///{directory}/state.db"


@pytest.fixture(scope="module")
def app_dir(tmp_path_factory) -> Path:
    directory = tmp_path_factory.mktemp("runtime")
    write_app(directory, APP)
    return directory


@pytest.fixture(scope="module")
def node(app_dir):
    """One node for the tests that do not depend on reaping; each test uses its own routes."""
    with NodeProcess(app_dir / "app.py", backend=backend_url(app_dir), extra=["--keep-alive", "60"]) as node:
        yield node


@pytest.fixture(scope="module")
def reaping_node(tmp_path_factory):
    """A node whose idle instances are reaped after half a second."""
    directory = tmp_path_factory.mktemp("reaping")
    write_app(directory, APP)
    with NodeProcess(directory / "app.py", backend=backend_url(directory), extra=["--keep-alive", "0.5"]) as node:
        yield node


def get(node: NodeProcess, path: str, **params) -> dict:
    response = httpx.get(node.url + path, params=params, timeout=30)
    assert response.status_code == 200, f"{path} {params}: {response.status_code} {response.text}"
    return response.json()


def get_concurrently(node: NodeProcess, path: str, count: int, **params) -> list[httpx.Response]:
    """`count` simultaneous requests (each on its own connection)."""
    async def fire():
        async with httpx.AsyncClient(base_url=node.url, timeout=30,
                                     limits=httpx.Limits(max_connections=count)) as client:
            return await asyncio.gather(*(client.get(path, params=params) for _ in range(count)))

    return asyncio.run(fire())


def alive(pid: int) -> bool:
    """Whether a process exists (a reaped child of the zygote no longer does)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def parent_of(pid: int) -> int:
    with open(f"/proc/{pid}/stat") as stat:
        return int(stat.read().rsplit(")", 1)[1].split()[1])


def max_overlap(intervals: list[tuple[float, float]]) -> int:
    """The largest number of intervals running at the same instant."""
    edges = sorted([(start, 1) for start, _ in intervals] + [(end, -1) for _, end in intervals])
    running = peak = 0
    for _, step in edges:  # at equal times an end (-1) sorts before a start (+1)
        running += step
        peak = max(peak, running)
    return peak


# ---- cold and warm ----------------------------------------------------------------------

def test_first_invocation_is_cold_and_the_next_reuses_the_warm_instance(node):
    first = get(node, "/whoami")
    second = get(node, "/whoami")
    assert first["pid"] != node.process.pid, "handlers must not run in the node process"
    assert second["pid"] == first["pid"], "a warm instance should serve the second request"


def test_concurrent_requests_get_distinct_instances(node):
    responses = get_concurrently(node, "/fresh", 3, sleep=1)
    assert [r.status_code for r in responses] == [200, 200, 200]
    assert len({r.json()["pid"] for r in responses}) == 3


def test_instances_are_forked_from_one_zygote_not_from_the_node(node):
    """Every instance's parent is the same zygote process, itself a child of the node."""
    responses = get_concurrently(node, "/whoami", 2, sleep=1)
    parents = {r.json()["ppid"] for r in responses}
    assert len({r.json()["pid"] for r in responses}) == 2
    assert len(parents) == 1
    zygote = parents.pop()
    assert zygote != node.process.pid
    assert parent_of(zygote) == node.process.pid


# ---- keep-alive and provisioned concurrency -----------------------------------------------

def test_idle_instance_is_reaped_after_keep_alive_and_next_call_is_cold(reaping_node):
    first = get(reaping_node, "/whoami")
    assert alive(first["pid"])
    time.sleep(2)
    assert not alive(first["pid"]), "the idle instance should be gone after the keep-alive"
    second = get(reaping_node, "/whoami")
    assert second["pid"] != first["pid"]
    assert second["ppid"] == first["ppid"], "the new instance comes from the same zygote"


def test_provisioned_instances_outlive_the_keep_alive(reaping_node):
    before = get_concurrently(reaping_node, "/provisioned", 2, sleep=1)
    pids = {r.json()["pid"] for r in before}
    assert len(pids) == 2
    time.sleep(2)
    assert all(alive(pid) for pid in pids), "provisioned instances must not be reaped"
    after = get_concurrently(reaping_node, "/provisioned", 2, sleep=1)
    assert {r.json()["pid"] for r in after} == pids


# ---- reserved concurrency ----------------------------------------------------------------

def test_reserved_concurrency_caps_concurrent_instances(node):
    responses = get_concurrently(node, "/capped", 5)
    assert [r.status_code for r in responses] == [200] * 5, "excess requests wait for a free instance"
    bodies = [r.json() for r in responses]
    assert len({b["pid"] for b in bodies}) <= 2
    assert max_overlap([(b["started"], b["ended"]) for b in bodies]) == 2


def test_request_waiting_too_long_for_a_capped_function_gets_429(node):
    """The gateway waits a bounded time (2 s) for a free instance, then throttles."""
    responses = get_concurrently(node, "/single", 2, sleep=3.5)
    assert sorted(r.status_code for r in responses) == [200, 429]
    throttled = next(r for r in responses if r.status_code == 429)
    assert "message" in throttled.json()


# ---- timeout, memory and crashes ---------------------------------------------------------

def test_timeout_kills_the_instance_and_reports_a_timeout(node):
    warm = get(node, "/slow")
    started = time.monotonic()
    response = httpx.get(node.url + "/slow", params={"sleep": 30}, timeout=30)
    assert response.status_code == 504
    assert time.monotonic() - started < 5, "the timeout is 1 s; the request must not wait for the handler"
    wait_until(lambda: not alive(warm["pid"]), timeout=5, message="the timed-out instance to die")
    after = get(node, "/slow")
    assert after["pid"] != warm["pid"]


def test_memory_limit_fails_the_invocation_and_the_instance_is_replaced(node):
    warm = get(node, "/hog", mb=16)
    assert warm["allocated"] == 16
    response = httpx.get(node.url + "/hog", params={"mb": 1024}, timeout=30)
    assert response.status_code == 502
    wait_until(lambda: not alive(warm["pid"]), timeout=5, message="the out-of-memory instance to die")
    after = get(node, "/hog", mb=16)
    assert after["pid"] != warm["pid"]


@pytest.mark.parametrize("how,status", [("raise", 500), ("exit", 502), ("segfault", 502)])
def test_crashing_handler_never_takes_the_node_down(node, how, status):
    response = httpx.get(node.url + "/crash", params={"how": how}, timeout=30)
    assert response.status_code == status
    assert "Traceback" not in response.text
    assert node.process.poll() is None
    assert get(node, "/crash")["pid"] > 0
    assert get(node, "/whoami")["pid"] > 0


# ---- metering ----------------------------------------------------------------------------

def check_record(record: dict) -> None:
    """The fields every metering record carries, and how they relate."""
    assert record["durationMs"] >= 0
    # billed = duration rounded up to the millisecond (durationMs itself is rounded to 3 places)
    assert isinstance(record["billedMs"], int) and record["billedMs"] >= 1
    assert record["billedMs"] - 1 <= record["durationMs"] <= record["billedMs"]
    assert record["gbSeconds"] == pytest.approx(record["billedMs"] / 1000 * record["memoryMb"] / 1024)
    if record["cold"]:
        assert record["initMs"] > 0
    else:
        assert record["initMs"] is None


def test_every_invocation_is_metered_in_the_backend(tmp_path):
    write_app(tmp_path, APP)
    url = backend_url(tmp_path)
    with NodeProcess(tmp_path / "app.py", backend=url) as node:
        cold = get(node, "/whoami")
        warm = get(node, "/whoami")
        big = get(node, "/hog", mb=8)
        failed = httpx.get(node.url + "/hog", params={"mb": 1024}, timeout=30)
        assert failed.status_code == 502
        timed_out = httpx.get(node.url + "/slow", params={"sleep": 5}, timeout=30)
        assert timed_out.status_code == 504
        assert node.stop() == 0  # graceful: flushes the meter
    store = open_backend(url)
    try:
        records = list(read_records(store))
    finally:
        store.close()
    by_id = {r["requestId"]: r for r in records}
    assert len(by_id) == len(records) == 5

    for body, cold_start in [(cold, True), (warm, False)]:
        record = by_id[body["requestId"]]
        assert record["function"] == "whoami"
        assert record["trigger"] == "http"
        assert record["cold"] is cold_start
        assert record["outcome"] == "success"
        assert record["memoryMb"] == 128
        assert record["maxMemoryMb"] > 0
        check_record(record)

    assert by_id[big["requestId"]]["memoryMb"] == 128
    oom = next(r for r in records if r["function"] == "hog" and r["outcome"] != "success")
    assert oom["outcome"] == "oom"
    assert oom["errorType"] == "Runtime.OutOfMemory"
    timeout = next(r for r in records if r["function"] == "slow")
    assert timeout["outcome"] == "timeout"
    assert timeout["durationMs"] >= 1000
    for record in records:
        check_record(record)


# ---- squall invoke -------------------------------------------------------------------------

REPORT = re.compile(r"REPORT RequestId: (?P<id>\S+)\tDuration: (?P<duration>[\d.]+) ms\t"
                    r"Billed Duration: (?P<billed>\d+) ms\tMemory Size: (?P<memory>\d+) MB\t"
                    r"Max Memory Used: (?P<max_memory>\d+) MB\tInit Duration: (?P<init>[\d.]+) ms")


def test_invoke_prints_the_result_and_a_report_line(tmp_path):
    app = write_app(tmp_path, APP)
    result = squall("invoke", str(app), "echo", "--data", '{"n": 1}', "--backend", backend_url(tmp_path))
    assert result.returncode == 0, result.stderr
    body = json.loads(result.stdout)
    assert body["echo"] == {"n": 1}
    report = REPORT.search(result.stderr)
    assert report, result.stderr
    assert report["id"] == body["requestId"]
    assert report["memory"] == "256"
    assert int(report["billed"]) - 1 <= float(report["duration"]) <= int(report["billed"])
    assert int(report["max_memory"]) > 0
    assert float(report["init"]) > 0

    store = open_backend(backend_url(tmp_path))
    try:
        [record] = list(read_records(store))
    finally:
        store.close()
    assert record["requestId"] == body["requestId"]
    assert record["trigger"] == "invoke"
    assert record["cold"] is True


@pytest.mark.parametrize("function,data,error_type", [
    ("crash", '{"how": "raise"}', "ValueError"),
    ("crash", '{"how": "segfault"}', "Runtime.ExitError"),
    ("hog", '{"mb": 1024}', "Runtime.OutOfMemory"),
    ("slow", '{"sleep": 5}', "Sandbox.Timedout"),
])
def test_invoke_failure_prints_the_error_and_exits_1(tmp_path, function, data, error_type):
    app = write_app(tmp_path, APP)
    result = squall("invoke", str(app), function, "--data", data, "--backend", backend_url(tmp_path))
    assert result.returncode == 1
    error = json.loads(result.stdout)
    assert error["errorType"] == error_type
    assert error["errorMessage"]
    assert "REPORT RequestId: " in result.stderr
    # a Python traceback only as the function's own log of its error, as Lambda logs it
    tracebacks = result.stderr.count("Traceback (most recent call last):")
    assert tracebacks == result.stderr.count(f"[ERROR] {error_type}: ") * (error_type == "ValueError")
