"""Message ids, one helper for every backend so they all hand out the same kind."""

from __future__ import annotations

import uuid


def new_message_id() -> str:
    """A random UUID in its canonical 36-character form, as SQS gives `MessageId`.

    Ids are opaque strings once stored: messages enqueued before ids were UUIDs (32 hex
    characters) keep theirs and are read, acked and redriven as before.
    """
    return str(uuid.uuid4())
