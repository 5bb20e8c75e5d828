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


# ---- Lambda's JSON log format and its levels ----------------------------------------------

JSON_APP = """
    import logging
    import os

    from squall import App

    app = App("jsonlogs", log_format="JSON")  # the app's default: every function but `text` below
    root = logging.getLogger()


    def seen(ctx):
        return {"requestId": ctx.aws_request_id, "format": os.environ["AWS_LAMBDA_LOG_FORMAT"],
                "level": os.environ.get("AWS_LAMBDA_LOG_LEVEL")}


    @app.http("GET", "/json")
    def json_default(event, ctx):
        root.info("info line", extra={"order": "o1"})
        try:
            {}["missing"]
        except KeyError:
            root.exception("caught")
        root.debug("debug: below INFO")
        print("printed as is")
        return seen(ctx)


    @app.http("GET", "/debug", application_log_level="TRACE", system_log_level="DEBUG")
    def debug(event, ctx):
        logging.getLogger("mylib").debug("debug line")
        return seen(ctx)


    @app.http("GET", "/fails")
    def fails(event, ctx):
        return event["X-Forwarded-For"]


    @app.http("GET", "/text", log_format="Text")
    def text(event, ctx):
        return seen(ctx)


    # Powertools reads AWS_LAMBDA_LOG_LEVEL when its Logger is made: in a module of its own,
    # imported in the function's instance, as on Lambda
    app.http("GET", "/powertools", handler="pt.handler", name="powertools")
    app.http("GET", "/powertools/errors", handler="pt.handler", name="powertools_errors",
             application_log_level="ERROR", system_log_level="WARN")
"""

POWERTOOLS = """
    import logging

    from aws_lambda_powertools import Logger

    logger = Logger(service="shop")


    @logger.inject_lambda_context
    def handler(event, context):
        logging.getLogger().info("root info")
        logging.getLogger().error("root error")
        logger.info("powertools info")
        logger.error("powertools error")
        return {"requestId": context.aws_request_id}
"""

ISO_MS = r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z"


@pytest.fixture(scope="module")
def json_node(tmp_path_factory):
    directory = tmp_path_factory.mktemp("jsonlogs")
    write_app(directory, POWERTOOLS, "pt.py")
    with NodeProcess(write_app(directory, JSON_APP)) as running:
        yield running


def records(log: str) -> list[dict]:
    """The log's JSON lines (the node's own lines and print()'s text are not)."""
    found = []
    for line in log.splitlines():
        try:
            value = json.loads(line)
        except ValueError:
            continue
        if isinstance(value, dict):
            found.append(value)
    return found


def of_request(log: str, request_id: str) -> list[dict]:
    """The records of one invocation: the function's, and the platform's about it."""
    return [r for r in records(log) if request_id in (r.get("requestId"), r.get("function_request_id"),
                                                      (r.get("record") or {}).get("requestId"))]


def test_json_format_writes_the_runtimes_records_and_the_platforms(json_node):
    with json_node.client() as client:
        body = client.get("/json").json()
    assert body["format"] == "JSON" and body["level"] == "INFO"  # as Lambda sets them
    request_id = body["requestId"]
    log = json_node.log()
    start, info, caught, report = of_request(log, request_id)

    assert start["type"] == "platform.start" and re.fullmatch(ISO_MS, start["time"])
    assert start["record"] == {"requestId": request_id, "version": "$LATEST"}
    assert list(info) == ["timestamp", "level", "message", "logger", "requestId", "order"]
    assert re.fullmatch(ISO_MS, info["timestamp"])
    assert info | {"timestamp": None} == {"timestamp": None, "level": "INFO", "message": "info line", "logger": "root",
                                          "requestId": request_id, "order": "o1"}
    assert caught["level"] == "ERROR" and caught["message"] == "caught"
    assert caught["errorType"] == "KeyError" and caught["errorMessage"] == "'missing'"
    assert 'in json_default\n    {}["missing"]' in caught["stackTrace"][0]
    assert re.fullmatch(r".*app\.py:json_default:\d+", caught["location"])
    assert report["type"] == "platform.report" and report["record"]["status"] == "success"
    metrics = report["record"]["metrics"]
    assert list(metrics) == ["durationMs", "billedDurationMs", "memorySizeMB", "maxMemoryUsedMB", "initDurationMs"]
    assert metrics["memorySizeMB"] == 128 and metrics["billedDurationMs"] >= metrics["durationMs"] > 0
    assert "debug: below INFO" not in log
    assert "printed as is" in log
    assert f"START RequestId: {request_id}" not in log and f"END RequestId: {request_id}" not in log

    with json_node.client() as client:  # warm: no init duration
        again = client.get("/json").json()["requestId"]
    [report] = [r for r in of_request(json_node.log(), again) if r.get("type") == "platform.report"]
    assert "initDurationMs" not in report["record"]["metrics"]


def test_system_level_debug_adds_runtime_done_and_trace_is_debug(json_node):
    with json_node.client() as client:
        body = client.get("/debug").json()
    assert body["level"] == "TRACE"
    types = [r.get("type") or r["level"] for r in of_request(json_node.log(), body["requestId"])]
    assert types == ["platform.start", "DEBUG", "platform.runtimeDone", "platform.report"]
    [done] = [r for r in of_request(json_node.log(), body["requestId"]) if r.get("type") == "platform.runtimeDone"]
    assert done["record"]["status"] == "success"
    assert list(done["record"]["metrics"]) == ["durationMs", "producedBytes"]
    assert done["record"]["metrics"]["producedBytes"] > 0


def test_a_failed_invocation_logs_the_runtimes_json_error(json_node):
    with json_node.client() as client:
        assert client.get("/fails").status_code == 500
    [error] = [r for r in records(json_node.log()) if r.get("errorMessage") == "'X-Forwarded-For'"]
    assert list(error) == ["timestamp", "level", "errorMessage", "errorType", "requestId", "stackTrace"]
    assert re.fullmatch(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}", error["timestamp"])  # the runtime's: no ms
    assert error["level"] == "ERROR" and error["errorType"] == "KeyError"
    assert 'return event["X-Forwarded-For"]' in error["stackTrace"][0]
    [report] = [r for r in of_request(json_node.log(), error["requestId"]) if r.get("type") == "platform.report"]
    assert report["record"]["status"] == "error" and report["record"]["errorType"] == "KeyError"


def test_text_format_is_kept_per_function(json_node):
    with json_node.client() as client:
        body = client.get("/text").json()
    assert body["format"] == "Text" and body["level"] is None
    assert f"START RequestId: {body['requestId']} Version: $LATEST" in json_node.log()


def test_powertools_logger_lines_carry_the_request_id(json_node):
    with json_node.client() as client:
        request_id = client.get("/powertools").json()["requestId"]
    lines = {r["message"]: r for r in of_request(json_node.log(), request_id) if "message" in r}
    assert set(lines) == {"root info", "root error", "powertools info", "powertools error"}
    assert lines["powertools info"]["function_request_id"] == request_id
    assert lines["powertools info"]["level"] == "INFO" and lines["powertools info"]["service"] == "shop"


def test_application_level_error_drops_info_and_system_level_warn_the_platform_records(json_node):
    with json_node.client() as client:
        request_id = client.get("/powertools/errors").json()["requestId"]
    found = of_request(json_node.log(), request_id)
    assert [r["message"] for r in found] == ["root error", "powertools error"]
    assert found[0]["level"] == "ERROR" and found[1]["function_request_id"] == request_id


@pytest.mark.parametrize("options,complaint", [
    ({"log_format": "json"}, "invalid log_format 'json': must be one of 'Text', 'JSON'"),
    ({"application_log_level": "DEBUG"}, "application_log_level='DEBUG' needs log_format='JSON'"),
    ({"log_format": "Text", "system_log_level": "INFO"}, "system_log_level='INFO' needs log_format='JSON'"),
    ({"log_format": "JSON", "application_log_level": "WARNING"}, "invalid application_log_level 'WARNING'"),
    ({"log_format": "JSON", "system_log_level": "ERROR"}, "invalid system_log_level 'ERROR'"),
])
def test_bad_logging_options_are_refused_at_load(tmp_path, options, complaint):
    app = write_app(tmp_path, f"""
        from squall import App

        app = App("bad")
        app.function(lambda event, ctx: None, name="f", **{options!r})
    """)
    result = squall("invoke", str(app), "f", cwd=tmp_path)
    assert result.returncode == 1
    assert complaint in result.stderr and len(result.stderr.strip().splitlines()) == 1
