"""Squall: a self-hosted serverless platform for Python."""

from squall.app import App
from squall.errors import InvalidEventPattern, InvalidFilterPolicy
from squall.routing import test_event_pattern, test_filter_policy

__all__ = ["App", "InvalidEventPattern", "InvalidFilterPolicy", "test_event_pattern", "test_filter_policy"]
__version__ = "0.1.0"
