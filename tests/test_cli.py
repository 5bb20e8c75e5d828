"""The `squall` command line as a user meets it: real subprocesses, real state on disk."""

from __future__ import annotations

import json
import time
from pathlib import Path

import click
import httpx
import pytest

from squall.backends import open_backend
from squall.cli import main
from tests.support import NodeProcess, platform_tracebacks, squall, wait_until, write_app

APP = """
from squall import App

app = App("clidemo")


@app.function()
def ping(event, ctx):
    return {"pong": event}


@app.on_queue("jobs", max_receive_count=1, visibility_timeout=1)
def work(event, ctx):
    for record in event["Records"]:
        if record["body"] == "poison":
            raise ValueError("cannot digest poison")


@app.on_queue("emails", dlq="bounced")
def mail(event, ctx):
    pass
"""

#: No inherited SQUALL_BACKEND: tests that want one set it themselves.
NO_ENV_BACKEND = {"SQUALL_BACKEND": ""}


def command_paths(group: click.Group = main, prefix: tuple[str, ...] = ()):
    """Every command and subcommand of the CLI, as argument tuples."""
    for name, command in sorted(group.commands.items()):
        yield prefix + (name,)
        if isinstance(command, click.Group):
            yield from command_paths(command, prefix + (name,))


def assert_one_line_error(result, *fragments: str) -> None:
    """A failed command says what went wrong in one line on stderr, without a traceback."""
    assert result.returncode != 0, result.stdout
    assert "Traceback" not in result.stderr + result.stdout
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    for fragment in fragments:
        assert fragment in lines[0]


def queue_rows(output: str) -> dict[str, dict[str, str]]:
    """`squall queues` table -> {queue: {column: value}}."""
    header, *rows = [line.split() for line in output.strip().splitlines()]
    return {row[0]: dict(zip(header, row, strict=False)) for row in rows}


def sqlite_url(path: Path) -> str:
    return f"sqlite:///{path}"


@pytest.fixture
def app(tmp_path) -> Path:
    return write_app(tmp_path, APP)


# ---- help -------------------------------------------------------------------------------

def test_the_documented_commands_exist():
    paths = set(command_paths())
    assert {("run",), ("dev",), ("invoke",), ("send",), ("queues",), ("dlq", "list"), ("dlq", "redrive")} <= paths


@pytest.mark.parametrize("command", [(), *command_paths()], ids=lambda c: " ".join(c) or "squall")
def test_every_command_has_help(command):
    result = squall(*command, "--help")
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("Usage:")
    assert result.stderr == ""


# ---- errors -----------------------------------------------------------------------------

BAD_APPS = {
    "missing.py": None,
    "syntax.py": "from squall import App\napp = App('x'\n",
    "raises.py": "raise RuntimeError('config server is down')\n",
    "empty.py": "x = 1\n",
}


@pytest.mark.parametrize("command,name,fragment", [
    ("invoke", "missing.py", "not found"), ("invoke", "syntax.py", "syntax error"),
    ("invoke", "raises.py", "config server is down"), ("invoke", "empty.py", "exactly one App"),
    ("run", "missing.py", "not found"), ("run", "syntax.py", "syntax error"),
    ("dev", "missing.py", "not found"), ("dev", "raises.py", "config server is down"),
])
def test_bad_app_file_is_one_line(tmp_path, command, name, fragment):
    if BAD_APPS[name] is not None:
        (tmp_path / name).write_text(BAD_APPS[name])
    args = [command, name] + (["ping"] if command == "invoke" else ["--port", "0"])
    assert_one_line_error(squall(*args, cwd=tmp_path, env=NO_ENV_BACKEND, timeout=30), name, fragment)


def test_unknown_function(app):
    assert_one_line_error(squall("invoke", str(app), "nope", env=NO_ENV_BACKEND), "unknown function 'nope'", "ping")


def test_bad_data_json(app):
    assert_one_line_error(squall("invoke", str(app), "ping", "--data", "{oops", env=NO_ENV_BACKEND),
                          "--data is not valid JSON")


def test_unknown_queue(app):
    assert squall("invoke", str(app), "ping", env=NO_ENV_BACKEND).returncode == 0  # declares the app's queues
    result = squall("send", "nope", "hello", cwd=app.parent, env=NO_ENV_BACKEND)
    assert_one_line_error(result, "unknown queue 'nope'", "jobs")
    assert_one_line_error(squall("dlq", "list", "nope", cwd=app.parent, env=NO_ENV_BACKEND), "unknown queue 'nope'")
    assert_one_line_error(squall("dlq", "redrive", "nope", cwd=app.parent, env=NO_ENV_BACKEND),
                          "unknown queue 'nope'")


def test_message_over_256_kib_is_refused(app):
    """SQS counts attributes in the size; a single argv string is capped at 128 KiB on Linux."""
    assert squall("invoke", str(app), "ping", env=NO_ENV_BACKEND).returncode == 0
    chunk = "x" * (100 * 1024)
    result = squall("send", "jobs", chunk, "-a", f"a={chunk}", "-a", f"b={chunk}", cwd=app.parent,
                    env=NO_ENV_BACKEND)
    assert_one_line_error(result, "256 KiB")
    assert queue_rows(squall("queues", cwd=app.parent, env=NO_ENV_BACKEND).stdout)["jobs"]["DEPTH"] == "0"


def test_malformed_attribute(app):
    assert squall("invoke", str(app), "ping", env=NO_ENV_BACKEND).returncode == 0
    assert_one_line_error(squall("send", "jobs", "hi", "-a", "novalue", cwd=app.parent, env=NO_ENV_BACKEND),
                          "NAME=VALUE")


@pytest.mark.parametrize("args", [["queues"], ["send", "jobs", "hi"], ["dlq", "list", "jobs"],
                                  ["invoke", "APP", "ping"]])
def test_unknown_backend_scheme(app, args):
    args = [str(app) if a == "APP" else a for a in args]
    assert_one_line_error(squall(*args, "--backend", "mysql://db/state", env=NO_ENV_BACKEND),
                          "unknown backend URL 'mysql://db/state'")


def test_unknown_backend_scheme_from_the_environment():
    assert_one_line_error(squall("queues", env={"SQUALL_BACKEND": "mysql://db/state"}),
                          "unknown backend URL 'mysql://db/state'")


# ---- where state lives ------------------------------------------------------------------

def test_squall_backend_env_var_is_honoured(tmp_path, app):
    env = {"SQUALL_BACKEND": sqlite_url(tmp_path / "elsewhere" / "state.db")}
    (tmp_path / "elsewhere").mkdir()
    assert squall("invoke", str(app), "ping", env=env).returncode == 0
    assert squall("send", "jobs", "hello", env=env, cwd=tmp_path).returncode == 0
    rows = queue_rows(squall("queues", env=env, cwd=tmp_path).stdout)
    assert rows["jobs"]["DEPTH"] == "1"
    assert (tmp_path / "elsewhere" / "state.db").exists()
    assert not (tmp_path / ".squall").exists(), "the default location must not be used"


def test_default_state_is_next_to_the_app_or_in_the_cwd(tmp_path):
    project = tmp_path / "project"
    project.mkdir()
    app = write_app(project, APP)
    result = squall("invoke", "project/app.py", "ping", "--data", '"hi"', cwd=tmp_path, env=NO_ENV_BACKEND)
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout) == {"pong": "hi"}
    assert (project / ".squall" / "state.db").exists()
    assert not (tmp_path / ".squall").exists(), "commands with an APP keep state next to the app"

    # commands without an APP use ./.squall/state.db: the app's queues are there only in its directory
    assert squall("send", "jobs", "hello", cwd=app.parent, env=NO_ENV_BACKEND).returncode == 0
    assert queue_rows(squall("queues", cwd=app.parent, env=NO_ENV_BACKEND).stdout)["jobs"]["DEPTH"] == "1"
    assert_one_line_error(squall("send", "jobs", "hello", cwd=tmp_path, env=NO_ENV_BACKEND), "unknown queue 'jobs'")
    assert (tmp_path / ".squall" / "state.db").exists()


# ---- queues -------------------------------------------------------------------------------

def test_declared_queues_are_listed_once_invoke_ran(app):
    assert squall("invoke", str(app), "ping", env=NO_ENV_BACKEND).returncode == 0
    result = squall("queues", cwd=app.parent, env=NO_ENV_BACKEND)
    assert result.returncode == 0, result.stderr
    rows = queue_rows(result.stdout)
    assert set(rows) == {"jobs", "emails"}, "dead-letter and internal queues are not rows of their own"
    assert rows["jobs"]["DLQ"] == "jobs-dlq"
    assert rows["emails"]["DLQ"] == "bounced"
    every = queue_rows(squall("queues", "--all", cwd=app.parent, env=NO_ENV_BACKEND).stdout)
    assert "async.ping" in every


def test_send_then_queues_shows_depth(app):
    assert squall("invoke", str(app), "ping", env=NO_ENV_BACKEND).returncode == 0
    ids = []
    for body in ["one", "two"]:
        result = squall("send", "jobs", body, cwd=app.parent, env=NO_ENV_BACKEND)
        assert result.returncode == 0, result.stderr
        ids.append(result.stdout.strip())
    assert squall("send", "jobs", "later", "--delay", "60", cwd=app.parent, env=NO_ENV_BACKEND).returncode == 0
    assert len(set(ids)) == 2 and all(ids)
    rows = queue_rows(squall("queues", cwd=app.parent, env=NO_ENV_BACKEND).stdout)
    assert rows["jobs"] == {"QUEUE": "jobs", "DEPTH": "3", "IN_FLIGHT": "0", "DLQ": "jobs-dlq", "DLQ_DEPTH": "0",
                            "FILTERED": "0"}
    assert rows["emails"]["DEPTH"] == "0"


def test_failed_message_reaches_the_dlq_and_is_redriven(app):
    url = sqlite_url(app.parent / "state.db")
    with NodeProcess(app, backend=url):
        rows = queue_rows(squall("queues", "--backend", url).stdout)
        assert set(rows) == {"jobs", "emails"}, "a started node declares the app's queues"
        assert squall("send", "jobs", "poison", "--backend", url).returncode == 0
        store = open_backend(url)
        try:
            wait_until(lambda: store.queue_stats("jobs-dlq").total == 1, timeout=20, message="poison in the DLQ")
        finally:
            store.close()
    rows = queue_rows(squall("queues", "--backend", url).stdout)
    assert (rows["jobs"]["DEPTH"], rows["jobs"]["DLQ_DEPTH"]) == ("0", "1")

    listed = squall("dlq", "list", "jobs", "--backend", url)
    assert listed.returncode == 0, listed.stderr
    [message] = [json.loads(line) for line in listed.stdout.splitlines()]
    assert message["body"] == "poison"

    redrive = squall("dlq", "redrive", "jobs", "--backend", url)
    assert redrive.returncode == 0, redrive.stderr
    assert "redrove 1 message(s) to jobs" in redrive.stdout
    rows = queue_rows(squall("queues", "--backend", url).stdout)
    assert (rows["jobs"]["DEPTH"], rows["jobs"]["DLQ_DEPTH"]) == ("1", "0")


# ---- squall dev ---------------------------------------------------------------------------

HELLO = """
from squall import App

app = App("devdemo")


@app.http("GET", "/hello")
def hello(event, ctx):
    return "{greeting}"
"""


def test_dev_serves_and_reloads_when_the_app_changes(tmp_path):
    app = write_app(tmp_path, HELLO.format(greeting="hello v1"))
    with NodeProcess(app, command="dev") as node:
        def greeting() -> str | None:
            try:
                response = httpx.get(node.url + "/hello", timeout=5)
            except httpx.HTTPError:
                return None  # the node is restarting
            return response.text if response.status_code == 200 else None

        assert wait_until(greeting, timeout=10, message="the first response") == "hello v1"
        assert (tmp_path / ".squall" / "state.db").exists(), "dev keeps state in .squall/ next to the app"
        app.write_text(HELLO.format(greeting="hello v2"))
        wait_until(lambda: greeting() == "hello v2", timeout=15, message="the reloaded app to answer")
        assert node.process.poll() is None


STDLIB_NAMED_APP = """
import json

from squall import App

app = App("shadowing")


@app.function()
def context_facts(event, ctx):
    return {"arn": ctx.invoked_function_arn, "stream": ctx.log_stream_name}


@app.http("GET", "/facts")
def facts(event, ctx):
    return json.dumps(context_facts(event, ctx))
"""


@pytest.mark.parametrize("cwd_is_app_dir", [True, False], ids=["cwd=app", "cwd=elsewhere"])
def test_an_app_file_named_like_a_standard_module_loads(tmp_path, cwd_is_app_dir):
    """queue.py used to be registered as the module `queue`, so the thread pool's
    `queue.SimpleQueue` was looked up on the app and `squall invoke` died."""
    app = write_app(tmp_path, STDLIB_NAMED_APP, name="queue.py")
    cwd = tmp_path if cwd_is_app_dir else tmp_path.parent
    # a zone far from UTC: the log stream is named after the UTC date, as on Lambda
    result = squall("invoke", str(app), "context_facts", cwd=cwd, env={**NO_ENV_BACKEND, "TZ": "Etc/GMT+12"})
    assert result.returncode == 0, result.stderr
    assert "Traceback" not in result.stderr
    facts = json.loads(result.stdout)
    assert facts["arn"] == "arn:aws:lambda:us-east-1:000000000000:function:context_facts"
    assert facts["stream"].startswith(time.strftime("%Y/%m/%d/[$LATEST]", time.gmtime()))


def test_a_node_serves_an_app_named_like_a_standard_module(tmp_path):
    app = write_app(tmp_path, STDLIB_NAMED_APP, name="queue.py")
    with NodeProcess(app) as node:
        response = httpx.get(node.url + "/facts", timeout=10)
        assert response.status_code == 200, node.log()
        assert json.loads(response.text)["arn"].endswith(":function:facts")
        assert platform_tracebacks(node.log()) == 0


def test_metering_retention_is_checked(app):
    result = squall("run", str(app), "--metering-retention", "0", cwd=app.parent)
    assert result.returncode == 2
    assert "--metering-retention" in result.stderr and "Traceback" not in result.stderr
