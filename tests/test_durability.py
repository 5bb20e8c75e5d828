"""Killing a node (SIGKILL) while it works through thousands of messages loses none of them.

Messages are committed before the node starts; the node is killed mid-way, with batches
claimed but not acknowledged. After a restart those come back once their visibility
timeout passes, and every message ends up processed (at least once) and acknowledged.
"""

from __future__ import annotations

from squall.backends import QueueConfig, open_backend
from squall.services import Queue
from tests.support import NodeProcess, wait_until, write_app

MESSAGES = 3000

APP = """
    import time

    from squall import App

    app = App("durable")


    @app.on_queue("work", batch_size=10, visibility_timeout=2)
    def work(event, ctx):
        for record in event["Records"]:
            ctx.table("processed").put(record["body"], record["messageId"])  # idempotent: keyed by body
            time.sleep(0.001)
"""


def processed_count(backend) -> int:
    return len(backend.table_scan("processed", limit=MESSAGES + 1))


def test_sigkilled_node_loses_no_message(tmp_path):
    url = f"sqlite:///{tmp_path}/state.db"
    app = write_app(tmp_path, APP)
    backend = open_backend(url)
    try:
        backend.queue_declare("work", QueueConfig(dlq="work-dlq"))  # as the node will; sends need a declared queue
        bodies = [f"message-{i:05d}" for i in range(MESSAGES)]
        Queue(backend, "work").send_batch(bodies)

        with NodeProcess(app, backend=url) as node:
            wait_until(lambda: processed_count(backend) >= MESSAGES // 10, timeout=60, message="some progress")
            node.kill()
        after_kill = processed_count(backend)
        assert after_kill < MESSAGES, "the node finished before it could be killed"
        assert backend.queue_stats("work").in_flight > 0  # batches were claimed and never acknowledged

        with NodeProcess(app, backend=url):
            wait_until(lambda: processed_count(backend) == MESSAGES, timeout=90, message="every message processed")
            wait_until(lambda: backend.queue_stats("work").total == 0, timeout=10, message="the queue to empty")

        assert [item.key for item in backend.table_scan("processed", limit=MESSAGES + 1)] == sorted(bodies)
        assert backend.queue_stats("work-dlq").total == 0
    finally:
        backend.close()
