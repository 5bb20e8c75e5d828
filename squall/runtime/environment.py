"""The environment a Python Lambda function sees, set in each instance.

Real handlers and libraries read these (Powertools reads the function name and the log
level, boto3 the region, aws-xray-sdk the trace header), so an instance has them with the
values Lambda uses: set once when the instance starts, before its handler module is
imported, and `_X_AMZN_TRACE_ID` again for every invocation.
"""

from __future__ import annotations

import os
import random
import sys
import time
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


def lambda_environment(app: App, config: FunctionConfig, initialization: Initialization,
                       log_stream: str) -> dict[str, str]:
    """The variables Lambda sets for a Python function (the log level only in the JSON log
    format: the runtime and Powertools' Logger read both)."""
    python = f"python{sys.version_info.major}.{sys.version_info.minor}"
    level = application_level(config)
    return {
        "AWS_LAMBDA_LOG_FORMAT": config.log_format.value,
        **({} if level is None else {"AWS_LAMBDA_LOG_LEVEL": level.value}),
        "AWS_LAMBDA_FUNCTION_NAME": config.name,
        "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": str(config.memory_mb),
        "AWS_LAMBDA_FUNCTION_VERSION": "$LATEST",
        "AWS_REGION": aws.REGION,
        "AWS_DEFAULT_REGION": aws.REGION,
        "AWS_LAMBDA_LOG_GROUP_NAME": f"/aws/lambda/{config.name}",
        "AWS_LAMBDA_LOG_STREAM_NAME": log_stream,
        "AWS_LAMBDA_INITIALIZATION_TYPE": initialization.value,
        "AWS_EXECUTION_ENV": f"AWS_Lambda_{python}",
        "_HANDLER": handler_name(config),
        "LAMBDA_TASK_ROOT": app.root or os.getcwd(),
        "LAMBDA_RUNTIME_DIR": RUNTIME_DIR,
        "TZ": ":UTC",
    }


def trace_header(headers: dict[str, str] | None = None) -> str:
    """`_X_AMZN_TRACE_ID` for one invocation: the caller's X-Ray header if it sent one
    (`x-amzn-trace-id`), else a new root, unsampled (tracing is off by default), so X-Ray
    clients that believe they are in Lambda find the header they look for."""
    given = (headers or {}).get("x-amzn-trace-id")
    if given:
        return given
    root = f"1-{int(time.time()):08x}-{random.getrandbits(96):024x}"
    return f"Root={root};Parent={random.getrandbits(64):016x};Sampled=0"
