"""Review actions: the append-only audit trail and its outbox to ``moderation.corrections``.

A review confirms or corrects the three answers (request, completion,
response) and the category tags of one stored verdict, with a note. The
reviewed label of an *event* is its newest review. :func:`add_review` writes,
in one transaction, the review (the ``reviews`` table rejects UPDATE, DELETE
and TRUNCATE with a trigger), an outbox row for Kafka, and the "reviewed"
mark on every stored verdict of the event; the console's publisher then sends
outbox rows to Kafka and removes them once acknowledged (at-least-once, keyed
by review id).
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import psycopg
from psycopg.rows import dict_row
from psycopg.types.json import Jsonb

from streams.store.queue import QueueItem
from streams.store.roles import Role
from streams.store.users import User

__all__ = [
    "ANSWER_VALUES",
    "MAX_NOTE_CHARS",
    "Review",
    "ReviewDecision",
    "ReviewError",
    "add_review",
    "decide_review",
    "list_reviews",
    "mark_published",
    "pending_corrections",
]

ANSWER_VALUES: dict[str, tuple[str, ...]] = {
    "request": ("harmful", "unharmful"),
    "completion": ("refusal", "compliance"),
    "response": ("harmful", "unharmful"),
}
MAX_NOTE_CHARS = 4000
_MAX_TAGS = 32
_TAG = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.:-]{0,31}$")


class ReviewError(ValueError):
    """The review request is not a valid review of this verdict (answered as HTTP 400)."""


@dataclass(frozen=True, slots=True)
class ReviewDecision:
    action: str  # "confirm" or "correct"
    answers: dict[str, str | None]
    categories: tuple[str, ...]
    note: str
    agrees: bool  # the final label equals the model's answers and categories


def _answer(name: str, value: Any) -> str | None:
    if value is None or value == "" or (isinstance(value, str) and value.lower() == "none"):
        return None
    if not isinstance(value, str) or value.lower() not in ANSWER_VALUES[name]:
        raise ReviewError(f"answers.{name}: one of {', '.join(ANSWER_VALUES[name])} or null")
    return value.lower()


def _categories(value: Any) -> tuple[str, ...]:
    if isinstance(value, str):
        value = [v for v in re.split(r"[,\s]+", value) if v]
    if not isinstance(value, list) or len(value) > _MAX_TAGS:
        raise ReviewError(f"categories: a list of at most {_MAX_TAGS} tags")
    tags: dict[str, None] = {}
    for tag in value:
        if not isinstance(tag, str) or not _TAG.match(tag):
            raise ReviewError(f"categories: {str(tag)[:40]!r} is not a tag (letters, digits, _ . : -)")
        tags[tag] = None
    return tuple(tags)


def decide_review(
    verdict: QueueItem,
    *,
    action: Any,
    answers: Mapping[str, Any] | None = None,
    categories: Any = None,
    note: Any = "",
) -> ReviewDecision:
    """Validate a review of ``verdict`` and compute the reviewed label.

    ``confirm`` takes the model's answers and categories as the label (the model
    must have given complete answers). ``correct`` takes ``answers`` (fields left
    out keep the model's value) and ``categories`` (left out: the model's). The
    label must be complete: a request answer always; completion and response
    exactly when the event had an assistant response.
    """
    if action not in ("confirm", "correct"):
        raise ReviewError('action: "confirm" or "correct"')
    if not isinstance(note, str) or len(note) > MAX_NOTE_CHARS:
        raise ReviewError(f"note: text of at most {MAX_NOTE_CHARS} characters")
    if answers is not None and not isinstance(answers, Mapping):
        raise ReviewError("answers: an object with request, completion, response")
    unknown = set(answers or {}) - set(ANSWER_VALUES)
    if unknown:
        raise ReviewError(f"answers: unknown field(s) {', '.join(sorted(unknown))}")
    model_answers = {k: verdict.answers.get(k) for k in ANSWER_VALUES}
    model_tags = verdict.tags
    if action == "confirm":
        final = dict(model_answers)
        given = {k: _answer(k, v) for k, v in (answers or {}).items()}
        if any(final[k] != v for k, v in given.items()):
            raise ReviewError("confirm: the answers given differ from the model's; use correct")
        tags = model_tags if categories is None else _categories(categories)
        if categories is not None and set(tags) != set(model_tags):
            raise ReviewError("confirm: the categories given differ from the model's; use correct")
    else:
        final = {**model_answers, **{k: _answer(k, v) for k, v in (answers or {}).items()}}
        tags = model_tags if categories is None else _categories(categories)
    if final["request"] is None:
        raise ReviewError(f"{action}: the label needs a request answer")
    if verdict.has_response and (final["completion"] is None or final["response"] is None):
        raise ReviewError(f"{action}: the event has an assistant response; the label needs all three answers")
    if not verdict.has_response and (final["completion"] is not None or final["response"] is not None):
        raise ReviewError(f"{action}: the event has no assistant response; completion and response are null")
    agrees = final == model_answers and set(tags) == set(model_tags)
    return ReviewDecision(action, final, tuple(tags), note, agrees)


@dataclass(frozen=True, slots=True, kw_only=True)
class Review:
    review_id: str
    event_id: str
    run_id: str
    reviewer: str
    reviewer_role: str
    created_at: datetime
    action: str
    model: str
    model_answers: dict[str, str | None]
    answers: dict[str, str | None]
    model_categories: tuple[str, ...]
    categories: tuple[str, ...]
    agrees: bool
    note: str
    published: bool

    @classmethod
    def from_row(cls, row: Mapping[str, Any]) -> Review:
        return cls(
            review_id=str(row["review_id"]),
            event_id=row["event_id"],
            run_id=row["run_id"],
            reviewer=row["reviewer"],
            reviewer_role=row["reviewer_role"],
            created_at=row["created_at"],
            action=row["action"],
            model=row["model"],
            model_answers=row["model_answers"],
            answers=row["answers"],
            model_categories=tuple(row["model_categories"]),
            categories=tuple(row["categories"]),
            agrees=row["agrees"],
            note=row["note"],
            published=row.get("published", True),
        )

    def to_dict(self) -> dict[str, Any]:
        """The review as published on ``moderation.corrections`` (and in the JSON API)."""
        return {
            "schema_version": 1,
            "review_id": self.review_id,
            "event_id": self.event_id,
            "run_id": self.run_id or None,
            "action": self.action,
            "reviewer": self.reviewer,
            "reviewer_role": self.reviewer_role,
            "reviewed_at": self.created_at.timestamp(),
            "model": self.model,
            "model_answers": self.model_answers,
            "answers": self.answers,
            "model_categories": list(self.model_categories),
            "categories": list(self.categories),
            "agrees": self.agrees,
            "note": self.note,
        }


_COLUMNS = (
    "review_id",
    "event_id",
    "run_id",
    "reviewer",
    "reviewer_role",
    "created_at",
    "action",
    "model",
    "model_answers",
    "answers",
    "model_categories",
    "categories",
    "agrees",
    "note",
)
_REVIEW_COLUMNS = ", ".join(f"r.{c}" for c in _COLUMNS)


async def add_review(
    conn: psycopg.AsyncConnection[Any], verdict: QueueItem, user: User, decision: ReviewDecision
) -> Review:
    """Append a review of ``verdict`` by ``user`` (who must be allowed to review)."""
    if not Role(user.role).can_review:
        raise PermissionError(f"{user.username} is a {user.role}: viewers cannot review")
    review_id = uuid.uuid4()
    model_answers = {k: verdict.answers.get(k) for k in ANSWER_VALUES}
    async with conn.transaction():
        async with conn.cursor(row_factory=dict_row) as cur:
            await cur.execute(
                "INSERT INTO reviews (review_id, verdict_id, event_id, run_id, reviewer, reviewer_role, "  # noqa: S608
                "action, "
                "model, model_answers, answers, model_categories, categories, agrees, note) "
                "VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s) "
                f"RETURNING {', '.join(_COLUMNS)}",
                (
                    review_id,
                    verdict.id,
                    verdict.event_id,
                    verdict.run_id,
                    user.username,
                    user.role.value,
                    decision.action,
                    verdict.model,
                    Jsonb(model_answers),
                    Jsonb(decision.answers),
                    list(verdict.tags),
                    list(decision.categories),
                    decision.agrees,
                    decision.note,
                ),
            )
            row = await cur.fetchone()
        assert row is not None  # noqa: S101 - INSERT ... RETURNING returns its row
        await conn.execute("INSERT INTO corrections_outbox (review_id) VALUES (%s)", (review_id,))
        await conn.execute(
            "UPDATE verdicts SET reviewed_at = %s WHERE event_id = %s", (row["created_at"], verdict.event_id)
        )
    return Review.from_row({**row, "published": False})


async def list_reviews(conn: psycopg.AsyncConnection[Any], event_id: str) -> list[Review]:
    """The audit trail of one event, oldest first."""
    async with conn.cursor(row_factory=dict_row) as cur:
        await cur.execute(
            f"SELECT {_REVIEW_COLUMNS}, o.review_id IS NULL AS published FROM reviews r "  # noqa: S608 - fixed text
            "LEFT JOIN corrections_outbox o ON o.review_id = r.review_id "
            "WHERE r.event_id = %s ORDER BY r.created_at, r.review_id",
            (event_id,),
        )
        return [Review.from_row(r) for r in await cur.fetchall()]


async def pending_corrections(conn: psycopg.AsyncConnection[Any], limit: int) -> list[tuple[Review, str]]:
    """Reviews not yet acknowledged on Kafka, with their conversation id (the record key).

    Call inside a transaction: the rows stay locked (``SKIP LOCKED``) until it ends,
    so two consoles do not publish the same review at once."""
    async with conn.cursor(row_factory=dict_row) as cur:
        await cur.execute(
            f"SELECT {_REVIEW_COLUMNS}, v.conversation_id FROM corrections_outbox o "  # noqa: S608 - fixed text
            "JOIN reviews r ON r.review_id = o.review_id JOIN verdicts v ON v.id = r.verdict_id "
            "ORDER BY o.enqueued_at LIMIT %s FOR UPDATE OF o SKIP LOCKED",
            (limit,),
        )
        return [(Review.from_row(r), r["conversation_id"]) for r in await cur.fetchall()]


async def mark_published(conn: psycopg.AsyncConnection[Any], review_ids: Sequence[str]) -> None:
    if review_ids:
        await conn.execute(
            "DELETE FROM corrections_outbox WHERE review_id = ANY(%s)", ([uuid.UUID(r) for r in review_ids],)
        )
