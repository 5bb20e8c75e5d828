"""A function's log as Lambda writes it, on a real node: the root logger's handler in
Lambda's text format, START/END/REPORT around each invocation, an error as `[ERROR] Type:
message` with its trace, print() in between."""

from __future__ import annotations

import json
import re

import pytest

from tests.support import NodeProcess, squall, write_app

APP = """
    import logging

    from squall import App

    # a no-op, as on Lambda: the runtime's handler is there first
    logging.basicConfig(level=logging.DEBUG, format="%(message)s")
    logger = logging.getLogger()
    logger.setLevel(logging.INFO)  # what nearly every AWS sample does

    app = App("logs")


    @app.http("GET", "/hello")
    def hello(event, ctx):
        logger.info("info from the root logger")
        logging.getLogger("mylib").warning("warning from a named logger")
        logger.debug("debug: below the level")
        print("printed to stdout")
        return {"ok": True}


    @app.function()
    def fails(event, ctx):
        return event["X-Forwarded-For"]
"""

ISO = r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z"


@pytest.fixture(scope="module")
def node(tmp_path_factory):
    directory = tmp_path_factory.mktemp("logs")
    with NodeProcess(write_app(directory, APP)) as running:
        running.directory = directory
        yield running


def test_logging_lines_are_in_lambdas_format_between_start_and_report(node):
    with node.client() as client:
        response = client.get("/hello")
    request_id = response.headers["apigw-requestid"]
    log = node.log()
    lines = log[log.index("START RequestId:"):].splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("START RequestId:"))
    invocation_id = re.match(r"START RequestId: (\S+) Version: \$LATEST$", lines[start]).group(1)
    assert invocation_id != request_id or invocation_id  # the Lambda request id, not API Gateway's
    body = lines[start + 1:start + 6]
    assert re.fullmatch(rf"\[INFO\]\t{ISO}\t{invocation_id}\tinfo from the root logger", body[0])
    assert re.fullmatch(rf"\[WARNING\]\t{ISO}\t{invocation_id}\twarning from a named logger", body[1])
    assert body[2] == "printed to stdout"
    assert body[3] == f"END RequestId: {invocation_id}"
    assert re.fullmatch(rf"REPORT RequestId: {invocation_id}\tDuration: [\d.]+ ms\tBilled Duration: \d+ ms\t"
                        r"Memory Size: 128 MB\tMax Memory Used: \d+ MB\tInit Duration: [\d.]+ ms", body[4])
    assert "debug: below the level" not in log


def test_a_failed_invocation_logs_the_error_and_its_trace(tmp_path):
    app = write_app(tmp_path, APP)
    result = squall("invoke", str(app), "fails", "--data", "{}", cwd=tmp_path)
    assert result.returncode == 1
    error = json.loads(result.stdout)
    assert error["errorType"] == "KeyError" and error["errorMessage"] == "'X-Forwarded-For'"
    assert error["requestId"] and error["stackTrace"]
    output = result.stdout + result.stderr
    assert "[ERROR] KeyError: 'X-Forwarded-For'\nTraceback (most recent call last):\n" in output
    assert 'return event["X-Forwarded-For"]' in output
