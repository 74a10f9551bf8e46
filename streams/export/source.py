"""Reads reviewed events and their candidate outputs from the store (sync psycopg, streamed)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import psycopg
from psycopg.rows import dict_row

from streams.export.training import Candidate, LabelledEvent

__all__ = ["labelled_events"]

# The newest review of each event is its label; oldest-reviewed events first.
_LABELS = """
SELECT * FROM (
    SELECT DISTINCT ON (event_id) review_id, event_id, verdict_id, action, answers, created_at
    FROM reviews ORDER BY event_id, created_at DESC, review_id DESC
) AS latest ORDER BY created_at, review_id
"""
_CANDIDATES = """
SELECT id, event_id, run_id, model, status, answer_request, answer_completion, answer_response,
       record->>'raw' AS raw, has_response, request_text, response_text, moderated_at
FROM verdicts WHERE event_id = ANY(%s)
"""


def _candidate(row: dict[str, Any]) -> Candidate:
    return Candidate(
        verdict_id=row["id"],
        run_id=row["run_id"],
        model=row["model"],
        status=row["status"],
        answers={
            "request": row["answer_request"],
            "completion": row["answer_completion"],
            "response": row["answer_response"],
        },
        raw=row["raw"] or "",
        has_response=row["has_response"],
        request_text=row["request_text"],
        response_text=row["response_text"],
        moderated_at=row["moderated_at"],
    )


def labelled_events(conn: psycopg.Connection[Any], *, batch: int = 500) -> Iterator[LabelledEvent]:
    """Every reviewed event with its label and all its stored outputs, ``batch`` events per query."""
    with conn.cursor(name="export_labels", row_factory=dict_row) as labels:
        labels.itersize = batch
        labels.execute(_LABELS)
        while True:
            rows = labels.fetchmany(batch)
            if not rows:
                return
            with conn.cursor(row_factory=dict_row) as cur:
                cur.execute(_CANDIDATES, ([r["event_id"] for r in rows],))
                by_event: dict[str, list[Candidate]] = {}
                for row in cur.fetchall():
                    by_event.setdefault(row["event_id"], []).append(_candidate(row))
            for r in rows:
                yield LabelledEvent(
                    event_id=r["event_id"],
                    review_id=str(r["review_id"]),
                    action=r["action"],
                    label={k: r["answers"].get(k) for k in ("request", "completion", "response")},
                    reviewed_verdict_id=r["verdict_id"],
                    candidates=by_event.get(r["event_id"], []),
                )
