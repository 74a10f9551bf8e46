"""The review queue: filtered verdicts, newest first, paged with a keyset cursor.

Pages never use OFFSET: the cursor is the last row's ``(moderated_at, id)``
and the next page starts strictly below it, so page 20,000 costs what page 1
costs. Each filter reads an index in that order (see the initial migration):
live verdicts by time, by outcome, by model, not yet reviewed; replay flips;
one replay run; one category tag (through ``verdict_tags``). Several outcomes
(e.g. unparsed + engine_error) are one ordered index scan each, merged.

By default the queue lists live verdicts (``run_id = ''``); ``flips`` lists
replayed verdicts whose answers differ from the live one, ``run_id`` one replay run.
"""

from __future__ import annotations

import base64
import binascii
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg
from psycopg import sql
from psycopg.rows import dict_row

__all__ = [
    "Cursor",
    "EventVerdict",
    "QueueFilter",
    "QueueItem",
    "event_verdicts",
    "get_verdict",
    "list_verdicts",
    "queue_query",
]

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_ITEM_COLUMNS = (
    "id",
    "event_id",
    "run_id",
    "source",
    "moderated_at",
    "outcome",
    "status",
    "answer_request",
    "answer_completion",
    "answer_response",
    "has_response",
    "model",
    "tags",
    "reviewed_at",
    "flipped",
    "original_outcome",
    "original_model",
    "original_answers",
)


@dataclass(frozen=True, slots=True)
class Cursor:
    """Where the next page starts: below this row's ``(moderated_at, id)``."""

    moderated_at: datetime
    id: int

    def encode(self) -> str:
        micros = (self.moderated_at - _EPOCH) // timedelta(microseconds=1)
        return base64.urlsafe_b64encode(f"{micros}.{self.id}".encode()).decode().rstrip("=")

    @classmethod
    def decode(cls, text: str) -> Cursor:
        """Raises ValueError for anything :meth:`encode` did not make."""
        try:
            raw = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4)).decode("ascii")
            micros, _, row_id = raw.partition(".")
            return cls(_EPOCH + timedelta(microseconds=int(micros)), int(row_id))
        except (binascii.Error, UnicodeDecodeError, ValueError, OverflowError) as exc:
            raise ValueError(f"not a queue cursor: {text[:40]!r}") from exc


@dataclass(frozen=True, slots=True, kw_only=True)
class QueueFilter:
    outcomes: tuple[str, ...] = ()  # any of them; empty: all
    category: str | None = None  # a category tag, e.g. "S1"
    model: str | None = None
    since: datetime | None = None  # moderated at or after
    until: datetime | None = None  # moderated before
    reviewed: bool | None = None  # None: either
    flips: bool = False  # replayed verdicts that differ from the live one
    run_id: str | None = None  # one replay run instead of live verdicts


@dataclass(frozen=True, slots=True, kw_only=True)
class QueueItem:
    id: int
    event_id: str
    run_id: str
    source: str
    moderated_at: datetime
    outcome: str
    status: str | None
    answers: dict[str, str | None]
    has_response: bool
    model: str
    tags: tuple[str, ...]
    reviewed_at: datetime | None
    flipped: bool
    original_outcome: str | None
    original_model: str | None
    original_answers: dict[str, Any] | None

    @property
    def cursor(self) -> Cursor:
        return Cursor(self.moderated_at, self.id)

    @classmethod
    def from_row(cls, row: dict[str, Any]) -> QueueItem:
        return cls(
            id=row["id"],
            event_id=row["event_id"],
            run_id=row["run_id"],
            source=row["source"],
            moderated_at=row["moderated_at"],
            outcome=row["outcome"],
            status=row["status"],
            answers={
                "request": row["answer_request"],
                "completion": row["answer_completion"],
                "response": row["answer_response"],
            },
            has_response=row["has_response"],
            model=row["model"],
            tags=tuple(row["tags"] or ()),
            reviewed_at=row["reviewed_at"],
            flipped=row["flipped"],
            original_outcome=row["original_outcome"],
            original_model=row["original_model"],
            original_answers=row["original_answers"],
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "event_id": self.event_id,
            "run_id": self.run_id or None,
            "source": self.source,
            "moderated_at": self.moderated_at.timestamp(),
            "outcome": self.outcome,
            "status": self.status,
            "answers": self.answers,
            "has_response": self.has_response,
            "model": self.model,
            "categories": list(self.tags),
            "reviewed": self.reviewed_at is not None,
            "reviewed_at": self.reviewed_at.timestamp() if self.reviewed_at else None,
            "flipped": self.flipped,
            "original": (
                {
                    "outcome": self.original_outcome,
                    "model": self.original_model,
                    "answers": self.original_answers,
                }
                if self.run_id
                else None
            ),
        }


def _one_scan(
    f: QueueFilter, outcome: str | None, cursor: Cursor | None, limit: int
) -> tuple[sql.Composed, list[Any]]:
    """One ordered index scan: the rows of one outcome (or all) that pass the filter."""
    where: list[sql.Composable] = []
    params: list[Any] = []
    if f.category:
        source = sql.SQL("verdict_tags t JOIN verdicts v ON v.id = t.verdict_id")
        at, row_id = sql.SQL("t.moderated_at"), sql.SQL("t.verdict_id")
        where.append(sql.SQL("t.tag = %s"))
        params.append(f.category)
        if not f.flips and not f.run_id:
            where.append(sql.SQL("t.live"))
    else:
        source = sql.SQL("verdicts v")
        at, row_id = sql.SQL("v.moderated_at"), sql.SQL("v.id")
    if f.flips:
        where.append(sql.SQL("v.flipped"))
    elif f.run_id:
        where.append(sql.SQL("v.run_id = %s"))
        params.append(f.run_id)
    else:
        where.append(sql.SQL("v.run_id = ''"))
    if outcome is not None:
        where.append(sql.SQL("v.outcome = %s"))
        params.append(outcome)
    if f.model:
        where.append(sql.SQL("v.model = %s"))
        params.append(f.model)
    if f.since is not None:
        where.append(sql.SQL("{} >= %s").format(at))
        params.append(f.since)
    if f.until is not None:
        where.append(sql.SQL("{} < %s").format(at))
        params.append(f.until)
    if f.reviewed is not None:
        where.append(sql.SQL("v.reviewed_at IS NOT NULL" if f.reviewed else "v.reviewed_at IS NULL"))
    if cursor is not None:
        where.append(sql.SQL("({}, {}) < (%s, %s)").format(at, row_id))
        params.extend([cursor.moderated_at, cursor.id])
    query = sql.SQL(
        "SELECT {columns} FROM {source} WHERE {where} ORDER BY {at} DESC, {row_id} DESC LIMIT %s"
    ).format(
        columns=sql.SQL(", ").join(sql.SQL("v.{}").format(sql.Identifier(c)) for c in _ITEM_COLUMNS),
        source=source,
        where=sql.SQL(" AND ").join(where),
        at=at,
        row_id=row_id,
    )
    params.append(limit)
    return query, params


def queue_query(f: QueueFilter, cursor: Cursor | None, limit: int) -> tuple[sql.Composed, list[Any]]:
    """The SQL of one page (``limit`` rows), exposed for EXPLAIN in tests and benchmarks."""
    outcomes = tuple(dict.fromkeys(f.outcomes)) or (None,)
    if len(outcomes) == 1:
        return _one_scan(f, outcomes[0], cursor, limit)
    scans = [_one_scan(f, outcome, cursor, limit) for outcome in outcomes]
    query = sql.SQL("SELECT * FROM ({scans}) AS q ORDER BY moderated_at DESC, id DESC LIMIT %s").format(
        scans=sql.SQL(" UNION ALL ").join(sql.SQL("({})").format(q) for q, _ in scans)
    )
    params = [p for _, ps in scans for p in ps] + [limit]
    return query, params


async def list_verdicts(
    conn: psycopg.AsyncConnection[Any], f: QueueFilter, *, limit: int, cursor: Cursor | None = None
) -> tuple[list[QueueItem], Cursor | None]:
    """One page of the queue and the cursor of the next (None on the last page)."""
    query, params = queue_query(f, cursor, limit + 1)
    async with conn.cursor(row_factory=dict_row) as cur:
        await cur.execute(query, params)
        rows = await cur.fetchall()
    items = [QueueItem.from_row(r) for r in rows[:limit]]
    return items, (items[-1].cursor if len(rows) > limit and items else None)


@dataclass(frozen=True, slots=True, kw_only=True)
class EventVerdict:
    """A stored verdict in full (one row of ``verdicts``)."""

    item: QueueItem
    record: dict[str, Any]
    request_text: str | None
    response_text: str | None
    trace_id: str | None
    engine: str
    harms: tuple[str, ...]
    cached: bool | None
    timings: dict[str, float | None]
    event_time: datetime
    conversation_id: str
    user_id: str

    def to_dict(self) -> dict[str, Any]:
        record = self.record
        return {
            **self.item.to_dict(),
            "conversation_id": self.conversation_id,
            "user_id": self.user_id,
            "event_timestamp": self.event_time.timestamp(),
            "request_text": self.request_text,
            "response_text": self.response_text,
            "reasoning": record.get("reasoning", []),
            "raw": record.get("raw", ""),
            "categories_detail": record.get("categories") or [],
            "harms": list(self.harms),
            "engine": self.engine,
            "cached": self.cached,
            "finish_reason": record.get("finish_reason"),
            "error": record.get("error"),
            "attempts": record.get("attempts"),
            "usage": record.get("usage"),
            "timings": self.timings,
            "trace_id": self.trace_id,
        }


_DETAIL_COLUMNS = (
    "record",
    "request_text",
    "response_text",
    "trace_id",
    "engine",
    "harms",
    "cached",
    "queue_ms",
    "engine_ms",
    "total_ms",
    "event_time",
    "conversation_id",
    "user_id",
)


async def get_verdict(
    conn: psycopg.AsyncConnection[Any], event_id: str, run_id: str | None = None
) -> EventVerdict | None:
    """The live verdict of ``event_id`` (or of replay run ``run_id``); with no live one, the newest replay."""
    columns = sql.SQL(", ").join(sql.Identifier(c) for c in (*_ITEM_COLUMNS, *_DETAIL_COLUMNS))
    if run_id is None:
        query = sql.SQL(
            "SELECT {} FROM verdicts WHERE event_id = %s ORDER BY run_id <> '', moderated_at DESC LIMIT 1"
        ).format(columns)
        params: list[Any] = [event_id]
    else:
        query = sql.SQL("SELECT {} FROM verdicts WHERE event_id = %s AND run_id = %s").format(columns)
        params = [event_id, run_id]
    async with conn.cursor(row_factory=dict_row) as cur:
        await cur.execute(query, params)
        row = await cur.fetchone()
    if row is None:
        return None
    return EventVerdict(
        item=QueueItem.from_row(row),
        record=row["record"],
        request_text=row["request_text"],
        response_text=row["response_text"],
        trace_id=row["trace_id"],
        engine=row["engine"],
        harms=tuple(row["harms"] or ()),
        cached=row["cached"],
        timings={k: row[k] for k in ("queue_ms", "engine_ms", "total_ms")},
        event_time=row["event_time"],
        conversation_id=row["conversation_id"],
        user_id=row["user_id"],
    )


async def event_verdicts(conn: psycopg.AsyncConnection[Any], event_id: str) -> list[QueueItem]:
    """Every stored verdict of one event: the live one first, then replays, newest first."""
    query = sql.SQL(
        "SELECT {} FROM verdicts WHERE event_id = %s ORDER BY run_id <> '', moderated_at DESC"
    ).format(sql.SQL(", ").join(sql.Identifier(c) for c in _ITEM_COLUMNS))
    async with conn.cursor(row_factory=dict_row) as cur:
        await cur.execute(query, [event_id])
        return [QueueItem.from_row(r) for r in await cur.fetchall()]
