"""What surrounds a handler, as a Python Lambda has it: the environment variables, the
per-invocation trace header, `context.log(msg)` — on a real node."""

from __future__ import annotations

import re
import sys

import pytest

from tests.support import NodeProcess, squall, write_app

VARIABLES = ["AWS_LAMBDA_FUNCTION_NAME", "AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "AWS_LAMBDA_FUNCTION_VERSION",
             "AWS_REGION", "AWS_DEFAULT_REGION", "AWS_LAMBDA_LOG_GROUP_NAME", "AWS_LAMBDA_LOG_STREAM_NAME",
             "_HANDLER", "LAMBDA_TASK_ROOT", "LAMBDA_RUNTIME_DIR", "AWS_EXECUTION_ENV",
             "AWS_LAMBDA_INITIALIZATION_TYPE", "TZ", "_X_AMZN_TRACE_ID"]

APP = f"""
    import os
    import time

    from squall import App

    app = App("lambda-env")
    VARIABLES = {VARIABLES!r}


    @app.http("GET", "/env", memory_mb=256)
    def env(event, ctx):
        return {{"env": {{name: os.environ.get(name) for name in VARIABLES}}, "stream": ctx.log_stream_name,
                "zone": time.localtime().tm_zone}}


    @app.http("GET", "/provisioned", provisioned_concurrency=1)
    def provisioned(event, ctx):
        return {{"type": os.environ.get("AWS_LAMBDA_INITIALIZATION_TYPE")}}


    @app.http("GET", "/log")
    def log(event, ctx):
        ctx.log("plain line from context.log")
        ctx.log.info("structured", n=1)
        return {{}}


    app.http("GET", "/legacy", handler="legacy.handler")
"""

LEGACY = """
    import os

    NAME_AT_IMPORT = os.environ["AWS_LAMBDA_FUNCTION_NAME"]  # at import time, as real modules do


    def handler(event, context):
        return {"name": NAME_AT_IMPORT, "handler": os.environ["_HANDLER"]}
"""


@pytest.fixture(scope="module")
def node(tmp_path_factory):
    directory = tmp_path_factory.mktemp("lambda-env")
    write_app(directory, LEGACY, name="legacy.py")
    with NodeProcess(write_app(directory, APP)) as running:
        running.directory = directory
        yield running


def test_every_variable_a_python_lambda_sets(node):
    with node.client() as client:
        first, second = client.get("/env").json(), client.get("/env").json()
    env = first["env"]
    assert env["AWS_LAMBDA_FUNCTION_NAME"] == "env"
    assert env["AWS_LAMBDA_FUNCTION_MEMORY_SIZE"] == "256"
    assert env["AWS_LAMBDA_FUNCTION_VERSION"] == "$LATEST"
    assert env["AWS_REGION"] == env["AWS_DEFAULT_REGION"] == "us-east-1"
    assert env["AWS_LAMBDA_LOG_GROUP_NAME"] == "/aws/lambda/env"
    assert re.fullmatch(r"\d{4}/\d{2}/\d{2}/\[\$LATEST\][0-9a-f]{32}", env["AWS_LAMBDA_LOG_STREAM_NAME"])
    assert first["stream"] == env["AWS_LAMBDA_LOG_STREAM_NAME"] == second["env"]["AWS_LAMBDA_LOG_STREAM_NAME"]
    assert env["_HANDLER"].endswith(".env")
    assert env["LAMBDA_TASK_ROOT"] == str(node.directory)
    assert env["LAMBDA_RUNTIME_DIR"].endswith("squall/runtime")
    assert env["AWS_EXECUTION_ENV"] == f"AWS_Lambda_python{sys.version_info.major}.{sys.version_info.minor}"
    assert env["AWS_LAMBDA_INITIALIZATION_TYPE"] == "on-demand"
    assert env["TZ"] == ":UTC" and first["zone"] == "UTC"
    # the invocation's own span, sampled: Squall records every invocation's trace by default
    trace = r"Root=1-[0-9a-f]{8}-[0-9a-f]{24};Parent=[0-9a-f]{16};Sampled=1"
    assert re.fullmatch(trace, env["_X_AMZN_TRACE_ID"])
    assert env["_X_AMZN_TRACE_ID"] != second["env"]["_X_AMZN_TRACE_ID"]  # one per invocation


def test_a_provisioned_instance_says_so(node):
    with node.client() as client:
        assert client.get("/provisioned").json() == {"type": "provisioned-concurrency"}


def test_a_handler_module_sees_its_environment_at_import_time(node):
    with node.client() as client:
        assert client.get("/legacy").json() == {"name": "legacy_handler", "handler": "legacy.handler"}


def test_context_log_is_callable(node):
    with node.client() as client:
        assert client.get("/log").status_code == 200
    log = node.log()
    assert "plain line from context.log" in log
    assert '"message": "structured"' in log


ENVIRONMENT_APP = """
    import os

    from squall import App

    app = App("envs", environment={"STAGE": "dev", "TABLE_NAME": "app-default"})


    @app.http("GET", "/orders", environment={"TABLE_NAME": "orders"})
    def orders(event, ctx):
        return {"table": os.environ["TABLE_NAME"], "stage": os.environ["STAGE"]}


    @app.http("GET", "/default")
    def default(event, ctx):
        return {"table": os.environ["TABLE_NAME"]}


    app.http("GET", "/users", handler="users.handler", environment={"TABLE_NAME": "users"})
"""

USERS = """
    import os

    TABLE = os.environ["TABLE_NAME"]  # read at import time: this function's value


    def handler(event, context):
        return {"table": TABLE}
"""


def test_each_function_has_its_own_environment(tmp_path):
    write_app(tmp_path, USERS, name="users.py")
    with NodeProcess(write_app(tmp_path, ENVIRONMENT_APP)) as node, node.client() as client:
        assert client.get("/orders").json() == {"table": "orders", "stage": "dev"}
        assert client.get("/default").json() == {"table": "app-default"}
        assert client.get("/users").json() == {"table": "users"}  # at import time, in its own instance
        assert client.get("/orders").json()["table"] == "orders"  # instances do not share it


@pytest.mark.parametrize("environment, complaint", [
    ({"AWS_REGION": "eu-west-1"}, "AWS_REGION is reserved"),
    ({"1BAD": "x"}, "invalid variable name '1BAD'"),
    ({"X": "x"}, "invalid variable name 'X'"),  # at least two characters
    ({"COUNT": 3}, "the value of COUNT must be a string"),
    ({"BIG": "x" * 4094}, "4097 bytes; Lambda allows 4096"),
])
def test_an_invalid_environment_is_refused_at_load(tmp_path, environment, complaint):
    app = write_app(tmp_path, f"""
        from squall import App

        app = App("bad")
        app.function(lambda event, ctx: 1, name="f", environment={environment!r})
    """)
    result = squall("invoke", str(app), "f", cwd=tmp_path)
    assert result.returncode == 1 and complaint in result.stderr, result.stderr
