"""The admin listener: a node's operational endpoints, apart from the public gateway.

It listens on its own address (`--admin-host`, loopback by default, `--admin-port`), so a
health check or a metrics scrape never competes with, or is exposed like, user traffic.
`GET /health` answers 200 while the node can do its job and 503, with the reasons, while
it cannot (its runtime is restarting its zygote, its state file was deleted), as a load
balancer's or Kubernetes' probe expects. `GET /metrics` is the Prometheus exposition
(`squall.observability.prometheus`), served only while observability is on.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Iterator
from typing import TYPE_CHECKING

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from squall.observability.prometheus import CONTENT_TYPE, Exposition

if TYPE_CHECKING:
    from squall.node import Node

log = logging.getLogger("squall.admin")


def build_admin(node: Node) -> Starlette:
    async def health(request: Request) -> JSONResponse:
        problems = node.problems()
        body = {"status": "unhealthy" if problems else "ok", "node": node.settings.node_id, "problems": problems}
        return JSONResponse(body, status_code=503 if problems else 200)

    routes = [Route("/health", health, methods=["GET"])]
    if node.recorder is not None:
        exposition = Exposition(node.recorder, node.runtime, node.backend, node.settings.node_id, node.app.name,
                                node.custom_metrics, node.logs)

        async def metrics(request: Request) -> Response:
            try:  # the invocations metered since the last flush are counted (before the write)
                await node.meter.step()
            except Exception as exc:  # noqa: BLE001 - the scrape still answers, as a failed flush would
                log.warning("metering: %s", exc)
            return Response(await asyncio.to_thread(exposition.render), media_type=CONTENT_TYPE)

        routes.append(Route("/metrics", metrics, methods=["GET"]))
    return Starlette(routes=routes)


class AdminServer(uvicorn.Server):
    """uvicorn for the admin listener: it runs beside the gateway's server, which owns
    the process's signals, so it installs no handlers of its own."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


def admin_server(node: Node, host: str, port: int) -> AdminServer:
    config = uvicorn.Config(build_admin(node), host=host, port=port, log_level="warning", access_log=False,
                            lifespan="off", server_header=False)
    return AdminServer(config)
