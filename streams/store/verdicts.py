"""Batched, idempotent writes of verdict rows (one statement per batch).

:func:`upsert_verdicts` inserts a whole batch through ``unnest`` of column
arrays with ``ON CONFLICT (event_id, run_id) DO NOTHING``: an at-least-once
duplicate, in the same batch or a later one, leaves the first stored copy as it
was (the topic's order decides which is first, so rebuilding the store from the
topic gives the same rows). The category tags of the rows actually inserted go
into ``verdict_tags`` in the same statement. A row the database refuses (say a
NUL character, which PostgreSQL text cannot hold) does not block its batch: the
batch is retried row by row and such rows become rejects.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, fields
from typing import Any

import orjson
import psycopg
from psycopg.types.json import Jsonb

from streams.store.records import Reject, VerdictRow

__all__ = ["WriteResult", "insert_rejects", "upsert_verdicts", "write_batch"]

logger = logging.getLogger(__name__)

# column -> SQL array type of its unnest parameter
_ARRAY_TYPES = {
    "event_time": "timestamptz[]",
    "moderated_at": "timestamptz[]",
    "has_response": "boolean[]",
    "tags": "jsonb[]",
    "harms": "jsonb[]",
    "cached": "boolean[]",
    "attempts": "integer[]",
    "prompt_tokens": "integer[]",
    "completion_tokens": "integer[]",
    "queue_ms": "float8[]",
    "engine_ms": "float8[]",
    "total_ms": "float8[]",
    "original_answers": "jsonb[]",
    "flipped": "boolean[]",
    "record": "jsonb[]",
    "kafka_partition": "integer[]",
    "kafka_offset": "bigint[]",
}
_COLUMNS = tuple(f.name for f in fields(VerdictRow))
_JSON_ARRAYS = {"tags", "harms"}  # text[] per row: passed as JSON (unnest cannot take ragged arrays)
# What the database says about the data itself (not about the connection): such a row is rejected.
_REFUSED = (psycopg.DataError, psycopg.IntegrityError)


def _select_expression(column: str) -> str:
    if column in _JSON_ARRAYS:
        return f"ARRAY(SELECT jsonb_array_elements_text(u.{column}))"
    return f"u.{column}"


_UPSERT = f"""
WITH input AS (
    SELECT * FROM unnest({", ".join(f"%({c})s::{_ARRAY_TYPES.get(c, 'text[]')}" for c in _COLUMNS)})
        AS u({", ".join(_COLUMNS)})
), inserted AS (
    INSERT INTO verdicts ({", ".join(_COLUMNS)}, reviewed_at)
    SELECT {", ".join(_select_expression(c) for c in _COLUMNS)},
           (SELECT max(r.created_at) FROM reviews r WHERE r.event_id = u.event_id)
    FROM input u
    ON CONFLICT (event_id, run_id) DO NOTHING
    RETURNING id, run_id, moderated_at, tags
), tagged AS (
    INSERT INTO verdict_tags (verdict_id, tag, live, moderated_at)
    SELECT i.id, t.tag, i.run_id = '', i.moderated_at FROM inserted i, unnest(i.tags) AS t(tag)
    ON CONFLICT DO NOTHING
    RETURNING 1
)
SELECT (SELECT count(*) FROM inserted), (SELECT count(*) FROM tagged)
"""  # noqa: S608 - made of the fixed column names above, no input

_REJECT = """
INSERT INTO store_rejects (kafka_topic, kafka_partition, kafka_offset, reason, value)
VALUES (%s, %s, %s, %s, %s)
ON CONFLICT (kafka_topic, kafka_partition, kafka_offset) DO NOTHING
"""


@dataclass(frozen=True, slots=True)
class WriteResult:
    received: int  # records handed in (verdict rows and rejects)
    inserted: int  # new verdict rows
    rejected: int  # records stored as rejects (unreadable, or refused by the database)

    @property
    def duplicates(self) -> int:
        return self.received - self.inserted - self.rejected


def _params(rows: Sequence[VerdictRow]) -> dict[str, list[Any]]:
    params: dict[str, list[Any]] = {c: [] for c in _COLUMNS}
    for row in rows:
        for column in _COLUMNS:
            value = getattr(row, column)
            if column in _JSON_ARRAYS:
                value = Jsonb(list(value))
            elif isinstance(value, dict):
                value = Jsonb(value)
            params[column].append(value)
    return params


async def upsert_verdicts(conn: psycopg.AsyncConnection[Any], rows: Sequence[VerdictRow]) -> int:
    """Insert the new rows of ``rows`` (duplicates are skipped); returns how many were new."""
    if not rows:
        return 0
    cursor = await conn.execute(_UPSERT, _params(rows))
    result = await cursor.fetchone()
    return int(result[0]) if result else 0


async def insert_rejects(conn: psycopg.AsyncConnection[Any], rejects: Sequence[Reject]) -> None:
    if rejects:
        async with conn.cursor() as cursor:
            await cursor.executemany(
                _REJECT,
                [(r.kafka_topic, r.kafka_partition, r.kafka_offset, r.reason, r.value) for r in rejects],
            )


async def write_batch(
    conn: psycopg.AsyncConnection[Any], rows: Sequence[VerdictRow], rejects: Sequence[Reject]
) -> WriteResult:
    """Store one batch in one transaction. Connection-level errors propagate (the caller retries the
    whole batch); a row the database refuses is stored as a reject instead."""
    received = len(rows) + len(rejects)
    rejects = list(rejects)
    try:
        async with conn.transaction():
            inserted = await upsert_verdicts(conn, rows)
            await insert_rejects(conn, rejects)
        return WriteResult(received, inserted, len(rejects))
    except _REFUSED as exc:
        logger.warning('batch refused, storing row by row rows=%d error="%s"', len(rows), exc)
    inserted = 0
    async with conn.transaction():
        for row in rows:
            try:
                async with conn.transaction():  # a savepoint per row
                    inserted += await upsert_verdicts(conn, [row])
            except _REFUSED as exc:
                reason = f"database_refused:{exc.sqlstate or type(exc).__name__}"
                rejects.append(
                    Reject(
                        kafka_topic=row.kafka_topic,
                        kafka_partition=row.kafka_partition,
                        kafka_offset=row.kafka_offset,
                        reason=reason,
                        value=orjson.dumps(row.record),
                    )
                )
        await insert_rejects(conn, rejects)
    return WriteResult(received, inserted, len(rejects))
