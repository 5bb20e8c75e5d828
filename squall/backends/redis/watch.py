"""Wake-ups for Redis: the queue scripts PUBLISH a queue's name on `keys.WAKE_CHANNEL`.

A daemon thread holds its own subscribed connection (a subscribed connection can do
nothing else) and calls back with each name. When Redis goes away it reconnects with
backoff; messages published meanwhile are lost, so after every reconnect it calls back with
None ("re-check everything").
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from typing import TYPE_CHECKING

import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

from squall.backends.redis import keys

if TYPE_CHECKING:
    from squall.backends.redis.core import RedisCore

log = logging.getLogger("squall.backends")

#: how often the thread looks up from an idle subscription to see if it was closed
_POLL = 0.1
_BACKOFF = (0.05, 2.0)  # first and longest wait between reconnection attempts
#: an idle subscription PINGs this often, so a silently dropped connection is noticed
_HEALTH_CHECK = 30
#: how long watch_enqueues waits for its subscription to be live
_START_WAIT = 2.0


class PubSubWatch:
    """Calls `callback(queue)` for each wake-up published, `callback(None)` after a reconnect."""

    def __init__(self, backend: RedisCore, callback: Callable[[str | None], None]):
        self._backend = backend
        self._callback = callback
        self._closed = threading.Event()
        self._subscribed = threading.Event()
        self._thread = threading.Thread(target=self._run, name="squall-redis-watch", daemon=True)
        self._thread.start()
        # what is published before the subscription is live is not seen: wait for it, unless
        # Redis is away (then the first callback, after connecting, is None)
        self._subscribed.wait(_START_WAIT)

    def _run(self) -> None:
        delay, reconnect = _BACKOFF[0], False
        while not self._closed.is_set():
            client = self._backend.connect(retry=Retry(NoBackoff(), 0), retry_on_error=[],
                                           health_check_interval=_HEALTH_CHECK)
            pubsub = client.pubsub(ignore_subscribe_messages=True)
            try:
                pubsub.subscribe(keys.WAKE_CHANNEL)
                self._subscribed.set()
                if reconnect:
                    self._call(None)
                delay, reconnect = _BACKOFF[0], True
                while not self._closed.is_set():
                    message = pubsub.get_message(timeout=_POLL)
                    if message is not None and message["type"] == "message":
                        self._call(message["data"])
            except (redis.RedisError, OSError):
                self._closed.wait(delay)
                delay = min(delay * 2, _BACKOFF[1])
            finally:
                pubsub.close()
                client.close()

    def _call(self, queue: str | None) -> None:
        try:
            self._callback(queue)
        except Exception:
            log.exception("a watch_enqueues callback failed")

    def close(self) -> None:
        self._closed.set()
        if self._thread.is_alive() and self._thread is not threading.current_thread():
            self._thread.join()
