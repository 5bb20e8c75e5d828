"""The command line under hostile input and an unlucky operator (issue 8, items 14 and 15):
real `squall` processes, real ports, real state on disk."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from squall.backends import open_backend
from tests.support import NodeProcess, squall, wait_until, write_app
from tests.test_cli import APP, HELLO, NO_ENV_BACKEND, assert_one_line_error, queue_rows

NOT_UTF8 = os.fsdecode(b"caf\xe9")  # Latin-1 bytes, as Python passes them on in argv


def children(pid: int) -> list[int]:
    """The pids of a process's children (Linux /proc)."""
    path = Path(f"/proc/{pid}/task/{pid}/children")
    return [int(child) for child in path.read_text().split()] if path.exists() else []


def alive(pid: int) -> bool:
    """True while `pid` runs (a zombie waiting for its parent counts as gone)."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except FileNotFoundError:
        return False


def listening(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.2):
            return True
    except OSError:
        return False


@pytest.fixture
def app(tmp_path) -> Path:
    """An app whose queues exist in .squall/state.db beside it (cwd for commands)."""
    path = write_app(tmp_path, APP)
    assert squall("invoke", str(path), "ping", env=NO_ENV_BACKEND).returncode == 0
    return path


def send(app: Path, *args: str, stdin: bytes | None = None) -> subprocess.CompletedProcess:
    """`squall send` in the app's directory, with raw bytes on stdin."""
    result = subprocess.run([sys.executable, "-m", "squall", "send", *args], cwd=app.parent, input=stdin,
                            capture_output=True, timeout=30, env={**os.environ, **NO_ENV_BACKEND})
    return subprocess.CompletedProcess(result.args, result.returncode, result.stdout.decode(),
                                       result.stderr.decode(errors="replace"))


# ---- item 15: input the CLI must refuse in one line ---------------------------------------------

@pytest.mark.parametrize("args,stdin,fragment", [
    (["jobs", "-"], b"caf\xe9", "the body on stdin is not valid UTF-8 (byte 0xe9 at offset 3)"),
    (["jobs", NOT_UTF8], None, "BODY is not valid UTF-8 (byte 0xe9 at offset 3)"),
    (["jobs", "hi", "-a", f"name={NOT_UTF8}"], None, "an attribute is not valid UTF-8 (byte 0xe9 at offset 8)"),
    (["jobs", "hi", "-a", "=v"], None, "attribute '=v' must look like NAME=VALUE, with a NAME"),
], ids=["stdin-not-utf8", "body-not-utf8", "attribute-not-utf8", "attribute-without-name"])
def test_send_refuses_what_sqs_would_not_store(app, args, stdin, fragment):
    """Each used to be a UnicodeEncodeError traceback, or (`=v`) an attribute named ''."""
    assert_one_line_error(send(app, *args, stdin=stdin), fragment)
    rows = queue_rows(squall("queues", cwd=app.parent, env=NO_ENV_BACKEND).stdout)
    assert rows["jobs"]["DEPTH"] == "0", "nothing was stored"


def test_send_keeps_utf8_from_stdin_exactly(app):
    body = "zoë 🌧\n"
    result = send(app, "jobs", "-", stdin=body.encode())
    assert result.returncode == 0, result.stderr
    store = open_backend(f"sqlite:///{app.parent / '.squall' / 'state.db'}")
    try:
        [message] = store.peek("jobs", 10)
        assert message.body == body
    finally:
        store.close()


@pytest.mark.parametrize("data,fragment", [
    (NOT_UTF8, "--data is not valid UTF-8 (byte 0xe9 at offset 3)"),
    ("[" * 3000 + "]" * 3000, "--data is nested too deeply to decode"),
], ids=["not-utf8", "3000-deep"])
def test_invoke_refuses_data_it_cannot_decode(app, data, fragment):
    """The first was accepted as the event '\\udce9' (a lone surrogate), the second was a
    RecursionError traceback."""
    assert_one_line_error(squall("invoke", str(app), "ping", "--data", data, env=NO_ENV_BACKEND), fragment)


@pytest.mark.parametrize("node_id", ["node-1\nforged 200", "two words", "", "-dash", "a:b", "é", "x" * 256],
                         ids=["newline", "space", "empty", "leading-dash", "colon", "non-ascii", "too-long"])
@pytest.mark.parametrize("command", ["run", "dev"])
def test_node_id_outside_the_documented_charset_is_refused(tmp_path, command, node_id):
    """A newline in the id forged lines in the log and `squall nodes`; nothing starts."""
    app = write_app(tmp_path, HELLO.format(greeting="hi"))
    result = squall(command, str(app), "--port", "0", "--node-id", node_id, env=NO_ENV_BACKEND, timeout=20)
    assert_one_line_error(result, "invalid --node-id", "letters, digits, '.', '-' or '_'")


def test_a_node_id_in_the_charset_is_used(tmp_path):
    app = write_app(tmp_path, HELLO.format(greeting="hi"))
    node_id = "web_1.eu-west-1." + "x" * 239  # 255 characters
    with NodeProcess(app, extra=["--node-id", node_id]) as node:
        wait_until(lambda: f"node {node_id} serving" in node.log(), timeout=10, message="the start-up line")
        nodes = wait_until(lambda: squall("nodes", cwd=tmp_path, env=NO_ENV_BACKEND).stdout.split("\n", 1)[1],
                           timeout=10, message="the node in the registry")
        assert nodes.split()[0] == node_id


# ---- item 14: `squall dev` and its node live and die together --------------------------------

def test_a_killed_dev_supervisor_takes_its_node_and_port_with_it(tmp_path):
    """SIGKILL of the supervisor used to orphan the node, which kept the port; a new
    `squall dev` then logged 'address already in use' and ran with no node."""
    app = write_app(tmp_path, HELLO.format(greeting="hi"))
    supervisor = NodeProcess(app, command="dev").start()
    try:
        [node] = wait_until(lambda: children(supervisor.process.pid), timeout=10, message="the node process")
        zygotes = wait_until(lambda: children(node), timeout=10, message="the zygote")
        supervisor.process.kill()
        killed = time.monotonic()
        wait_until(lambda: not listening(supervisor.port), timeout=3, message="the port to be released")
        wait_until(lambda: not alive(node) and not any(map(alive, zygotes)), timeout=3,
                   message="the node and its zygote to exit")
        released = time.monotonic() - killed
        assert "node" in supervisor.log() and "stopping" in supervisor.log(), "the node stopped gracefully"
        print(f"node gone {released:.2f}s after its supervisor was killed")

        with NodeProcess(app, command="dev", port=supervisor.port) as again:  # the port is free again
            assert again.client().get("/hello").text == "hi"
    finally:
        supervisor.process.wait(5)
        with contextlib.suppress(ProcessLookupError):  # nothing left of it, as it should be
            os.killpg(supervisor.process.pid, signal.SIGKILL)


@pytest.mark.parametrize("command", ["dev", "run"])
def test_a_taken_port_is_one_line_and_nothing_starts(tmp_path, command):
    app = write_app(tmp_path, HELLO.format(greeting="hi"))
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        started = time.monotonic()
        result = squall(command, str(app), "--port", str(port), cwd=tmp_path, env=NO_ENV_BACKEND, timeout=20)
        assert time.monotonic() - started < 5, "it exits rather than idling"
    assert_one_line_error(result, f"cannot listen on 127.0.0.1:{port}", "Address already in use")
    assert not (tmp_path / ".squall").exists(), "no node started, so no state was created"


def test_dev_exits_non_zero_when_its_node_dies_by_itself(tmp_path):
    """A supervisor whose node is gone (the OOM killer, a crash) must not idle without one."""
    app = write_app(tmp_path, HELLO.format(greeting="hi"))
    with NodeProcess(app, command="dev") as supervisor:
        [node] = wait_until(lambda: children(supervisor.process.pid), timeout=10, message="the node process")
        os.kill(node, signal.SIGKILL)
        assert supervisor.process.wait(5) == 128 + signal.SIGKILL
        assert supervisor.log().rstrip().endswith("squall dev: the node was killed by SIGKILL")
        assert not listening(supervisor.port)


def test_dev_waits_for_a_fix_when_a_reload_breaks_the_app(tmp_path):
    """Mid-edit failures are what reload is for: the supervisor says so and carries on."""
    app = write_app(tmp_path, HELLO.format(greeting="v1"))
    with NodeProcess(app, command="dev") as supervisor:
        client = supervisor.client(timeout=2)
        assert client.get("/hello").text == "v1"
        app.write_text("from squall import App\napp = App('broken'\n")
        wait_until(lambda: "the node exited with code 1; waiting for a change" in supervisor.log(), timeout=15,
                   message="the broken reload to be reported")
        assert supervisor.process.poll() is None
        app.write_text(HELLO.format(greeting="v2"))

        def v2() -> bool:
            try:
                return client.get("/hello").text == "v2"
            except httpx.TransportError:  # not listening yet
                return False
        wait_until(v2, timeout=15, message="the fixed app to serve")


def test_ctrl_c_stops_dev_quietly(tmp_path):
    """The terminal signals the node too; its exit is not reported as a node that died."""
    app = write_app(tmp_path, HELLO.format(greeting="hi"))
    with NodeProcess(app, command="dev") as supervisor:
        os.killpg(supervisor.process.pid, signal.SIGINT)
        assert supervisor.process.wait(10) == 0
    assert "squall dev: the node" not in supervisor.log()
    assert not listening(supervisor.port)
