"""The Lua scripts, read from `lua/*.lua` when the backend starts.

A script file names the libraries it needs on `-- include: _lib.lua` lines; the loader
prepends the layout constants from `keys.py`, then each library once, to the script's own
text. Files starting with `_` are libraries, the others scripts named after their file.
"""

from __future__ import annotations

import functools
import re
from importlib.resources import files

from squall.backends.redis import keys

_INCLUDE = re.compile(r"^-- include: (\S+\.lua)$", re.MULTILINE)


@functools.cache
def sources() -> dict[str, str]:
    """Script name -> complete Lua source (constants, libraries, script)."""
    folder = files(__package__).joinpath("lua")
    texts = {entry.name: entry.read_text(encoding="utf-8") for entry in folder.iterdir() if entry.name.endswith(".lua")}
    scripts = {}
    for name, text in texts.items():
        if name.startswith("_"):
            continue
        libraries = [texts[library] for library in _INCLUDE.findall(text)]
        scripts[name.removesuffix(".lua")] = "\n".join([keys.lua_constants(), *libraries, text])
    return scripts
