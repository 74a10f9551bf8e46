"""What the console's handlers share: typed application keys, templates and small response helpers."""

from __future__ import annotations

from typing import Any

import jinja2
from aiohttp import web
from psycopg_pool import AsyncConnectionPool

from streams.config import ConsoleConfig
from streams.console.corrections import CorrectionsPublisher
from streams.store.users import Session

__all__ = [
    "CONFIG",
    "POOL",
    "PUBLISHER",
    "SESSION",
    "TEMPLATES",
    "TLS",
    "create_templates",
    "json_error",
    "render",
    "session_of",
]

POOL = web.AppKey("pool", AsyncConnectionPool)
CONFIG = web.AppKey("console_config", ConsoleConfig)
TEMPLATES = web.AppKey("templates", jinja2.Environment)
PUBLISHER = web.AppKey("publisher", CorrectionsPublisher)
TLS = web.AppKey("tls", bool)
SESSION = web.RequestKey("session", Session)


def create_templates() -> jinja2.Environment:
    env = jinja2.Environment(
        loader=jinja2.PackageLoader("streams.console", "templates"),
        autoescape=jinja2.select_autoescape(["html"]),
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters["when"] = lambda dt: dt.strftime("%Y-%m-%d %H:%M:%S UTC") if dt else ""
    return env


def session_of(request: web.Request) -> Session:
    """The request's session (the auth middleware put it there; public routes have none)."""
    return request[SESSION]


def render(request: web.Request, template: str, status: int = 200, **context: Any) -> web.Response:
    session = request.get(SESSION)
    page = (
        request.app[TEMPLATES]
        .get_template(template)
        .render(
            session=session,
            csrf_token=session.csrf_token if session else "",
            path=request.path,
            **context,
        )
    )
    return web.Response(text=page, status=status, content_type="text/html", charset="utf-8")


def json_error(status: int, message: str) -> web.Response:
    return web.json_response({"error": message}, status=status)
