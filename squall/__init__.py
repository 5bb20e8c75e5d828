"""Squall: a self-hosted serverless platform for Python."""

from squall.app import App

__all__ = ["App"]
__version__ = "0.1.0"
