"""The console's JSON API (same login as the pages; 401 without a valid session).

- ``POST /api/login`` ``{"username", "password"}`` → session cookie (see :mod:`streams.console.auth`)
- ``GET /api/verdicts?outcome=&category=&model=&since=&until=&reviewed=&flips=&run=&limit=&cursor=``
  → ``{"items": [...], "next": cursor | null}``
- ``GET /api/verdicts/{event_id}[?run=RUN]`` → the verdict in full, its other runs and its reviews
- ``POST /api/verdicts/{event_id}/review`` ``{"action": "confirm" | "correct", "answers": {...},
  "categories": [...], "note": "...", "run_id": null}`` → 201 ``{"review": {...}}``
- ``GET /api/dashboard?window=1h`` → the dashboard's series
- ``GET /api/me`` → the session's user, role and CSRF token
"""

from __future__ import annotations

from aiohttp import web

from streams.console.dashboard import build_dashboard
from streams.console.forms import FilterError, parse_cursor, parse_filter, parse_limit
from streams.console.review import VerdictNotFound, load_event, submit_review
from streams.console.state import CONFIG, POOL, json_error, session_of
from streams.store.queue import list_verdicts
from streams.store.reviews import ReviewError

__all__ = ["api_routes"]


async def list_handler(request: web.Request) -> web.StreamResponse:
    try:
        queue_filter = parse_filter(request.query)
        limit = parse_limit(request.query, default=request.app[CONFIG].page_size)
        cursor = parse_cursor(request.query)
    except FilterError as exc:
        return json_error(400, str(exc))
    async with request.app[POOL].connection() as conn:
        items, next_cursor = await list_verdicts(conn, queue_filter, limit=limit, cursor=cursor)
    return web.json_response(
        {"items": [i.to_dict() for i in items], "next": next_cursor.encode() if next_cursor else None}
    )


async def detail_handler(request: web.Request) -> web.StreamResponse:
    try:
        view = await load_event(request, request.match_info["event_id"], request.query.get("run") or None)
    except VerdictNotFound:
        return json_error(404, "no stored verdict with this event id")
    return web.json_response(view.to_dict())


async def review_handler(request: web.Request) -> web.StreamResponse:
    try:
        body = await request.json()
    except ValueError:
        return json_error(400, "body: a JSON object")
    if not isinstance(body, dict):
        return json_error(400, "body: a JSON object")
    run_id = body.get("run_id")
    if run_id is not None and not isinstance(run_id, str):
        return json_error(400, "run_id: a string or null")
    try:
        review = await submit_review(
            request,
            request.match_info["event_id"],
            run_id or None,
            action=body.get("action"),
            answers=body.get("answers"),
            categories=body.get("categories"),
            note=body.get("note", ""),
        )
    except PermissionError as exc:
        return json_error(403, str(exc))
    except VerdictNotFound:
        return json_error(404, "no stored verdict with this event id")
    except ReviewError as exc:
        return json_error(400, str(exc))
    return web.json_response({"review": {**review.to_dict(), "published": review.published}}, status=201)


async def dashboard_handler(request: web.Request) -> web.StreamResponse:
    try:
        dashboard = await build_dashboard(request)
    except FilterError as exc:
        return json_error(400, str(exc))
    return web.json_response(dashboard.to_dict())


async def me_handler(request: web.Request) -> web.StreamResponse:
    session = session_of(request)
    return web.json_response(
        {
            "username": session.user.username,
            "role": session.user.role.value,
            "csrf_token": session.csrf_token,
            "expires_at": session.expires_at.timestamp(),
        }
    )


def api_routes() -> list[web.RouteDef]:
    return [
        web.get("/api/verdicts", list_handler),
        web.get("/api/verdicts/{event_id}", detail_handler),
        web.post("/api/verdicts/{event_id}/review", review_handler),
        web.get("/api/dashboard", dashboard_handler),
        web.get("/api/me", me_handler),
    ]
