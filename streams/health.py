"""The worker's HTTP endpoints: ``/metrics`` (Prometheus), ``/healthz`` (alive), ``/readyz`` (can work).

Readiness is false while the engine is not ready or no broker of the
bootstrap list accepts a TCP connection, so an orchestrator stops routing to
(or restarts) a worker that cannot moderate.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable

import orjson
from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

__all__ = ["HealthServer", "broker_reachable"]

logger = logging.getLogger(__name__)

Check = Callable[[], Awaitable[bool]]


async def broker_reachable(bootstrap: str, timeout_s: float = 1.0) -> bool:
    for address in bootstrap.split(","):
        host, _, port = address.strip().rpartition(":")
        try:
            _, writer = await asyncio.wait_for(asyncio.open_connection(host, int(port)), timeout_s)
        except (OSError, TimeoutError, ValueError):
            continue
        writer.close()
        return True
    return False


class HealthServer:
    def __init__(self, *, host: str, port: int, checks: dict[str, Check]) -> None:
        self._host = host
        self._port = port
        self._checks = checks
        self._runner: web.AppRunner | None = None
        self.port = port

    async def start(self) -> None:
        app = web.Application()
        app.router.add_get("/metrics", self._metrics)
        app.router.add_get("/healthz", self._alive)
        app.router.add_get("/readyz", self._ready)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, self._host, self._port)
        await site.start()
        sockets = getattr(site._server, "sockets", None)  # noqa: SLF001 - the bound port when 0 was asked
        if sockets:
            self.port = sockets[0].getsockname()[1]
        logger.info("health endpoints on http://%s:%d (/metrics /healthz /readyz)", self._host, self.port)

    async def stop(self) -> None:
        runner, self._runner = self._runner, None
        if runner is not None:
            await runner.cleanup()

    async def _metrics(self, _: web.Request) -> web.Response:
        return web.Response(body=generate_latest(), headers={"Content-Type": CONTENT_TYPE_LATEST})

    async def _alive(self, _: web.Request) -> web.Response:
        return web.json_response({"status": "alive"})

    async def _ready(self, _: web.Request) -> web.Response:
        results = {}
        for name, check in self._checks.items():
            try:
                results[name] = bool(await asyncio.wait_for(check(), 3.0))
            except Exception:
                results[name] = False
        ready = all(results.values())
        return web.Response(
            body=orjson.dumps({"ready": ready, "checks": results}),
            status=200 if ready else 503,
            content_type="application/json",
        )
