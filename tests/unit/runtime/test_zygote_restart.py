"""The zygote's supervisor keeps restarting it through failures of the fork itself (no
memory, no file descriptors: what follows the OOM killer), not only an app that fails."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess

from squall.runtime import process
from squall.runtime.process import Zygote
from tests.support import write_app

APP = """
    from squall import App

    app = App("restart")


    @app.function()
    def f(event, ctx):
        return 1
"""


def test_a_restart_that_cannot_fork_is_retried(tmp_path, monkeypatch):
    app = write_app(tmp_path, APP)
    real_popen = subprocess.Popen
    failures = []

    def popen(*args, **kwargs):
        if not failures:
            failures.append(1)
            raise OSError(12, "Cannot allocate memory")
        return real_popen(*args, **kwargs)

    async def scenario() -> None:
        zygote = Zygote(str(app), f"sqlite:///{tmp_path}/state.db", str(tmp_path / "objects"))
        await zygote.start()
        try:
            monkeypatch.setattr(process.subprocess, "Popen", popen)
            assert zygote.process is not None
            os.kill(zygote.process.pid, signal.SIGKILL)
            for _ in range(200):
                await asyncio.sleep(0.05)
                if failures and zygote.gate.is_open:
                    break
            assert failures and zygote.gate.is_open, zygote.gate.reason
        finally:
            await zygote.stop()

    asyncio.run(scenario())
