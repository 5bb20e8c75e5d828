"""Load an `App` from a file path or module reference ("app.py", "app.py:app", "pkg.mod:app")."""

from __future__ import annotations

import importlib
import importlib.util
import os
import subprocess
import sys
import traceback
from pathlib import Path

from squall.app import App
from squall.errors import AppLoadError


def split_ref(ref: str) -> tuple[str, str | None]:
    """('app.py', 'app') for 'app.py:app'; the attribute is optional."""
    target, _, attr = ref.partition(":")
    return target, attr or None


def app_root(ref: str) -> Path:
    """The directory the app lives in (state and relative paths are resolved from it)."""
    target, _ = split_ref(ref)
    if target.endswith(".py") or os.sep in target:
        return Path(target).resolve().parent
    return Path.cwd()


def add_to_path(root: str) -> None:
    """Make the app's directory importable, after the standard library and before
    installed packages: an app file or module named like a standard one (`queue.py`,
    `json.py`) must not replace it for everything else in the process, while a package
    vendored next to the app still wins over an installed one, as on Lambda."""
    if root in sys.path:
        return
    installed = ("site-packages", "dist-packages")
    index = next((i for i, entry in enumerate(sys.path) if entry.rstrip(os.sep).endswith(installed)), len(sys.path))
    sys.path.insert(index, root)


#: module names this process has loaded apps under (a reload replaces its module)
_APP_MODULES: set[str] = set()


def module_name(path: Path) -> str:
    """The app module's name: its file's stem, unless a standard or installed module has
    that name, which must stay what `import <name>` finds."""
    name = path.stem
    if name in _APP_MODULES:
        return name
    if name in sys.stdlib_module_names or name in sys.modules:
        return f"squall_app_{name}"
    try:
        spec = importlib.util.find_spec(name)
    except (ImportError, ValueError):
        spec = None
    found = spec.origin if spec is not None else None
    return name if found is None or Path(found).resolve() == path else f"squall_app_{name}"


def _user_line(exc: BaseException, root: Path) -> str:
    """`file:line` of the innermost frame in the user's code: where a ConfigError was
    declared, not the line of squall that raised it."""
    frames = traceback.extract_tb(exc.__traceback__)
    squall_dir = Path(__file__).resolve().parent
    ours = [f for f in frames if not f.filename.startswith("<")  # <frozen importlib._bootstrap>
            and not Path(f.filename).resolve().is_relative_to(squall_dir)]
    in_app = [f for f in ours if Path(f.filename).resolve().is_relative_to(root)]
    frame = (in_app or ours or frames)[-1]
    return f"{Path(frame.filename).name}:{frame.lineno}"


def check_app(ref: str) -> None:
    """Load the app in a throwaway process, so that none of its code runs in this one
    (`squall dev`'s supervisor). AppLoadError with the loader's one line if it fails."""
    result = subprocess.run([sys.executable, "-P", "-m", "squall.loader", ref], stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, text=True, errors="replace")
    if result.returncode:
        lines = result.stderr.strip().splitlines()
        raise AppLoadError(lines[-1] if lines else f"cannot load {ref}: exit status {result.returncode}")


def load_app(ref: str) -> App:
    """Import the app module and return its App. Every failure is one AppLoadError line."""
    target, attr = split_ref(ref)
    root = app_root(ref)
    add_to_path(str(root))
    try:
        if target.endswith(".py"):
            path = Path(target).resolve()
            if not path.is_file():
                raise AppLoadError(f"app file not found: {target}")
            name = module_name(path)
            spec = importlib.util.spec_from_file_location(name, path)
            assert spec is not None and spec.loader is not None
            module = importlib.util.module_from_spec(spec)
            sys.modules[name] = module
            _APP_MODULES.add(name)
            spec.loader.exec_module(module)
        else:
            module = importlib.import_module(target)
    except AppLoadError:
        raise
    except SyntaxError as exc:
        raise AppLoadError(f"cannot load {target}: syntax error at {Path(exc.filename or target).name}"
                           f":{exc.lineno}: {exc.msg}") from None
    except SystemExit as exc:
        raise AppLoadError(f"cannot load {target}: it called sys.exit({exc.code!r}) at import "
                           f"({_user_line(exc, root)})") from None
    except Exception as exc:  # noqa: BLE001 - the user's module may raise anything at import
        raise AppLoadError(f"cannot load {target}: {type(exc).__name__}: {exc} ({_user_line(exc, root)})") from None
    if attr:
        app = getattr(module, attr, None)
        if not isinstance(app, App):
            raise AppLoadError(f"{target} has no App named {attr!r}")
    else:
        apps = [v for v in vars(module).values() if isinstance(v, App)]
        if len(apps) != 1:
            raise AppLoadError(f"{target} must define exactly one App (found {len(apps)}); "
                               f"name it with {target}:attribute")
        app = apps[0]
    app.root = str(root)
    for function in app.functions:
        app.locate(function)  # a 'module.handler' that names no module fails here, at load, not at first call
    app.check_destinations()
    return app


if __name__ == "__main__":  # `check_app`'s throwaway process
    try:
        load_app(sys.argv[1])
    except AppLoadError as exc:
        print(exc, file=sys.stderr)
        sys.exit(1)
