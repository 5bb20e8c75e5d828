"""Logging options as Lambda's LoggingConfig takes them: exact values, levels only with JSON,
the app's defaults under each function's own."""

from __future__ import annotations

import pytest

from squall import App
from squall.errors import ConfigError
from squall.runtime.logs import ApplicationLogLevel, LogFormat, SystemLogLevel, application_level


def handler(event, ctx):
    return None


def test_defaults_are_text_without_levels():
    app = App("a")
    app.function(handler, name="f")
    config = app.config("f")
    assert config.log_format is LogFormat.TEXT and application_level(config) is None


def test_json_defaults_to_info():
    app = App("a")
    app.function(handler, name="f", log_format="JSON")
    assert application_level(app.config("f")) is ApplicationLogLevel.INFO
    assert app.config("f").system_log_level is None


def test_the_apps_options_apply_unless_the_function_sets_its_own():
    app = App("a", log_format="JSON", application_log_level="ERROR", system_log_level="WARN")
    app.function(handler, name="inherits")
    app.function(handler, name="own", application_log_level="DEBUG")
    app.function(handler, name="text", log_format="Text")  # takes none of the app's levels
    assert application_level(app.config("inherits")) is ApplicationLogLevel.ERROR
    assert app.config("inherits").system_log_level is SystemLogLevel.WARN
    assert app.config("own").application_log_level is ApplicationLogLevel.DEBUG
    assert app.config("own").system_log_level is SystemLogLevel.WARN
    assert app.config("text").log_format is LogFormat.TEXT and app.config("text").application_log_level is None


def test_the_app_is_checked_too():
    with pytest.raises(ConfigError, match="app 'a': application_log_level='INFO' needs log_format='JSON'"):
        App("a", application_log_level="INFO")
    with pytest.raises(ConfigError, match="app 'a': invalid log_format 3"):
        App("a", log_format=3)
