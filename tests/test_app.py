"""Bad declarations fail at load with a ConfigError naming the problem; bad app files make
`squall run` exit with one readable line instead of a traceback."""

from __future__ import annotations

import pytest

from squall import App
from squall.backends import open_backend
from squall.errors import ConfigError
from squall.services import Queue, Table
from tests.support import free_port, squall, write_app


def handler(event, ctx):
    return event


@pytest.fixture
def app() -> App:
    return App("declarations")


# ---- function limits ------------------------------------------------------------------


@pytest.mark.parametrize("timeout", [-1, 0, 901, "3", True])
def test_timeout_must_be_above_0_and_at_most_900(app, timeout):
    with pytest.raises(ConfigError, match=r"invalid timeout .* must be a number of seconds above 0 and at most 900"):
        app.function(handler, timeout=timeout)
    assert app.functions == {}


def test_timeout_on_a_trigger_decorator_is_checked_too(app):
    with pytest.raises(ConfigError, match="invalid timeout -5"):
        @app.http("GET", "/slow", timeout=-5)
        def slow(event, ctx): ...
    assert app.routes == [] and app.functions == {}


def test_valid_limits_are_accepted(app):
    app.function(handler, timeout=900, memory_mb=10240, reserved_concurrency=2, provisioned_concurrency=2)
    config = app.config("handler")
    assert (config.timeout, config.memory_mb, config.reserved_concurrency) == (900, 10240, 2)


@pytest.mark.parametrize("memory_mb", [0, 127, 10241, 256.0])
def test_memory_mb_must_be_an_integer_from_128_to_10240(app, memory_mb):
    with pytest.raises(ConfigError, match=r"invalid memory_mb .* from 128 to 10240"):
        app.function(handler, memory_mb=memory_mb)


def test_provisioned_concurrency_cannot_exceed_reserved(app):
    with pytest.raises(ConfigError, match=r"provisioned_concurrency \(3\) .* exceeds its reserved_concurrency \(2\)"):
        app.function(handler, reserved_concurrency=2, provisioned_concurrency=3)


@pytest.mark.parametrize("declare", [
    lambda app: app.function(handler, timout=3),
    lambda app: app.http("GET", "/x", handler, memory=256),
    lambda app: app.on_queue("jobs", handler, retries=3),
], ids=["function", "http", "on_queue"])
def test_unknown_option_keyword_is_named(app, declare):
    with pytest.raises(ConfigError, match=r"unknown option\(s\) \['(timout|memory|retries)'\]"):
        declare(app)


# ---- queue triggers -------------------------------------------------------------------


@pytest.mark.parametrize("batch_size", [0, 10001, -1])
def test_batch_size_must_be_1_to_10000(app, batch_size):
    with pytest.raises(ConfigError, match=rf"invalid batch_size for queue 'jobs' {batch_size}: .* from 1 to 10000"):
        app.on_queue("jobs", handler, batch_size=batch_size)
    assert app.queue_triggers == []


def test_batch_size_limits_themselves_are_accepted(app):
    app.on_queue("small", handler, batch_size=1, name="small_consumer")
    app.on_queue("large", handler, batch_size=10000, name="large_consumer")
    assert [t.batch_size for t in app.queue_triggers] == [1, 10000]


# ---- names ----------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["has space", "semi;colon", "dotted.name", "x" * 65, ""])
def test_function_names_follow_lambda_rules(app, name):
    with pytest.raises(ConfigError, match=r"invalid function name"):
        app.function(handler, name=name)


@pytest.mark.parametrize("name", ["has space", "slash/queue", "x" * 81, "émoji"])
def test_queue_names_follow_sqs_rules(app, name):
    with pytest.raises(ConfigError, match=r"invalid queue name"):
        app.on_queue(name, handler)


def test_dlq_name_is_checked(app):
    with pytest.raises(ConfigError, match=r"invalid queue name 'bad dlq'"):
        app.on_queue("jobs", handler, dlq="bad dlq")


def test_fifo_queue_names_are_accepted(app):
    app.on_queue("orders.fifo", handler)
    assert app.queue_triggers[0].dlq == "orders-dlq.fifo"


@pytest.mark.parametrize("name", ["ab", "has space", "semi;colon", "x" * 256])
def test_table_names_follow_dynamodb_rules(tmp_path, name):
    backend = open_backend(f"sqlite:///{tmp_path}/state.db")
    try:
        with pytest.raises(ConfigError, match=r"invalid table name"):
            Table(backend, name)
    finally:
        backend.close()


def test_queue_client_checks_the_name_before_the_backend(tmp_path):
    backend = open_backend(f"sqlite:///{tmp_path}/state.db")
    try:
        with pytest.raises(ConfigError, match=r"invalid queue name 'no spaces'"):
            Queue(backend, "no spaces")
    finally:
        backend.close()


def test_app_name_is_checked():
    with pytest.raises(ConfigError, match=r"invalid app name 'my app'"):
        App("my app")


# ---- routes ---------------------------------------------------------------------------


@pytest.mark.parametrize("method", ["FETCH", "", None, "GET POST"])
def test_bad_http_method(app, method):
    with pytest.raises(ConfigError, match=r"invalid HTTP method"):
        app.http(method, "/items", handler)


@pytest.mark.parametrize("path", ["items", "/items/", "/a//b", "/items/{bad-param}", "/items/{id", "/has space"])
def test_bad_route_path(app, path):
    with pytest.raises(ConfigError, match=r"invalid route path"):
        app.http("GET", path, handler)


def test_good_route_paths(app):
    for path in ["/", "/items", "/items/{id}", "/files/{proxy+}", "/v1/a.b/c-d_e~f"]:
        app.http("GET", path, handler)
    assert [r.path for r in app.routes] == ["/", "/items", "/items/{id}", "/files/{proxy+}", "/v1/a.b/c-d_e~f"]


def test_duplicate_route(app):
    app.http("GET", "/items/{id}", handler)
    with pytest.raises(ConfigError, match=r"route GET /items/\{id\} is declared twice"):
        app.http("get", "/items/{id}", handler)
    app.http("POST", "/items/{id}", handler)  # another method on the same path is fine
    assert len(app.routes) == 2


def test_method_is_case_insensitive(app):
    app.http("post", "/items", handler)
    assert app.routes[0].route_key == "POST /items"


# ---- `squall run` on a bad app file --------------------------------------------------------


BAD_APPS = {
    "syntax error": ("def broken(:\n", "syntax error at app.py:1"),
    "no App": ("VALUE = 1\n", "must define exactly one App (found 0)"),
    "import error": ("import squall_no_such_module_xyz\n", "No module named 'squall_no_such_module_xyz'"),
    "bad declaration": ("from squall import App\napp = App('x_app')\n"
                        "@app.function(timeout=-1)\ndef f(event, ctx): ...\n", "invalid timeout -1"),
    "missing handler module": ("from squall import App\napp = App('x_app')\n"
                               "app.function(name='f', handler='nowhere_xyz.handler')\n",
                               "handler 'nowhere_xyz.handler' of 'f' cannot be loaded"),
}


def _run_fails_readably(app_path, tmp_path, expected: str) -> None:
    result = squall("run", str(app_path), "--port", str(free_port()), "--backend", f"sqlite:///{tmp_path}/state.db",
                    cwd=tmp_path, timeout=30)
    assert result.returncode != 0
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert expected in lines[0]
    assert "Traceback" not in result.stderr + result.stdout


@pytest.mark.parametrize("case", BAD_APPS)
def test_squall_run_on_a_bad_app_file(tmp_path, case):
    source, expected = BAD_APPS[case]
    _run_fails_readably(write_app(tmp_path, source), tmp_path, expected)


def test_squall_run_on_a_missing_app_file(tmp_path):
    _run_fails_readably(tmp_path / "nowhere.py", tmp_path, "app file not found")
