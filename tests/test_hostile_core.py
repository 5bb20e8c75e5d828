"""Hostile declarations and harness use against the reshaped core (issue 7): each was a bug
(an AttributeError where a ConfigError belongs, a drain that never ended), kept as a test."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from dataclasses import dataclass

import pytest

from squall import App
from squall.errors import ConfigError
from squall.sources import Trigger
from tests.support import squall, write_app


@pytest.mark.parametrize("bad", ["queue", None, {"kind": "queue"}])
def test_trigger_with_a_non_trigger_object_is_a_config_error(bad):
    app = App("bad")
    with pytest.raises(ConfigError):
        app.trigger(bad, lambda event, ctx: None, name="f")


def test_trigger_subclass_without_kind_is_a_config_error():
    @dataclass(frozen=True, kw_only=True)
    class NoKind(Trigger):
        every: int = 1

    with pytest.raises(ConfigError):
        App("bad").trigger(NoKind(), lambda event, ctx: None, name="f")


def test_trigger_subclass_may_call_super_post_init():
    @dataclass(frozen=True, kw_only=True)
    class Cooperative(Trigger):
        kind = "cooperative"
        every: int = 1

        def __post_init__(self):
            super().__post_init__()

    Cooperative()


def test_invoke_with_a_non_trigger_object_names_the_problem(tmp_path):
    write_app(tmp_path, """
        from squall import App
        app = App("bad")

        @app.trigger("queue")
        def f(event, ctx):
            return 1
    """)
    result = squall("invoke", "app.py", "f", cwd=tmp_path)
    assert result.returncode == 1
    assert "Traceback" not in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
    assert "AttributeError" not in result.stderr and "Trigger" in result.stderr, result.stderr


def test_drain_of_a_throttled_queue_stops(tmp_path):
    script = tmp_path / "drain.py"
    script.write_text(textwrap.dedent("""
        from squall import App
        from squall.testing import Harness

        app = App("throttled")

        @app.on_queue("q", batch_size=1, reserved_concurrency=0)
        def q(event, ctx):
            pass

        with Harness(app) as h:
            h.send("q", "m")
            print(h.drain("q", max_batches=5))
    """))
    try:
        result = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=20)
    except subprocess.TimeoutExpired:
        pytest.fail("Harness.drain() hung on a throttled queue")
    assert result.returncode == 0, result.stderr
