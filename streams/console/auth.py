"""Login, sessions, CSRF and security headers for every console route.

- **Login required everywhere** but ``/login``, ``/api/login`` and ``/static/``:
  the JSON API answers 401 without a valid session, HTML pages answer 401 with
  the login form.
- **Sessions**: a random token in an HttpOnly cookie (SameSite ``Strict`` by
  default, ``Secure`` when served over TLS or configured so; named with the
  ``__Host-`` prefix when Secure), server-side expiry; logout deletes it.
- **CSRF**: HTML forms carry the session's token (the login form a
  double-submit cookie), checked in constant time on every POST. JSON POSTs
  must be ``application/json`` (a cross-site form cannot send that without a
  CORS preflight, which this server never grants). Any POST whose ``Origin``
  is another site is refused.
- **Headers**: a strict Content-Security-Policy (no scripts at all), no
  framing, no sniffing, no referrer to other sites, no caching of pages.
"""

from __future__ import annotations

import hmac
import logging
import re
import secrets
from collections.abc import Awaitable, Callable
from typing import Any
from urllib.parse import urlsplit

from aiohttp import web

from streams.console.state import CONFIG, POOL, SESSION, TLS, json_error, render
from streams.store.users import User, authenticate, create_session, delete_session, load_session

__all__ = ["auth_middleware", "cookie_name", "headers_middleware", "login_routes"]

logger = logging.getLogger(__name__)

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
_PUBLIC = {
    ("GET", "/login"),
    ("POST", "/login"),
    ("POST", "/api/login"),
    ("GET", "/healthz"),
    ("GET", "/favicon.ico"),
}
_SAFE = {"GET", "HEAD", "OPTIONS"}
_LOGIN_CSRF_COOKIE = "gs_login_csrf"
_CSP = (
    "default-src 'none'; style-src 'self'; img-src 'self' data:; form-action 'self'; "
    "frame-ancestors 'none'; base-uri 'none'"
)


def _secure(request: web.Request) -> bool:
    setting = request.app[CONFIG].cookie_secure.strip().lower()
    if setting in ("true", "1", "yes"):
        return True
    if setting in ("false", "0", "no"):
        return False
    return request.app[TLS]


def cookie_name(secure: bool) -> str:
    return "__Host-gs_session" if secure else "gs_session"


def _set_session_cookie(request: web.Request, response: web.StreamResponse, token: str) -> None:
    config = request.app[CONFIG]
    secure = _secure(request)
    response.set_cookie(
        cookie_name(secure),
        token,
        max_age=int(config.session_ttl_s),
        path="/",
        httponly=True,
        secure=secure,
        samesite=config.cookie_samesite,
    )


def _session_token(request: web.Request) -> str:
    return request.cookies.get(cookie_name(_secure(request)), "")


def _same_origin(request: web.Request) -> bool:
    origin = request.headers.get("Origin")
    if origin is None:  # not sent by this browser or client: the CSRF checks below still apply
        return True
    # Compare hosts only: behind a TLS-terminating proxy the scheme seen here differs.
    return urlsplit(origin).netloc.lower() == request.host.lower()


def _safe_next(target: str) -> str:
    """Only local paths: never redirect a login to another site."""
    return target if target.startswith("/") and not target.startswith("//") and "\\" not in target else "/"


def _login_page(request: web.Request, *, status: int, error: str = "", next_path: str = "/") -> web.Response:
    # Keep the browser's token: a second page load (another tab, a favicon) must not invalidate a form.
    token = request.cookies.get(_LOGIN_CSRF_COOKIE, "")
    if not re.fullmatch(r"[A-Za-z0-9_-]{32}", token):
        token = secrets.token_urlsafe(24)
    response = render(
        request, "login.html", status=status, error=error, next_path=next_path, login_csrf=token
    )
    response.set_cookie(
        _LOGIN_CSRF_COOKIE,
        token,
        path="/login",
        httponly=True,
        secure=_secure(request),
        samesite="Strict",
        max_age=3600,
    )
    return response


@web.middleware
async def headers_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    try:
        response = await handler(request)
    except web.HTTPException as exc:
        response = exc
    response.headers.setdefault("Content-Security-Policy", _CSP)
    response.headers.setdefault("X-Frame-Options", "DENY")
    response.headers.setdefault("X-Content-Type-Options", "nosniff")
    response.headers.setdefault(
        "Referrer-Policy", "same-origin"
    )  # "no-referrer" makes forms send Origin: null
    if not request.path.startswith("/static/"):
        response.headers.setdefault("Cache-Control", "no-store")
    if isinstance(response, web.HTTPException):
        raise response
    return response


@web.middleware
async def auth_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    api = request.path.startswith("/api/")
    if request.method not in _SAFE and not _same_origin(request):
        return (
            json_error(403, "cross-site request refused")
            if api
            else web.Response(status=403, text="forbidden")
        )
    if (request.method, request.path) in _PUBLIC or request.path.startswith("/static/"):
        return await handler(request)
    token = _session_token(request)
    session = None
    if token:
        async with request.app[POOL].connection() as conn:
            session = await load_session(conn, token)
    if session is None:
        if api:
            return json_error(401, "login required")
        return _login_page(request, status=401, next_path=request.path_qs if request.method == "GET" else "/")
    request[SESSION] = session
    if request.method not in _SAFE:
        if api:
            if request.content_type != "application/json":
                return json_error(415, "send application/json")
        else:
            form = await request.post()
            sent = str(form.get("csrf_token", ""))
            if not hmac.compare_digest(sent.encode(), session.csrf_token.encode()):
                return web.Response(status=403, text="CSRF token missing or wrong; reload the page")
    return await handler(request)


async def _start_session(request: web.Request, user: User) -> tuple[str, dict[str, Any]]:
    """A new session: the cookie token, and what the JSON login answers."""
    async with request.app[POOL].connection() as conn:
        token, session = await create_session(conn, user, request.app[CONFIG].session_ttl_s)
    logger.info('console login user="%s" role="%s"', user.username, user.role.value)
    return token, {
        "username": user.username,
        "role": user.role.value,
        "csrf_token": session.csrf_token,
        "expires_at": session.expires_at.timestamp(),
    }


async def login_page(request: web.Request) -> web.StreamResponse:
    return _login_page(request, status=200, next_path=_safe_next(request.query.get("next", "/")))


async def login_form(request: web.Request) -> web.StreamResponse:
    form = await request.post()
    next_path = _safe_next(str(form.get("next", "/")))
    expected = request.cookies.get(_LOGIN_CSRF_COOKIE, "")
    sent = str(form.get("login_csrf", ""))
    if not expected or not hmac.compare_digest(sent.encode(), expected.encode()):
        return _login_page(
            request, status=403, error="The form expired; please try again.", next_path=next_path
        )
    username, password = str(form.get("username", "")), str(form.get("password", ""))
    async with request.app[POOL].connection() as conn:
        user = await authenticate(conn, username, password)
    if user is None:
        logger.warning('console login failed user="%s"', username[:64])
        return _login_page(request, status=401, error="Wrong user name or password.", next_path=next_path)
    token, _ = await _start_session(request, user)
    response = web.HTTPSeeOther(next_path)
    _set_session_cookie(request, response, token)
    response.del_cookie(_LOGIN_CSRF_COOKIE, path="/login")
    raise response


async def api_login(request: web.Request) -> web.StreamResponse:
    if request.content_type != "application/json":
        return json_error(415, "send application/json")
    try:
        body = await request.json()
    except ValueError:
        return json_error(400, "body: JSON object with username and password")
    if (
        not isinstance(body, dict)
        or not isinstance(body.get("username"), str)
        or not isinstance(body.get("password"), str)
    ):
        return json_error(400, "body: JSON object with username and password")
    async with request.app[POOL].connection() as conn:
        user = await authenticate(conn, body["username"], body["password"])
    if user is None:
        logger.warning('console login failed user="%s"', body["username"][:64])
        return json_error(401, "wrong user name or password")
    token, payload = await _start_session(request, user)
    response = web.json_response(payload)
    _set_session_cookie(request, response, token)
    return response


async def logout(request: web.Request) -> web.StreamResponse:
    async with request.app[POOL].connection() as conn:
        await delete_session(conn, _session_token(request))
    api = request.path.startswith("/api/")
    response: web.StreamResponse = web.json_response({"ok": True}) if api else web.HTTPSeeOther("/login")
    response.del_cookie(cookie_name(_secure(request)), path="/")
    if isinstance(response, web.HTTPException):
        raise response
    return response


async def healthz(request: web.Request) -> web.StreamResponse:
    return web.Response(text="ok")


async def favicon(request: web.Request) -> web.StreamResponse:
    return web.Response(status=204)  # browsers ask for it; there is none


def login_routes() -> list[web.RouteDef]:
    return [
        web.get("/login", login_page),
        web.post("/login", login_form),
        web.post("/logout", logout),
        web.post("/api/login", api_login),
        web.post("/api/logout", logout),
        web.get("/healthz", healthz),
        web.get("/favicon.ico", favicon),
    ]
