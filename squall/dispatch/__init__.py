"""Dispatch: turns what triggers deliver into invocations, and outcomes into acks,
retries and dead letters."""
