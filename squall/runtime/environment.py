"""The environment a Python Lambda function sees, set in each instance.

Real handlers and libraries read these (Powertools reads the function name and the log
level, boto3 the region, aws-xray-sdk the trace header), so an instance has them with the
values Lambda uses: set once when the instance starts, before its handler module is
imported, and `_X_AMZN_TRACE_ID` again for every invocation.

An instance's environment, from the weakest layer up:

1. the node's own environment, as a self-hosted operator expects (`DATABASE_URL` exported
   where the node starts is usable in functions), minus Squall's own `SQUALL_*` variables
   (its configuration, such as the backend URL with its credentials, and its internals);
2. Lambda's defaults that a function may change (`AWS_XRAY_CONTEXT_MISSING`,
   `AWS_XRAY_DAEMON_ADDRESS`), where the node does not set them, and `TMPDIR`, the
   instance's private /tmp (squall.runtime.scratch);
3. the app's `environment=`, then the function's;
4. the variables Lambda reserves, which nothing else may set.

The zygote has layers 1, 2 and the function-independent part of 4 (`LAMBDA_TASK_ROOT`
among them) before it imports the app file, as Lambda's runtime has them before init:
aws-xray-sdk decides when it is imported whether it runs in Lambda.
"""

from __future__ import annotations

import os
import random
import sys
import time
from collections.abc import Mapping
from datetime import UTC, datetime
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING

from squall import aws
from squall.runtime.logs import application_level

if TYPE_CHECKING:
    from squall.app import App, FunctionConfig

#: where the runtime's own code lives (Lambda: /var/runtime)
RUNTIME_DIR = str(Path(__file__).resolve().parent)
#: the prefix of Squall's own variables, which instances never inherit from the node
INTERNAL_PREFIX = "SQUALL_"
#: what Lambda sets for the X-Ray SDK whether tracing is on or not (a function may change
#: them): log, not raise, when a call has no segment; the daemon where it listens by default
XRAY_DEFAULTS = {"AWS_XRAY_CONTEXT_MISSING": "LOG_ERROR", "AWS_XRAY_DAEMON_ADDRESS": "127.0.0.1:2000"}


def zygote_environment(node: Mapping[str, str], task_root: str) -> dict[str, str]:
    """The zygote's environment, which every instance starts from (layers 1, 2 and the
    app-wide part of 4 above)."""
    inherited = {key: value for key, value in node.items() if not key.startswith(INTERNAL_PREFIX)}
    return {**XRAY_DEFAULTS, **inherited, **runtime_environment(task_root)}


class Initialization(StrEnum):
    """`AWS_LAMBDA_INITIALIZATION_TYPE`: how the instance came to be."""

    ON_DEMAND = "on-demand"
    PROVISIONED = "provisioned-concurrency"


def log_stream_name(started: float | None = None) -> str:
    """A log stream name of Lambda's form, one per instance: `YYYY/MM/DD/[$LATEST]<32 hex>`."""
    day = datetime.fromtimestamp(time.time() if started is None else started, UTC).strftime("%Y/%m/%d")
    return f"{day}/[$LATEST]{random.getrandbits(128):032x}"


def handler_name(config: FunctionConfig) -> str:
    """`_HANDLER`: `module.function` as the function was declared (for a callable object,
    its class's); also how the node names a handler it never imports (squall.manifest)."""
    handler = config.handler
    if isinstance(handler, str):
        return handler
    return f"{getattr(handler, '__module__', None) or type(handler).__module__}." \
           f"{getattr(handler, '__qualname__', None) or type(handler).__qualname__}"


def runtime_environment(task_root: str) -> dict[str, str]:
    """The variables Lambda sets that are the same for every function of the app."""
    python = f"python{sys.version_info.major}.{sys.version_info.minor}"
    return {
        "AWS_REGION": aws.REGION,
        "AWS_DEFAULT_REGION": aws.REGION,
        "AWS_EXECUTION_ENV": f"AWS_Lambda_{python}",
        "LAMBDA_TASK_ROOT": task_root,
        "LAMBDA_RUNTIME_DIR": RUNTIME_DIR,
        "TZ": ":UTC",
    }


def lambda_environment(app: App, config: FunctionConfig, initialization: Initialization,
                       log_stream: str) -> dict[str, str]:
    """The variables Lambda sets for a Python function (the log level only in the JSON log
    format: the runtime and Powertools' Logger read both)."""
    level = application_level(config)
    return {
        **runtime_environment(app.root or os.getcwd()),
        "AWS_LAMBDA_LOG_FORMAT": config.log_format.value,
        **({} if level is None else {"AWS_LAMBDA_LOG_LEVEL": level.value}),
        "AWS_LAMBDA_FUNCTION_NAME": config.name,
        "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": str(config.memory_mb),
        "AWS_LAMBDA_FUNCTION_VERSION": "$LATEST",
        "AWS_LAMBDA_LOG_GROUP_NAME": f"/aws/lambda/{config.name}",
        "AWS_LAMBDA_LOG_STREAM_NAME": log_stream,
        "AWS_LAMBDA_INITIALIZATION_TYPE": initialization.value,
        "_HANDLER": handler_name(config),
    }


def trace_header(headers: dict[str, str] | None = None) -> str:
    """`_X_AMZN_TRACE_ID` for an invocation that carries no trace context (the node runs
    without observability; a traced one derives it from its span, squall.runtime.tracing):
    the caller's X-Ray header if it sent one (`x-amzn-trace-id`), else a new root,
    unsampled, so X-Ray clients that believe they are in Lambda find the header they look for."""
    given = (headers or {}).get("x-amzn-trace-id")
    if given:
        return given
    root = f"1-{int(time.time()):08x}-{random.getrandbits(96):024x}"
    return f"Root={root};Parent={random.getrandbits(64):016x};Sampled=0"
