"""The review console's web application (aiohttp, server-side Jinja2 templates, no JavaScript).

:func:`create_app` wires the routes (:mod:`views`, :mod:`api`, :mod:`auth`),
the middlewares (security headers, database outages as 503, login and CSRF),
a connection pool to the store and the corrections publisher.
:func:`run_console` serves it; the host defaults to 127.0.0.1.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import ssl
from collections.abc import AsyncIterator

import psycopg
from aiohttp import web
from psycopg_pool import AsyncConnectionPool, PoolTimeout

from streams.config import Settings
from streams.console.api import api_routes
from streams.console.auth import Handler, auth_middleware, headers_middleware, login_routes
from streams.console.corrections import CorrectionsPublisher
from streams.console.state import CONFIG, POOL, PUBLISHER, TEMPLATES, TLS, create_templates, json_error
from streams.console.views import page_routes
from streams.store.database import Database

__all__ = ["READY_LOG", "create_app", "run_console"]

logger = logging.getLogger(__name__)

READY_LOG = "review console listening"
_POOL_TIMEOUT_S = 5.0


@web.middleware
async def outage_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """The store being down makes pages answer 503 (the console keeps running and recovers)."""
    try:
        return await handler(request)
    except (psycopg.OperationalError, PoolTimeout) as exc:
        logger.warning('store unavailable path="%s" error="%r"', request.path, exc)
        if request.path.startswith("/api/"):
            return json_error(503, "the verdict store is unavailable; try again shortly")
        return web.Response(status=503, text="The verdict store is unavailable; try again shortly.")


def create_app(settings: Settings, database: Database, *, tls: bool = False) -> web.Application:
    app = web.Application(
        middlewares=[headers_middleware, outage_middleware, auth_middleware], client_max_size=1024 * 1024
    )
    pool: AsyncConnectionPool = AsyncConnectionPool(
        database.conninfo,
        min_size=1,
        max_size=8,
        kwargs={"autocommit": True},
        timeout=_POOL_TIMEOUT_S,
        open=False,
    )
    app[POOL] = pool
    app[CONFIG] = settings.console
    app[TEMPLATES] = create_templates()
    app[TLS] = tls
    app[PUBLISHER] = CorrectionsPublisher(pool, settings.kafka, settings.console.corrections_topic)
    app.add_routes(login_routes())
    app.add_routes(api_routes())
    app.add_routes(page_routes())
    app.cleanup_ctx.append(_lifecycle)
    return app


async def _lifecycle(app: web.Application) -> AsyncIterator[None]:
    pool = app[POOL]
    await pool.open(wait=False)  # a store that is down now is retried per request
    publisher = app[PUBLISHER]
    task = asyncio.create_task(publisher.run(), name="corrections-publisher")
    yield
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task
    await publisher.aclose()
    await pool.close()


def _ssl_context(cert: str | None, key: str | None) -> ssl.SSLContext | None:
    if not cert:
        return None
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert, key)
    return context


def run_console(settings: Settings, database: Database) -> None:
    """Serve the console until SIGTERM/SIGINT (what ``guardstream console`` and ``up`` run)."""
    config = settings.console
    context = _ssl_context(config.tls_cert, config.tls_key)
    app = create_app(settings, database, tls=context is not None)
    scheme = "https" if context else "http"

    async def announce(app: web.Application) -> None:
        logger.info('%s url="%s://%s:%d/"', READY_LOG, scheme, config.host, config.port)

    app.on_startup.append(announce)
    web.run_app(
        app,
        host=config.host,
        port=config.port,
        ssl_context=context,
        print=None,
        access_log=None,
        handle_signals=True,
    )
