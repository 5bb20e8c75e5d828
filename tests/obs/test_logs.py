"""The function log, stored cluster-wide and read with `squall logs`, on real nodes: every
line a function writes (logging, print, stderr, the descriptors themselves, START/END/REPORT)
with its function and request id; filters; --follow; a log storm; output before a timeout;
two nodes on Redis."""

from __future__ import annotations

import subprocess
import sys
import time
import uuid

import httpx
import pytest
import redis
from prometheus_client.parser import text_string_to_metric_families

from tests.support import NodeProcess, free_port, squall, wait_until, write_app

APP = """
    import logging
    import os
    import sys
    import time

    from squall import App

    logger = logging.getLogger()
    logger.setLevel(logging.INFO)
    app = App("obslogs")


    @app.http("GET", "/talk")
    def talk(event, ctx):
        word = event["queryStringParameters"]["word"]
        logger.info("info %s", word)
        print("printed", word)
        print("to stderr", word, file=sys.stderr)
        os.write(1, f"raw descriptor {word}\\n".encode())
        try:
            {}["missing"]
        except KeyError:
            logger.exception("failed %s", word)
        return {"word": word, "requestId": ctx.aws_request_id}


    @app.http("GET", "/hang")
    def hang(event, ctx):
        print("before the hang", flush=True)
        time.sleep(5)
        return ctx.aws_request_id


    @app.http("GET", "/storm")
    def storm(event, ctx):
        line = "x" * 1023 + "\\n"
        block = line * 1024  # 1 MiB
        for _ in range(100):
            sys.stdout.write(block)
        return {"stormed": True}


    @app.http("GET", "/quiet")
    def quiet(event, ctx):
        print("quiet one", event["queryStringParameters"]["n"])
        return {}
"""


def logs(*args: str, backend: str, cwd) -> list[str]:
    result = squall("logs", *args, "--backend", backend, cwd=cwd)
    assert result.returncode == 0, result.stderr
    return result.stdout.splitlines()


@pytest.fixture(scope="module")
def node(tmp_path_factory):
    directory = tmp_path_factory.mktemp("obslogs")
    admin = free_port()
    running = NodeProcess(write_app(directory, APP), backend=f"sqlite:///{directory}/state.db",
                          extra=["--admin-port", str(admin)])
    running.admin = admin
    with running:
        running.directory = directory
        running.backend = f"sqlite:///{directory}/state.db"
        yield running


def test_every_kind_of_output_is_stored_with_its_function_and_request(node):
    word = uuid.uuid4().hex[:8]
    with node.client() as client:
        response = client.get("/talk", params={"word": word})
    request_id = response.json()["requestId"]
    wait_until(lambda: any(f"raw descriptor {word}" in line for line in
                           logs("talk", "--request-id", request_id, backend=node.backend, cwd=node.directory)),
               timeout=5, message="the stored lines")
    lines = logs("talk", "--request-id", request_id, backend=node.backend, cwd=node.directory)
    text = "\n".join(lines)
    assert all(line.split(" ", 1)[1].startswith("talk\t") for line in lines)  # each line names its function
    for expected in (f"START RequestId: {request_id}", "[INFO]\t", f"\t{request_id}\tinfo {word}", f"printed {word}",
                     f"to stderr {word}", f"raw descriptor {word}", f"END RequestId: {request_id}",
                     f"REPORT RequestId: {request_id}\tDuration:", "KeyError: 'missing'"):
        assert expected in text, (expected, text)
    order = [text.index(marker) for marker in (f"START RequestId: {request_id}", f"info {word}", f"printed {word}",
                                               f"END RequestId: {request_id}", f"REPORT RequestId: {request_id}")]
    assert order == sorted(order)
    # the node printed the same lines on its own output
    assert f"info {word}" in node.log() and f"raw descriptor {word}" in node.log()


def test_filters_select_by_level_text_and_function(node):
    word = uuid.uuid4().hex[:8]
    with node.client() as client:
        client.get("/talk", params={"word": word})
        client.get("/quiet", params={"n": word})
    wait_until(lambda: logs("quiet", "--grep", word, backend=node.backend, cwd=node.directory),
               timeout=5, message="the quiet function's line")
    errors = logs("talk", "--level", "error", "--grep", word, backend=node.backend, cwd=node.directory)
    assert len(errors) == 1 and f"failed {word}" in errors[0] and errors[0].split("\t", 1)[1].startswith("[ERROR]")
    # a traceback line has no level of its own: it takes the record's, so --level keeps it
    traceback = logs("talk", "--level", "ERROR", backend=node.backend, cwd=node.directory)
    assert any("KeyError: 'missing'" in line for line in traceback)
    assert not any("START RequestId" in line or "printed" in line for line in traceback)
    assert logs("talk", "--grep", f"quiet one {word}", backend=node.backend, cwd=node.directory) == []
    everything = logs("--grep", word, backend=node.backend, cwd=node.directory)
    assert {line.split()[1] for line in everything} == {"talk", "quiet"}
    assert logs("--since", "1s", "--grep", "no such text anywhere", backend=node.backend, cwd=node.directory) == []


def test_follow_shows_a_new_line_within_a_second(node):
    word = uuid.uuid4().hex[:8]
    follower = subprocess.Popen([sys.executable, "-m", "squall", "logs", "quiet", "--follow", "--since", "1s",
                                 "--grep", word, "--backend", node.backend], cwd=node.directory,
                                stdout=subprocess.PIPE, text=True)
    try:
        time.sleep(1.0)  # the follower is reading
        with node.client() as client:
            client.get("/quiet", params={"n": word})
        sent = time.monotonic()
        line = follower.stdout.readline()
        assert f"quiet one {word}" in line
        assert time.monotonic() - sent < 1.0
    finally:
        follower.terminate()
        follower.wait(5)


def test_what_a_handler_printed_before_its_timeout_is_kept(node):
    with node.client() as client:
        response = client.get("/hang")
    assert response.status_code == 504
    lines = wait_until(lambda: logs("hang", "--grep", "before the hang", backend=node.backend, cwd=node.directory),
                       timeout=5, message="the hung invocation's line")
    [start] = logs("hang", "--grep", "START RequestId", backend=node.backend, cwd=node.directory)
    request_id = start.split("RequestId: ")[1].split()[0]
    assert lines == logs("hang", "--request-id", request_id, "--grep", "before", backend=node.backend,
                         cwd=node.directory)


def test_a_log_storm_neither_blocks_the_node_nor_drowns_other_functions(node):
    word = uuid.uuid4().hex[:8]
    with node.client(timeout=60) as client:
        storm = subprocess.Popen([sys.executable, "-c", f"import httpx; print(httpx.get('{node.url}/storm', "
                                                        f"timeout=60).status_code)"],
                                 stdout=subprocess.PIPE, text=True)
        latencies = []
        for n in range(20):
            started = time.monotonic()
            assert client.get("/quiet", params={"n": f"{word}-{n}"}).status_code == 200
            latencies.append(time.monotonic() - started)
        assert storm.communicate(timeout=60)[0].strip() == "200"
    assert max(latencies) < 2.0, latencies  # the node kept answering during the storm
    wait_until(lambda: len(logs("quiet", "--grep", word, backend=node.backend, cwd=node.directory)) == 20,
               timeout=5, message="every quiet line")
    dropped = logs("storm", "--grep", "output dropped", backend=node.backend, cwd=node.directory)
    assert dropped and "over the log rate" in dropped[0]
    kept = sum(1 for line in logs("storm", "--since", "1m", backend=node.backend, cwd=node.directory)
               if line.endswith("x" * 1023))
    assert 1000 < kept < 100 * 1024  # the burst was kept, the rest dropped and said so
    metrics = httpx.get(f"http://127.0.0.1:{node.admin}/metrics", timeout=10).text
    [dropped_bytes] = [sample.value for family in text_string_to_metric_families(metrics)
                       for sample in family.samples if sample.name == "squall_log_dropped_bytes_total"
                       and sample.labels == {"function": "storm"}]
    assert 50 * 1024 * 1024 < dropped_bytes < 100 * 1024 * 1024


def test_nothing_is_stored_without_observability(tmp_path):
    backend = f"sqlite:///{tmp_path}/state.db"
    with NodeProcess(write_app(tmp_path, APP), backend=backend, extra=["--no-observability"]) as node:
        with node.client() as client:
            client.get("/quiet", params={"n": "unstored"})
        assert "quiet one unstored" in node.log()  # still printed
        time.sleep(0.5)
        assert logs("--since", "1h", backend=backend, cwd=tmp_path) == []


def test_two_nodes_on_redis_read_as_one_log(tmp_path, redis_server):
    url = f"redis://127.0.0.1:{redis_server.port}/14"
    redis.Redis.from_url(url).flushdb()
    app = write_app(tmp_path, APP)
    words = []
    with NodeProcess(app, backend=url, extra=["--node-id", "one"]) as one, \
            NodeProcess(app, backend=url, extra=["--node-id", "two"]) as two:
        for node in (one, two):
            word = uuid.uuid4().hex[:8]
            words.append(word)
            with node.client() as client:
                client.get("/quiet", params={"n": word})
        wait_until(lambda: len(logs("quiet", "--since", "1m", backend=url, cwd=tmp_path)) >= 2, timeout=5,
                   message="both nodes' lines")
    text = "\n".join(logs("quiet", "--since", "1m", backend=url, cwd=tmp_path))
    assert all(f"quiet one {word}" in text for word in words)
