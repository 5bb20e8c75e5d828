"""The context a handler receives, attribute by attribute against the Python runtime
interface client's `LambdaContext` (awslambdaric/lambda_context.py), on a real node; and
`squall invoke --client-context` end to end."""

from __future__ import annotations

import base64
import json
import re

import pytest

from tests.support import NodeProcess, squall, write_app

APP = """
    import os

    from squall import App

    app = App("ctx")


    def client_context(ctx):
        cc = ctx.client_context
        if cc is None:
            return None
        client = None if cc.client is None else {name: getattr(cc.client, name) for name in cc.client.__slots__}
        return {"custom": cc.custom, "env": cc.env, "client": client}


    @app.http("GET", "/ctx", timeout=5, memory_mb=256)
    @app.function(timeout=5, memory_mb=256)
    def show(event, ctx):
        ctx.log("from context.log")
        return {
            "aws_request_id": ctx.aws_request_id,
            "function_name": [ctx.function_name, os.environ["AWS_LAMBDA_FUNCTION_NAME"]],
            "function_version": [ctx.function_version, os.environ["AWS_LAMBDA_FUNCTION_VERSION"]],
            "memory_limit_in_mb": [ctx.memory_limit_in_mb, os.environ["AWS_LAMBDA_FUNCTION_MEMORY_SIZE"]],
            "memory_type": type(ctx.memory_limit_in_mb).__name__,
            "log_group_name": [ctx.log_group_name, os.environ["AWS_LAMBDA_LOG_GROUP_NAME"]],
            "log_stream_name": [ctx.log_stream_name, os.environ["AWS_LAMBDA_LOG_STREAM_NAME"]],
            "invoked_function_arn": ctx.invoked_function_arn,
            "remaining": ctx.get_remaining_time_in_millis(),
            "remaining_type": type(ctx.get_remaining_time_in_millis()).__name__,
            "identity": [type(ctx.identity).__name__, ctx.identity.cognito_identity_id,
                         ctx.identity.cognito_identity_pool_id],
            "tenant_id": ctx.tenant_id,
            "client_context": client_context(ctx),
            "headers": dict(ctx.invocation_headers),
            "nested": ctx.invoke("nested") if event and event.get("nest") else None,
        }


    @app.function
    def nested(event, ctx):
        return {"client_context": client_context(ctx), "headers": dict(ctx.invocation_headers)}
"""

CLIENT_CONTEXT = {"client": {"installation_id": "i-1", "app_title": "Shop", "app_version_name": "1.2",
                             "app_version_code": "12", "app_package_name": "com.example.shop"},
                  "custom": {"cart": "c-9"}, "env": {"platform": "Android", "locale": "en_GB"}}


def b64(value) -> str:
    return base64.b64encode(json.dumps(value).encode()).decode()


@pytest.fixture(scope="module")
def node(tmp_path_factory):
    with NodeProcess(write_app(tmp_path_factory.mktemp("ctx"), APP)) as running:
        yield running


def test_every_attribute_as_the_runtime_interface_client_has_it(node):
    with node.client() as client:
        seen = client.get("/ctx").json()
    for name in ("function_name", "function_version", "memory_limit_in_mb", "log_group_name", "log_stream_name"):
        assert seen[name][0] == seen[name][1], name  # the RIC reads each from the environment
    assert seen["function_name"][0] == "show"
    assert seen["function_version"][0] == "$LATEST"
    assert seen["memory_limit_in_mb"][0] == "256" and seen["memory_type"] == "str"
    assert seen["log_group_name"][0] == "/aws/lambda/show"
    assert re.fullmatch(r"\d{4}/\d{2}/\d{2}/\[\$LATEST\][0-9a-f]{32}", seen["log_stream_name"][0])
    assert re.fullmatch(r"arn:aws:lambda:us-east-1:\d{12}:function:show", seen["invoked_function_arn"])
    assert re.fullmatch(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}", seen["aws_request_id"])
    assert 0 < seen["remaining"] <= 5000 and seen["remaining_type"] == "int"
    assert seen["identity"] == ["CognitoIdentity", None, None]  # an object, never None, as the RIC makes it
    assert seen["tenant_id"] is None
    assert seen["client_context"] is None  # nobody gave one
    assert "from context.log" in node.log()


def test_client_context_from_squall_invoke_as_the_aws_cli_takes_it(tmp_path):
    app = write_app(tmp_path, APP)
    result = squall("invoke", str(app), "show", "--data", '{"nest": true}', "--client-context", b64(CLIENT_CONTEXT),
                    cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    seen = json.loads(result.stdout)
    assert seen["client_context"] == CLIENT_CONTEXT
    # it is the context's, not an invocation header (the only one is the trace context)
    assert set(seen["headers"]) == {"traceparent"}
    # Lambda hands a client context only to the invocation it was given with; a nested call
    # carries the trace context and the chain's lineage (recursive loop detection)
    assert seen["nested"]["client_context"] is None
    assert set(seen["nested"]["headers"]) == {"traceparent", "lineage"}


def test_client_context_parts_absent_are_none(tmp_path):
    app = write_app(tmp_path, APP)
    result = squall("invoke", str(app), "show", "--client-context", '{"custom": {"k": "v"}}', cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["client_context"] == {"custom": {"k": "v"}, "env": None, "client": None}


@pytest.mark.parametrize("value,complaint", [
    ("not base64!", "neither a JSON object nor its base64"),
    (base64.b64encode(b"[1, 2]").decode(), "must be a JSON object, not list"),
    ("{oops", "is not valid JSON"),
    (b64({"client": "x"}), "'client' must be a JSON object"),
    ("A" * 3584, "3584 bytes of base64; Lambda allows 3583"),
])
def test_a_bad_client_context_is_one_line(tmp_path, value, complaint):
    app = write_app(tmp_path, APP)
    result = squall("invoke", str(app), "show", "--client-context", value, cwd=tmp_path)
    assert result.returncode == 1
    assert complaint in result.stderr and len(result.stderr.strip().splitlines()) == 1
