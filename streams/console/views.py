"""The console's HTML pages: the queue, a verdict with its review form and audit trail, the dashboard."""

from __future__ import annotations

from pathlib import Path
from urllib.parse import quote, urlencode

from aiohttp import web

from streams.console.dashboard import WINDOWS, build_dashboard, charts, window_of
from streams.console.forms import (
    OUTCOMES,
    FilterError,
    filter_params,
    parse_cursor,
    parse_filter,
    parse_limit,
)
from streams.console.review import VerdictNotFound, load_event, submit_review
from streams.console.state import CONFIG, POOL, render, session_of
from streams.store.queue import list_verdicts
from streams.store.reviews import ANSWER_VALUES, ReviewError

__all__ = ["page_routes", "verdict_url"]

STATIC_DIR = Path(__file__).with_name("static")


def verdict_url(event_id: str, run_id: str = "") -> str:
    url = f"/verdicts/{quote(event_id, safe='')}"
    return f"{url}?{urlencode({'run': run_id})}" if run_id else url


async def queue_page(request: web.Request) -> web.StreamResponse:
    try:
        queue_filter = parse_filter(request.query)
        limit = parse_limit(request.query, default=request.app[CONFIG].page_size)
        cursor = parse_cursor(request.query)
    except FilterError as exc:
        return render(request, "error.html", status=400, message=str(exc))
    async with request.app[POOL].connection() as conn:
        items, next_cursor = await list_verdicts(conn, queue_filter, limit=limit, cursor=cursor)
    params = filter_params(queue_filter)
    next_url = f"/?{urlencode({**params, 'cursor': next_cursor.encode()})}" if next_cursor else None
    return render(
        request,
        "queue.html",
        items=items,
        filter=queue_filter,
        query=request.query,
        outcomes=OUTCOMES,
        next_url=next_url,
        first_url=f"/?{urlencode(params)}" if cursor else None,
        verdict_url=verdict_url,
    )


async def _verdict_page(request: web.Request, *, status: int = 200, error: str = "") -> web.StreamResponse:
    event_id = request.match_info["event_id"]
    run_id = request.query.get("run") or None
    try:
        view = await load_event(request, event_id, run_id)
    except VerdictNotFound:
        return render(request, "error.html", status=404, message=f"No stored verdict for event {event_id!r}.")
    return render(
        request,
        "verdict.html",
        status=status,
        view=view,
        v=view.verdict,
        item=view.verdict.item,
        answer_values=ANSWER_VALUES,
        can_review=session_of(request).user.role.can_review,
        error=error,
        verdict_url=verdict_url,
    )


async def verdict_page(request: web.Request) -> web.StreamResponse:
    return await _verdict_page(request)


async def review_form(request: web.Request) -> web.StreamResponse:
    form = await request.post()
    action = str(form.get("action", ""))
    run_id = str(form.get("run", "")) or None
    correcting = action == "correct"
    try:
        await submit_review(
            request,
            request.match_info["event_id"],
            run_id,
            action=action,
            answers={k: str(form.get(k, "")) for k in ANSWER_VALUES} if correcting else None,
            categories=str(form.get("categories", "")) if correcting else None,
            note=str(form.get("note", "")),
        )
    except PermissionError as exc:
        return render(request, "error.html", status=403, message=str(exc))
    except VerdictNotFound:
        return render(request, "error.html", status=404, message="No stored verdict for this event.")
    except ReviewError as exc:
        return await _verdict_page(request, status=400, error=str(exc))
    raise web.HTTPSeeOther(verdict_url(request.match_info["event_id"], run_id or "") + "#audit")


async def dashboard_page(request: web.Request) -> web.StreamResponse:
    try:
        window = window_of(request)
        dashboard = await build_dashboard(request)
    except FilterError as exc:
        return render(request, "error.html", status=400, message=str(exc))
    return render(
        request,
        "dashboard.html",
        window=window,
        windows=list(WINDOWS),
        totals=dashboard.totals(),
        charts=charts(dashboard),
    )


def page_routes() -> list[web.AbstractRouteDef]:
    return [
        web.get("/", queue_page),
        web.get("/verdicts/{event_id}", verdict_page),
        web.post("/verdicts/{event_id}/review", review_form),
        web.get("/dashboard", dashboard_page),
        web.static("/static", STATIC_DIR),
    ]
