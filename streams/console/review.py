"""What the HTML pages and the JSON API share: loading one event, and submitting a review."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from aiohttp import web

from streams.console.reasoning import ReasoningTask, deciding_step, reasoning_tasks
from streams.console.state import POOL, PUBLISHER, session_of
from streams.store.queue import EventVerdict, QueueItem, event_verdicts, get_verdict
from streams.store.reviews import Review, add_review, decide_review, list_reviews

__all__ = ["EventView", "VerdictNotFound", "load_event", "submit_review"]


class VerdictNotFound(LookupError):
    """No stored verdict for this event id (and run)."""


@dataclass(frozen=True, slots=True)
class EventView:
    verdict: EventVerdict
    runs: list[QueueItem]  # every stored verdict of the event, live first
    reviews: list[Review]  # the audit trail, oldest first
    tasks: list[ReasoningTask]

    def to_dict(self) -> dict[str, Any]:
        data = self.verdict.to_dict()
        decided = deciding_step(data["reasoning"], data["answers"])
        return {
            **data,
            "deciding_step": {"task": decided[0], "step": decided[1] + 1} if decided else None,
            "runs": [
                {
                    "run_id": r.run_id or None,
                    "model": r.model,
                    "outcome": r.outcome,
                    "answers": r.answers,
                    "moderated_at": r.moderated_at.timestamp(),
                    "flipped": r.flipped,
                }
                for r in self.runs
            ],
            "reviews": [{**r.to_dict(), "published": r.published} for r in self.reviews],
        }


async def load_event(request: web.Request, event_id: str, run_id: str | None) -> EventView:
    async with request.app[POOL].connection() as conn:
        verdict = await get_verdict(conn, event_id, run_id)
        if verdict is None:
            raise VerdictNotFound(event_id)
        runs = await event_verdicts(conn, event_id)
        reviews = await list_reviews(conn, event_id)
    record = verdict.record
    return EventView(
        verdict, runs, reviews, reasoning_tasks(record.get("reasoning") or [], verdict.item.answers)
    )


async def submit_review(
    request: web.Request,
    event_id: str,
    run_id: str | None,
    *,
    action: Any,
    answers: Mapping[str, Any] | None,
    categories: Any,
    note: Any,
) -> Review:
    """Validate and append a review by the session's user; raises PermissionError (viewer),
    VerdictNotFound, or :class:`streams.store.reviews.ReviewError` (invalid review)."""
    user = session_of(request).user
    if not user.role.can_review:
        raise PermissionError(f"{user.username} is a {user.role.value}: viewers cannot review")
    async with request.app[POOL].connection() as conn:
        verdict = await get_verdict(conn, event_id, run_id)
        if verdict is None:
            raise VerdictNotFound(event_id)
        decision = decide_review(
            verdict.item, action=action, answers=answers, categories=categories, note=note
        )
        review = await add_review(conn, verdict.item, user, decision)
    request.app[PUBLISHER].notify()
    return review
