"""Dispatch: turning durable queue messages into invocations (claim, invoke, settle)."""
