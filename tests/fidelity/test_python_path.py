"""Instances under users of their own still import what the node can: a Python installed
where other users cannot search (pyenv under /root, a virtualenv in a private home) is
revealed to them, alone, in their mount namespace; the rest of that directory stays hidden."""

from __future__ import annotations

import os
import shutil
import stat
import tempfile
from pathlib import Path

import httpx
import pytest

from tests.support import NodeProcess, write_app

APP = """
    import os

    from squall import App

    app = App("python-path")


    @app.http("GET", "/lazy")
    def lazy(event, ctx):
        import lazymod  # imported on first use, by the instance's own user

        private = os.path.dirname(os.path.dirname(lazymod.__file__))
        return {"uid": os.getuid(), "value": lazymod.VALUE, "private": sorted(os.listdir(os.path.dirname(private)))}
"""

needs_root = pytest.mark.skipif(os.geteuid() != 0, reason="instances run as users of their own only as root")


@pytest.fixture
def private_library(monkeypatch):
    """A module on the node's PYTHONPATH under a directory only root may search, beside a
    secret the instances must not see."""
    home = Path(tempfile.mkdtemp(prefix="squall-private-", dir="/var/tmp"))
    home.chmod(0o700)
    library = home / "install" / "lib"
    library.mkdir(parents=True)
    (home / "install").chmod(0o755)
    library.chmod(0o755)
    (library / "lazymod.py").write_text("VALUE = 42\n")
    (library / "lazymod.py").chmod(0o644)
    (home / "secret.txt").write_text("root's\n")
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join(filter(None, [str(library), os.environ.get("PYTHONPATH")])))
    yield home
    shutil.rmtree(home, ignore_errors=True)


@needs_root
def test_a_python_path_others_cannot_search_is_revealed_alone(private_library):
    app_dir = Path(tempfile.mkdtemp(prefix="squall-app-"))
    app_dir.chmod(0o755)
    try:
        assert not private_library.stat().st_mode & stat.S_IXOTH
        with NodeProcess(write_app(app_dir, APP)) as node:
            response = httpx.get(node.url + "/lazy", timeout=30)
            assert response.status_code == 200, response.text
            seen = response.json()
            assert "running as uid 200001 and up" in node.log()
        assert seen["uid"] > 200_000 and seen["value"] == 42
        assert seen["private"] == ["install"]  # not secret.txt: the rest of the directory stays hidden
    finally:
        shutil.rmtree(app_dir, ignore_errors=True)
