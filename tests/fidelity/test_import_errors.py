"""A handler module that fails to initialise, reported as Lambda's runtime reports it
(awslambdaric/bootstrap.py `_get_handler` and `run`): its error type and message, its log
in the runtime's format once per failed init, 502 to an HTTP caller, one line in the
node's log per distinct error; and an app file that fails to import, one line naming its
file and line for `squall run`, `dev` and `invoke`."""

from __future__ import annotations

import json

import pytest

from tests.support import NodeProcess, free_port, platform_tracebacks, squall, write_app

APP = """
    from squall import App

    app = App("imports")
    app.http("GET", "/keyerror", handler="needs_table.handler", name="keyerror")
    app.http("GET", "/syntax", handler="synmod.handler", name="syntax")
    app.http("GET", "/missing", handler="okmod.nothere", name="missing")
    app.http("GET", "/dependency", handler="needs_dep.handler", name="dependency")
    app.http("GET", "/json", handler="needs_dep.handler", name="json_format", log_format="JSON")
"""

MODULES = {
    "needs_table.py": "import os\n\nTABLE = os.environ['TABLE_NAME']\n\n\ndef handler(event, context):\n"
                      "    return TABLE\n",
    "synmod.py": "def handler(event, context)\n    return 1\n",
    "okmod.py": "def handler(event, context):\n    return 1\n",
    "needs_dep.py": "import squall_no_such_dependency\n\n\ndef handler(event, context):\n    return 1\n",
}

#: function: (errorType, errorMessage), as Lambda's runtime gives them
EXPECTED = {
    "keyerror": ("KeyError", "'TABLE_NAME'"),
    "syntax": ("Runtime.UserCodeSyntaxError", "Syntax error in module 'synmod': expected ':' (synmod.py, line 1)"),
    "missing": ("Runtime.HandlerNotFound", "Handler 'nothere' missing on module 'okmod'"),
    "dependency": ("Runtime.ImportModuleError",
                   "Unable to import module 'needs_dep': No module named 'squall_no_such_dependency'"),
}


def write(directory):
    for name, source in MODULES.items():
        (directory / name).write_text(source)
    return write_app(directory, APP)


@pytest.fixture(scope="module")
def node(tmp_path_factory):
    with NodeProcess(write(tmp_path_factory.mktemp("imports"))) as running:
        yield running


@pytest.mark.parametrize("function", EXPECTED)
def test_squall_invoke_prints_lambdas_init_error(tmp_path, function):
    result = squall("invoke", str(write(tmp_path)), function, cwd=tmp_path)
    assert result.returncode == 1
    error = json.loads(result.stdout)
    assert (error["errorType"], error["errorMessage"]) == EXPECTED[function]
    assert f"[ERROR] {error['errorType']}: {error['errorMessage']}\nTraceback (most recent call last):\n" \
           in result.stderr


def test_the_traces_are_the_users(tmp_path):
    app = write(tmp_path)
    raised = json.loads(squall("invoke", str(app), "keyerror", cwd=tmp_path).stdout)["stackTrace"]
    assert raised[0].startswith(f'  File "{tmp_path / "needs_table.py"}", line 3, in <module>\n')
    assert not any("squall" in line or "importlib" in line for line in raised)  # no frame of ours above it
    syntax = json.loads(squall("invoke", str(app), "syntax", cwd=tmp_path).stdout)["stackTrace"]
    assert syntax == [f'  File "{tmp_path / "synmod.py"}" Line 1\n    def handler(event, context)\n']
    assert json.loads(squall("invoke", str(app), "missing", cwd=tmp_path).stdout)["stackTrace"] == []


def test_http_callers_get_502_and_the_node_logs_each_error_once(node):
    with node.client() as client:
        for _ in range(3):
            for function in EXPECTED:
                assert client.get(f"/{function}").status_code == 502
    log = node.log()
    for function, (error_type, message) in EXPECTED.items():
        # each failed init is logged by its instance, as on Lambda; the node says it once
        assert log.count(f"[ERROR] {error_type}: {message}\n") == 3
        assert log.count(f"function {function} cannot initialise: {error_type}: {message}") == 1
    assert platform_tracebacks(log) == 0


def test_under_the_json_format_the_init_error_is_the_runtimes_json_record(node):
    with node.client() as client:
        assert client.get("/json").status_code == 502
    [record] = [json.loads(line) for line in node.log().splitlines()
                if line.startswith("{") and "squall_no_such_dependency" in line]
    assert list(record) == ["timestamp", "level", "errorMessage", "errorType", "requestId", "stackTrace"]
    assert record["errorType"] == "Runtime.ImportModuleError" and record["requestId"] == ""


# ---- the app file itself ---------------------------------------------------------------------

APP_FILES = {
    "raises": ("import os\n\nfrom squall import App\nTABLE = os.environ['SQUALL_TEST_NO_SUCH_TABLE']\n"
               "app = App('x')\n", "cannot load app2.py: KeyError: 'SQUALL_TEST_NO_SUCH_TABLE' (app2.py:4)"),
    "syntax": ("from squall import App\n\napp = App('x')\nif True\n    pass\n",
               "cannot load app2.py: syntax error at app2.py:4: expected ':'"),
}


@pytest.mark.parametrize("command", ["run", "dev", "invoke"])
@pytest.mark.parametrize("case", APP_FILES)
def test_an_app_file_that_fails_to_import_is_one_line_with_its_file_and_line(tmp_path, command, case):
    source, expected = APP_FILES[case]
    write_app(tmp_path, source, "app2.py")
    args = ["f"] if command == "invoke" else ["--port", str(free_port())]
    result = squall(command, "app2.py", *args, "--backend", f"sqlite:///{tmp_path}/state.db", cwd=tmp_path,
                    timeout=30)
    assert result.returncode == 1
    assert result.stderr.strip() == f"Error: {expected}"
    assert "Traceback" not in result.stdout + result.stderr
