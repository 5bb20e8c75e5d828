"""Loading a function's handler in its instance, failing as Lambda's Python runtime fails.

A `"module.function"` handler is imported in the instance, once the function's
environment is set (see squall.runtime.environment). What goes wrong there is reported
with the error type and message Lambda's runtime interface client gives, so a caller, a
log search or a dashboard built for Lambda reads it unchanged:

| at import | errorType | errorMessage |
|---|---|---|
| `ImportError` | `Runtime.ImportModuleError` | `Unable to import module 'm': No module named 'x'` |
| `SyntaxError` | `Runtime.UserCodeSyntaxError` | `Syntax error in module 'm': ...` (the line as its trace) |
| no such attribute | `Runtime.HandlerNotFound` | `Handler 'h' missing on module 'm'` |
| a built-in module's name | `Runtime.BuiltInModuleConflict` | `Cannot use built-in module m as a handler module` |
| any other exception | its class name | its message, with the user's frames as the trace |
"""

from __future__ import annotations

import importlib
import sys
import traceback
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING

from squall.errors import InitFailed

if TYPE_CHECKING:
    from squall.app import App, Handler

#: frames that are not the user's: Squall's own, and the import machinery's
_SQUALL = str(Path(__file__).resolve().parents[1])
_IMPORTLIB = str(Path(importlib.__file__).resolve().parent)


def load_handler(app: App, function: str) -> Handler:
    """The function's handler, importing a `"module.function"` string; InitFailed (with
    Lambda's error type and message) when that fails."""
    handler = app.config(function).handler
    if not isinstance(handler, str):
        return handler
    module_name, _, attribute = handler.rpartition(".")
    if module_name.split(".")[0] in sys.builtin_module_names:
        raise InitFailed(f"Cannot use built-in module {module_name} as a handler module",
                         "Runtime.BuiltInModuleConflict")
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise InitFailed(f"Unable to import module '{module_name}': {exc}", "Runtime.ImportModuleError") from None
    except SyntaxError as exc:
        trace = [f'  File "{exc.filename}" Line {exc.lineno}\n    {exc.text}']
        raise InitFailed(f"Syntax error in module '{module_name}': {exc}", "Runtime.UserCodeSyntaxError",
                         trace) from None
    except Exception as exc:  # noqa: BLE001 - a module may raise anything at import; it is the init error
        raise InitFailed(str(exc), type(exc).__name__, user_trace(exc.__traceback__)) from None
    try:
        return getattr(module, attribute)
    except AttributeError:
        raise InitFailed(f"Handler '{attribute}' missing on module '{module_name}'",
                         "Runtime.HandlerNotFound") from None


def user_trace(tb: TracebackType | None) -> list[str]:
    """The traceback from the user's first frame on, as `traceback.format_list` gives it:
    Squall's frames and the import machinery's above it are not the user's to read."""
    frames = traceback.extract_tb(tb)
    start = next((i for i, frame in enumerate(frames) if not _is_platform(frame.filename)), len(frames))
    return traceback.format_list(frames[start:])


def _is_platform(filename: str) -> bool:
    return filename.startswith(("<frozen importlib", _SQUALL, _IMPORTLIB))
