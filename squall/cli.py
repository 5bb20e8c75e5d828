"""The `squall` command line. Every error is one readable line and a non-zero exit."""

from __future__ import annotations

import asyncio
import base64
import binascii
import json
import os
import re
import socket
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import click

from squall.errors import SquallError

if TYPE_CHECKING:
    from squall.backends import Backend
    from squall.node import NodeSettings

DEFAULT_STATE = ".squall/state.db"

#: what --node-id allows: a hostname's characters (letters, digits, '.', '-') and '_', starting
#: with a letter or digit, at most 255 of them; the id is a key in the registry and a field of
#: log lines, metering records and `squall nodes`, so no spaces, control characters or ':'
NODE_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,254}")

F = TypeVar("F", bound=Callable[..., Any])


class Duration(click.ParamType):
    """A span of time as `30s`, `10m`, `1.5h` or `2d`, in seconds (above zero): what every
    `--since` and `--period` takes."""

    name = "duration"
    _FORM = re.compile(r"(\d+(?:\.\d+)?)([smhd])")
    _UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}

    def convert(self, value: object, param: click.Parameter | None, ctx: click.Context | None) -> float:
        if isinstance(value, float):
            return value
        found = self._FORM.fullmatch(str(value).strip())
        if found is None or float(found[1]) <= 0:
            self.fail(f"{value!r} is not a duration such as 30s, 10m, 1h or 2d", param, ctx)
        return float(found[1]) * self._UNITS[found[2]]


def default_backend(base: Path) -> str:
    return f"sqlite:///{(base / DEFAULT_STATE).resolve()}"


def backend_url(option: str | None, app_ref: str | None = None) -> str:
    """--backend, else $SQUALL_BACKEND, else .squall/state.db next to the app (or here)."""
    if option:
        return option
    if os.environ.get("SQUALL_BACKEND"):
        return os.environ["SQUALL_BACKEND"]
    from squall.loader import app_root

    return default_backend(app_root(app_ref) if app_ref else Path.cwd())


def objects_url(option: str | None, backend: str, app_ref: str | None = None) -> str:
    """--objects, else $SQUALL_OBJECTS, else `objects/` beside a SQLite state file
    (or .squall/objects next to the app). Opened here, so a bad URL fails at start-up."""
    from squall.loader import app_root
    from squall.objects import open_objects

    url = option or os.environ.get("SQUALL_OBJECTS")
    if not url and backend.startswith("sqlite:///"):
        url = str(Path(backend[len("sqlite:///"):].split("?", 1)[0]).resolve().parent / "objects")
    url = url or str((app_root(app_ref) if app_ref else Path.cwd()) / ".squall" / "objects")
    open_objects(url)
    return url


class SquallGroup(click.Group):
    """Turns SquallError (and a few others) into one line on stderr and exit code 1."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except SquallError as exc:
            raise click.ClickException(str(exc)) from None
        except (OSError, json.JSONDecodeError) as exc:
            raise click.ClickException(str(exc)) from None


def utf8(what: str, value: str | bytes) -> str:
    """`value` as text, or a one-line error if it is not UTF-8. Python decodes arguments with
    surrogate escapes, so bytes that are not UTF-8 would otherwise surface deep inside as a
    UnicodeEncodeError (or be stored as escapes)."""
    raw = value.encode("utf-8", "surrogateescape") if isinstance(value, str) else value
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise click.ClickException(f"{what} is not valid UTF-8 (byte 0x{raw[exc.start]:02x} at offset {exc.start})"
                                   ) from None


def _node_id(ctx: click.Context, param: click.Parameter, value: str | None) -> str | None:
    if value is not None and not NODE_ID.fullmatch(value):
        raise click.ClickException(f"invalid --node-id {value!r}: use 1 to 255 letters, digits, '.', '-' or '_', "
                                   "starting with a letter or digit")
    return value


def check_port_free(host: str, port: int) -> None:
    """Fail in one line if HOST:PORT cannot be listened on, before any node starts: uvicorn
    binds (as asyncio's create_server does, which this mirrors) only after the node is up."""
    if port == 0:
        return
    try:
        addresses = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    except socket.gaierror as exc:
        raise click.ClickException(f"cannot listen on {host}:{port}: {exc.strerror}") from None
    for family, kind, proto, _, address in addresses:
        with socket.socket(family, kind, proto) as probe:
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            if family == socket.AF_INET6:
                probe.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
            try:
                probe.bind(address)
            except OSError as exc:
                raise click.ClickException(f"cannot listen on {host}:{port}: {exc.strerror}") from None


backend_option = click.option("--backend", "backend", metavar="URL", default=None,
                              help="sqlite:///path or redis://host:port/db (env SQUALL_BACKEND; "
                                   "default .squall/state.db next to the app, or here without one)")


@click.group(cls=SquallGroup)
@click.version_option(package_name="squall")
def main() -> None:
    """Squall: a self-hosted serverless platform for Python."""


def _node_options(fn: F) -> F:
    fn = click.option("--host", default="127.0.0.1", show_default=True, help="Interface to listen on.")(fn)
    fn = click.option("--port", default=8000, show_default=True, type=click.IntRange(0, 65535),
                      help="HTTP port.")(fn)
    fn = click.option("--keep-alive", default=300.0, show_default=True, type=click.FloatRange(min=0),
                      help="Seconds an idle instance stays warm.")(fn)
    fn = click.option("--node-id", default=None, callback=_node_id,
                      help="Name of this node in the cluster: letters, digits, '.', '-', '_'.")(fn)
    fn = click.option("--admin-host", default="127.0.0.1", show_default=True,
                      help="Interface of the admin listener (GET /health, GET /metrics).")(fn)
    fn = click.option("--admin-port", default=None, type=click.IntRange(0, 65535),
                      help="Port of the admin listener (GET /health, GET /metrics); none without it.")(fn)
    fn = click.option("--metering-retention", default=24.0, show_default=True, type=click.FloatRange(min=0.01),
                      metavar="HOURS", help="Hours metering records are kept.")(fn)
    fn = click.option("--observability/--no-observability", default=True, show_default=True,
                      help="Record traces, metrics and the function log (metering is always on).")(fn)
    fn = click.option("--log-retention", default=24.0, show_default=True, type=click.FloatRange(min=0.01),
                      metavar="HOURS", help="Hours function log lines are kept (squall logs).")(fn)
    fn = click.option("--trace-retention", default=1.0, show_default=True, type=click.FloatRange(min=0.01),
                      metavar="HOURS", help="Hours spans are kept (squall traces).")(fn)
    fn = click.option("--trace-max-spans", default=100_000, show_default=True, type=click.IntRange(min=1),
                      help="The most spans kept (squall traces).")(fn)
    fn = click.option("--objects", "objects", metavar="PATH|URL", default=None,
                      help="Object store: a (shared) directory or s3://bucket/prefix (env SQUALL_OBJECTS; "
                           "default objects/ beside the state).")(fn)
    fn = click.option("--max-connections", default=1000, show_default=True, type=click.IntRange(min=1),
                      help="Open HTTP connections; the first request of one beyond it gets 503.")(fn)
    fn = click.option("--header-timeout", default=10.0, show_default=True, type=click.FloatRange(min=0, min_open=True),
                      metavar="SECONDS", help="Time a client has to send a request's headers (then 408).")(fn)
    fn = click.option("--body-timeout", default=30.0, show_default=True, type=click.FloatRange(min=0, min_open=True),
                      metavar="SECONDS", help="Time a client has, after the headers, to send the body (then 408).")(fn)
    fn = click.option("--idle-timeout", default=5.0, show_default=True, type=click.FloatRange(min=0, min_open=True),
                      metavar="SECONDS", help="Time an idle keep-alive HTTP connection stays open.")(fn)
    fn = click.option("--forwarded-allow-ips", envvar="FORWARDED_ALLOW_IPS", default="127.0.0.1", show_default=True,
                      callback=_forwarded_allow_ips,
                      metavar="ADDRESSES", help="Reverse proxies whose X-Forwarded-For/-Proto are believed: IP "
                      "addresses and networks, comma-separated, or '*' (env FORWARDED_ALLOW_IPS).")(fn)
    return backend_option(fn)


def _forwarded_allow_ips(ctx: click.Context, param: click.Parameter, value: str) -> str:
    from squall.gateway import GatewaySettings

    try:
        GatewaySettings(forwarded_allow_ips=value)
    except SquallError as exc:
        raise click.BadParameter(str(exc).removeprefix("forwarded_allow_ips: ")) from None
    return value


def _settings(keep_alive: float, node_id: str | None, metering_retention: float, observability: bool,
              log_retention: float, trace_retention: float, trace_max_spans: int) -> NodeSettings:
    from squall.node import NodeSettings
    from squall.observability.settings import HOUR, ObservabilitySettings
    from squall.runtime.base import RuntimeSettings

    settings = NodeSettings(runtime=RuntimeSettings(keep_alive=keep_alive),
                            metering_retention=metering_retention * HOUR,
                            observability=ObservabilitySettings(observability, log_retention * HOUR,
                                                                trace_retention * HOUR, trace_max_spans))
    if node_id:
        settings.node_id = node_id
    return settings


@main.command()
@click.argument("app_ref", metavar="APP")
@_node_options
def run(app_ref: str, host: str, port: int, keep_alive: float, node_id: str | None, metering_retention: float,
        observability: bool, log_retention: float, trace_retention: float, trace_max_spans: int,
        objects: str | None, max_connections: int, header_timeout: float, body_timeout: float,
        idle_timeout: float, forwarded_allow_ips: str, backend: str | None, admin_host: str,
        admin_port: int | None) -> None:
    """Run a production node for APP (a file like app.py, or module:attribute)."""
    from squall.gateway import GatewaySettings
    from squall.reloader import follow_supervisor
    from squall.server import configure_logging, run_node

    follow_supervisor()
    check_port_free(host, port)
    configure_logging()
    url = backend_url(backend, app_ref)
    gateway = GatewaySettings(max_connections=max_connections, header_timeout=header_timeout,
                              body_timeout=body_timeout, idle_timeout=idle_timeout,
                              forwarded_allow_ips=forwarded_allow_ips)
    run_node(app_ref, url, objects_url(objects, url, app_ref), host, port,
             _settings(keep_alive, node_id, metering_retention, observability, log_retention, trace_retention,
                       trace_max_spans), gateway,
             admin=None if admin_port is None else (admin_host, admin_port))


@main.command()
@click.argument("app_ref", metavar="APP")
@_node_options
@click.option("--reload/--no-reload", default=True, show_default=True, help="Restart when a file changes.")
def dev(app_ref: str, host: str, port: int, keep_alive: float, node_id: str | None, metering_retention: float,
        observability: bool, log_retention: float, trace_retention: float, trace_max_spans: int,
        objects: str | None, max_connections: int, header_timeout: float, body_timeout: float,
        idle_timeout: float, forwarded_allow_ips: str, backend: str | None, admin_host: str,
        admin_port: int | None, reload: bool) -> None:
    """Run APP on one machine with embedded state, restarting it when its files change."""
    from squall.loader import app_root, check_app

    check_app(app_ref)  # fail here, in one line, rather than in the child
    check_port_free(host, port)
    url = backend_url(backend, app_ref)
    args = [sys.executable, "-m", "squall", "run", app_ref, "--host", host, "--port", str(port),
            "--keep-alive", str(keep_alive), "--metering-retention", str(metering_retention), "--backend", url,
            "--objects", objects_url(objects, url, app_ref), "--max-connections", str(max_connections),
            "--header-timeout", str(header_timeout), "--body-timeout", str(body_timeout),
            "--idle-timeout", str(idle_timeout), "--forwarded-allow-ips", forwarded_allow_ips,
            "--observability" if observability else "--no-observability", "--log-retention", str(log_retention),
            "--trace-retention", str(trace_retention), "--trace-max-spans", str(trace_max_spans)]
    args += ["--node-id", node_id] if node_id else []
    args += ["--admin-host", admin_host, "--admin-port", str(admin_port)] if admin_port is not None else []
    if not reload:
        os.execv(sys.executable, args)
    from squall.reloader import supervise

    sys.exit(supervise(args, app_root(app_ref)))


@main.command()
@click.argument("app_ref", metavar="APP")
@click.argument("function")
@click.option("--data", default="null", help="The event, as JSON.")
@click.option("--client-context", "client_context", metavar="BASE64", default=None,
              help="The context.client_context the function sees: a JSON object, base64-encoded as "
                   "`aws lambda invoke --client-context` takes it (at most 3,583 bytes), or the JSON itself.")
@click.option("--async", "asynchronous", is_flag=True,
              help="Queue an asynchronous invocation (retries, destinations) and print its request id.")
@backend_option
def invoke(app_ref: str, function: str, data: str, client_context: str | None, asynchronous: bool,
           backend: str | None) -> None:
    """Invoke FUNCTION of APP once and print its result as JSON (REPORT line on stderr);
    with --async, queue the invocation for the app's nodes and print its request id."""
    if asynchronous and client_context is not None:
        raise click.ClickException("--client-context is for synchronous invocations only")
    try:
        event = json.loads(utf8("--data", data))
    except json.JSONDecodeError as exc:
        raise click.ClickException(f"--data is not valid JSON: {exc}") from None
    except RecursionError:
        raise click.ClickException("--data is nested too deeply to decode") from None
    from squall.backends import open_backend
    from squall.core.pipeline import InvokeRequest
    from squall.node import Node
    from squall.runtime.context import CLIENT_CONTEXT_HEADER
    from squall.runtime.invocation import Invocation
    from squall.sources.async_invoke import queue_async

    headers = {} if client_context is None else {CLIENT_CONTEXT_HEADER: client_context_json(client_context)}

    async def once() -> Invocation | str:
        url = backend_url(backend, app_ref)
        store = open_backend(url)
        try:
            # the functions' log goes to stderr, with the REPORT line: stdout is the result's
            node = await Node.load(app_ref, store, objects_url(None, url, app_ref), output=sys.stderr)
            try:
                node.app.config(function)
                await node.start(background=False)
                if asynchronous:
                    return queue_async(node.backend, function, event)
                return await node.invoke(InvokeRequest(function, event, headers=headers))
            finally:
                await node.stop()
        finally:
            store.close()

    invocation = asyncio.run(once())
    if isinstance(invocation, str):
        click.echo(invocation)  # the request id every attempt at the event runs under
        return
    if invocation.error is None:
        click.echo(json.dumps(invocation.result))
    else:
        error = invocation.error.to_dict()
        click.echo(json.dumps({"errorMessage": error["errorMessage"], "errorType": error["errorType"],
                               "requestId": invocation.request_id, "stackTrace": error["stackTrace"]}))
        sys.exit(1)


#: Lambda's limit on an Invoke's ClientContext (its base64 text)
MAX_CLIENT_CONTEXT = 3583


def client_context_json(value: str) -> str:
    """--client-context as the JSON text Lambda hands the runtime: base64 of a JSON object, as
    Lambda's Invoke API (and so the AWS CLI) takes it, or the object's JSON (it starts with
    `{`, which base64 never does). One line naming the problem otherwise."""
    text = utf8("--client-context", value).strip()
    if not text.startswith("{"):
        if len(text) > MAX_CLIENT_CONTEXT:
            raise click.ClickException(f"--client-context is {len(text)} bytes of base64; Lambda allows "
                                       f"{MAX_CLIENT_CONTEXT}")
        try:
            text = base64.b64decode(text, validate=True).decode("utf-8")
        except (binascii.Error, UnicodeDecodeError) as exc:
            raise click.ClickException(f"--client-context is neither a JSON object nor its base64: {exc}") from None
    try:
        fields = json.loads(text)
    except (json.JSONDecodeError, RecursionError) as exc:
        raise click.ClickException(f"--client-context is not valid JSON: {exc}") from None
    if not isinstance(fields, dict):
        raise click.ClickException(f"--client-context must be a JSON object, not {type(fields).__name__}")
    if not isinstance(fields.get("client", {}), dict):
        raise click.ClickException("--client-context: 'client' must be a JSON object")
    return json.dumps(fields)


@main.command()
@click.argument("queue")
@click.argument("body")
@click.option("--delay", default=0.0, type=float, help="Seconds before the message is visible.")
@click.option("--attribute", "-a", multiple=True, metavar="NAME=VALUE", help="A message attribute (repeatable).")
@click.option("--group-id", help="The message group (MessageGroupId; FIFO queues only, where it is required).")
@click.option("--dedup-id", help="The deduplication id (MessageDeduplicationId; FIFO queues only).")
@backend_option
def send(queue: str, body: str, delay: float, attribute: tuple[str, ...], group_id: str | None,
         dedup_id: str | None, backend: str | None) -> None:
    """Send BODY to QUEUE ('-' reads it from stdin); prints the message id (a duplicate's on
    a FIFO queue: the original's)."""
    from squall.backends import open_backend
    from squall.services import Queue

    body = utf8("the body on stdin", sys.stdin.buffer.read()) if body == "-" else utf8("BODY", body)
    attributes = {}
    for item in attribute:
        name, sep, value = utf8("an attribute", item).partition("=")
        if not sep or not name:
            raise click.ClickException(f"attribute {item!r} must look like NAME=VALUE, with a NAME")
        attributes[name] = value
    store = open_backend(backend_url(backend))
    try:
        click.echo(Queue(store, queue).send(body, delay_seconds=delay, attributes=attributes, group_id=group_id,
                                            dedup_id=dedup_id))
    finally:
        store.close()


@main.command()
@click.option("--all", "show_all", is_flag=True, help="Include internal queues (async invocations).")
@backend_option
def queues(show_all: bool, backend: str | None) -> None:
    """Depth, in-flight and DLQ depth of every declared queue, and the messages its filters dropped."""
    from squall.backends import open_backend
    from squall.sources.filters import filtered_counts

    store = open_backend(backend_url(backend))
    try:
        rows = []
        filtered = filtered_counts(store)
        for name in store.queue_names():
            config = store.queue_config(name)
            if config is None or config.is_dlq or (config.internal and not show_all):
                continue
            stats = store.queue_stats(name)
            dlq = config.dlq
            dlq_depth = store.queue_stats(dlq).total if dlq else 0
            rows.append((name, stats.visible + stats.delayed, stats.in_flight, dlq or "-", dlq_depth,
                         filtered.get(name, 0)))
    finally:
        store.close()
    _table(["QUEUE", "DEPTH", "IN_FLIGHT", "DLQ", "DLQ_DEPTH", "FILTERED"], rows)


@main.command()
@backend_option
def nodes(backend: str | None) -> None:
    """Live nodes sharing the backend, with their load."""
    import time

    from squall.backends import open_backend

    store = open_backend(backend_url(backend))
    try:
        live = store.nodes()
    finally:
        store.close()
    now = time.time()
    rows = [(n.node_id, n.info.get("app", "-"), n.info.get("host", "-"), n.info.get("pid", "-"),
             _health(n.info), n.info.get("instances", 0), n.info.get("busy", 0), n.info.get("invocations", 0),
             f"{now - n.info.get('started', now):.0f}s") for n in live]
    _table(["NODE", "APP", "HOST", "PID", "HEALTH", "INSTANCES", "BUSY", "INVOCATIONS", "UPTIME"], rows)


def _health(info: dict[str, Any]) -> str:
    """`ok`, or `unhealthy: <reasons>` (a node of an older release reports neither: `-`)."""
    if "healthy" not in info:
        return "-"
    problems = info.get("problems") or {}
    return "ok" if info["healthy"] else "unhealthy: " + "; ".join(f"{k}: {v}" for k, v in problems.items())


@main.group()
def dlq() -> None:
    """Inspect and redrive dead-letter queues."""


def _dlq_of(store: Backend, queue: str) -> str:
    from squall.errors import QueueNotFound

    config = store.queue_config(queue)
    if config is None:
        raise QueueNotFound(f"unknown queue {queue!r}")
    if not config.dlq:
        raise QueueNotFound(f"queue {queue!r} has no dead-letter queue")
    return config.dlq


@dlq.command("list")
@click.argument("queue")
@click.option("--limit", default=10, show_default=True, type=click.IntRange(1, 10000))
@backend_option
def dlq_list(queue: str, limit: int, backend: str | None) -> None:
    """Show messages in QUEUE's dead-letter queue."""
    from squall.backends import open_backend

    store = open_backend(backend_url(backend))
    try:
        for message in store.peek(_dlq_of(store, queue), limit):
            click.echo(json.dumps({"messageId": message.id, "body": message.body,
                                   "messageAttributes": message.attributes}))
    finally:
        store.close()


@dlq.command("redrive")
@click.argument("queue")
@backend_option
def dlq_redrive(queue: str, backend: str | None) -> None:
    """Move every message in QUEUE's dead-letter queue back to QUEUE."""
    from squall.backends import open_backend

    store = open_backend(backend_url(backend))
    try:
        moved = store.redrive(_dlq_of(store, queue), queue)
    finally:
        store.close()
    click.echo(f"redrove {moved} message(s) to {queue}")


def _table(headers: list[str], rows: list[tuple]) -> None:
    widths = [max(len(str(x)) for x in column) for column in zip(headers, *rows, strict=False)]
    for row in [headers, *rows]:
        click.echo("  ".join(str(value).ljust(width) for value, width in zip(row, widths, strict=False)).rstrip())


import squall.cli_events  # noqa: E402, F401 - registers `squall put-events`, `events`, `test-event-pattern`
import squall.cli_logs  # noqa: E402, F401 - registers `squall logs`
import squall.cli_metrics  # noqa: E402, F401 - registers `squall metrics` and `squall alarms`
import squall.cli_schedules  # noqa: E402, F401 - registers `squall schedules`
import squall.cli_topics  # noqa: E402, F401 - registers `squall publish` and `squall topics`
import squall.cli_traces  # noqa: E402, F401 - registers `squall traces`
