"""What an instance inherits from its node's environment, on a real node: everything the
operator exported but Squall's own `SQUALL_*` variables; a function's `environment=` wins
over it, Lambda's reserved variables win over both, and no function sees another's."""

from __future__ import annotations

import pytest

from tests.support import NodeProcess, write_app

APP = """
    import os

    from squall import App

    app = App("inherit", environment={"STAGE": "app"})
    AT_IMPORT = {name: os.environ.get(name) for name in ("SQUALL_BACKEND", "LAMBDA_TASK_ROOT", "DATABASE_URL")}
    NAMES = ["DATABASE_URL", "STAGE", "OPERATOR_FLAG", "AWS_REGION", "TZ", "AWS_LAMBDA_FUNCTION_NAME", "TMPDIR",
             "AWS_XRAY_CONTEXT_MISSING"]


    def seen(event, ctx):
        return {"env": {name: os.environ.get(name) for name in NAMES},
                "squall": sorted(name for name in os.environ if name.startswith("SQUALL_")),
                "at_import": AT_IMPORT}


    app.http("GET", "/own", seen, name="own", environment={"DATABASE_URL": "postgres://own", "STAGE": "own"})
    app.http("GET", "/other", seen, name="other")
"""

NODE = {
    "DATABASE_URL": "postgres://node",
    "OPERATOR_FLAG": "on",
    "AWS_REGION": "eu-west-1",  # reserved by Lambda: the runtime's value wins
    "TZ": "Europe/Paris",  # likewise
    "TMPDIR": "/var/tmp",  # the instance's private /tmp wins
    "AWS_XRAY_CONTEXT_MISSING": "IGNORE_ERROR",  # a Lambda default the operator may change
    "SQUALL_OBJECTS": "",  # Squall's own: never inherited
}


@pytest.fixture(scope="module")
def node(tmp_path_factory):
    directory = tmp_path_factory.mktemp("inherit")
    with pytest.MonkeyPatch.context() as patch:
        for name, value in NODE.items():
            patch.setenv(name, value)
        # the node's backend, with what could be its credentials, given by the environment
        patch.setenv("SQUALL_BACKEND", f"sqlite:///{directory}/state.db")
        with NodeProcess(write_app(directory, APP)) as running:
            running.directory = directory
            yield running


def test_the_node_environment_is_inherited_under_the_function_and_lambda_variables(node):
    with node.client() as client:
        own, other = client.get("/own").json(), client.get("/other").json()
    assert own["env"] == {"DATABASE_URL": "postgres://own", "STAGE": "own", "OPERATOR_FLAG": "on",
                          "AWS_REGION": "us-east-1", "TZ": ":UTC", "AWS_LAMBDA_FUNCTION_NAME": "own", "TMPDIR": "/tmp",
                          "AWS_XRAY_CONTEXT_MISSING": "IGNORE_ERROR"}
    # another function's environment= never reaches it: it has the node's, then the app's
    assert other["env"] == {**own["env"], "DATABASE_URL": "postgres://node", "STAGE": "app",
                            "AWS_LAMBDA_FUNCTION_NAME": "other"}
    assert (node.directory / "state.db").exists()  # the node did use SQUALL_BACKEND


def test_squall_variables_reach_neither_instances_nor_the_app_import(node):
    with node.client() as client:
        seen = client.get("/other").json()
    assert seen["squall"] == []
    # the app file is imported by the zygote, with Lambda's app-wide variables but no function's
    assert seen["at_import"] == {"SQUALL_BACKEND": None, "LAMBDA_TASK_ROOT": str(node.directory),
                                 "DATABASE_URL": "postgres://node"}
