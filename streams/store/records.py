"""Kafka records of ``moderation.archive`` / ``moderation.replay`` → rows of the ``verdicts`` table.

Pure: no database here. A record is the JSON of :meth:`streams.verdict.Verdict.to_dict`;
fields that newer producers add (``categories``, ``harms``, ``request_text``,
``response_text``, ``cached``, and on replays ``run_id`` and ``original``) are
stored when present, and the whole record is kept as JSONB whatever it holds.
A record that cannot be a verdict (not JSON, no event id, a replay without its
run id...) becomes a :class:`Reject`, which the sink stores too: nothing read
is dropped.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Protocol

import orjson

__all__ = [
    "ANSWER_FIELDS",
    "EVENT_ID_HEADER",
    "REPLAY_RUN_HEADER",
    "KafkaRecord",
    "Reject",
    "VerdictRow",
    "decode_record",
    "trace_id_from_headers",
]

EVENT_ID_HEADER = "guardstream-event-id"
REPLAY_RUN_HEADER = "guardstream-replay-run"
ANSWER_FIELDS = ("request", "completion", "response")
_TRACEPARENT = re.compile(r"^[0-9a-f]{2}-([0-9a-f]{32})-[0-9a-f]{16}-[0-9a-f]{2}$")
_MAX_ID = 256


class KafkaRecord(Protocol):
    """What the sink reads from aiokafka's ``ConsumerRecord``."""

    @property
    def topic(self) -> str: ...
    @property
    def partition(self) -> int: ...
    @property
    def offset(self) -> int: ...
    @property
    def value(self) -> bytes | None: ...
    @property
    def headers(self) -> Sequence[tuple[str, bytes]]: ...


@dataclass(frozen=True, slots=True, kw_only=True)
class VerdictRow:
    """One row of ``verdicts`` (column names are the field names)."""

    event_id: str
    run_id: str
    source: str  # "archive" or "replay"
    conversation_id: str
    user_id: str
    event_time: datetime
    moderated_at: datetime
    outcome: str
    status: str | None
    answer_request: str | None
    answer_completion: str | None
    answer_response: str | None
    has_response: bool
    model: str
    engine: str
    tags: tuple[str, ...]
    harms: tuple[str, ...]
    request_text: str | None
    response_text: str | None
    cached: bool | None
    finish_reason: str | None
    error: str | None
    attempts: int | None
    prompt_tokens: int | None
    completion_tokens: int | None
    queue_ms: float | None
    engine_ms: float | None
    total_ms: float | None
    trace_id: str | None
    original_model: str | None
    original_outcome: str | None
    original_answers: dict[str, Any] | None
    flipped: bool
    record: dict[str, Any]
    kafka_topic: str
    kafka_partition: int
    kafka_offset: int

    @property
    def key(self) -> tuple[str, str]:
        return (self.event_id, self.run_id)


@dataclass(frozen=True, slots=True, kw_only=True)
class Reject:
    kafka_topic: str
    kafka_partition: int
    kafka_offset: int
    reason: str
    value: bytes | None


class _Invalid(Exception):
    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def trace_id_from_headers(headers: Sequence[tuple[str, bytes]]) -> str | None:
    """The W3C trace id of a record's ``traceparent`` header (None when absent or malformed)."""
    for name, value in headers:
        if name == "traceparent" and value:
            match = _TRACEPARENT.match(value.decode("ascii", "replace").strip().lower())
            if match and match.group(1) != "0" * 32:
                return match.group(1)
    return None


def _header(headers: Sequence[tuple[str, bytes]], name: str) -> str | None:
    for key, value in headers:
        if key == name and value:
            return value.decode("utf-8", "replace")
    return None


def _text(data: dict[str, Any], key: str, *, required: bool = False) -> str | None:
    value = data.get(key)
    if value is None:
        if required:
            raise _Invalid(f"missing_{key}")
        return None
    if not isinstance(value, str):
        raise _Invalid(f"wrong_type_{key}")
    return value


def _number(data: dict[str, Any], key: str) -> float | None:
    value = data.get(key)
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value)


def _int(data: dict[str, Any], key: str) -> int | None:
    value = data.get(key)
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _time(data: dict[str, Any], key: str) -> datetime:
    value = _number(data, key)
    if value is None:
        raise _Invalid(f"missing_{key}")
    try:
        return datetime.fromtimestamp(value, UTC)
    except (OverflowError, OSError, ValueError) as exc:
        raise _Invalid(f"bad_{key}") from exc


def _answers(value: Any) -> dict[str, str | None]:
    answers = value if isinstance(value, dict) else {}
    return {f: (answers.get(f) if isinstance(answers.get(f), str) else None) for f in ANSWER_FIELDS}


def _strings(items: Any, key: str | None = None) -> tuple[str, ...]:
    """Unique non-empty strings of a list (of strings, or of objects' ``key``), in order."""
    if not isinstance(items, list):
        return ()
    out: dict[str, None] = {}
    for item in items:
        value = item.get(key) if key and isinstance(item, dict) else item
        if isinstance(value, str) and value.strip():
            out[value.strip()] = None
    return tuple(out)


def _row(record: KafkaRecord, data: dict[str, Any], *, replay: bool) -> VerdictRow:
    event_id = _text(data, "event_id", required=True)
    if not event_id or len(event_id) > _MAX_ID:
        raise _Invalid("bad_event_id")
    outcome = _text(data, "outcome", required=True)
    headers = list(record.headers or ())
    run_id = _text(data, "run_id") or _header(headers, REPLAY_RUN_HEADER) or ""
    if replay and not run_id:
        raise _Invalid("replay_without_run_id")
    answers = _answers(data.get("answers"))
    usage: dict[str, Any] = data["usage"] if isinstance(data.get("usage"), dict) else {}
    timings: dict[str, Any] = data["timings"] if isinstance(data.get("timings"), dict) else {}
    original: dict[str, Any] | None = data["original"] if isinstance(data.get("original"), dict) else None
    original_answers = _answers(original.get("answers")) if original else None
    original_outcome = _text(original, "outcome") if original else None
    flipped = bool(
        run_id
        and original is not None
        and (original_answers != answers or (original_outcome is not None and original_outcome != outcome))
    )
    cached = data.get("cached")
    return VerdictRow(
        event_id=event_id,
        run_id=run_id,
        source="replay" if run_id else "archive",
        conversation_id=_text(data, "conversation_id") or "",
        user_id=_text(data, "user_id") or "",
        event_time=_time(data, "event_timestamp"),
        moderated_at=_time(data, "moderated_at"),
        outcome=outcome or "",
        status=_text(data, "status"),
        answer_request=answers["request"],
        answer_completion=answers["completion"],
        answer_response=answers["response"],
        has_response=bool(data.get("has_response", False)),
        model=_text(data, "model") or "",
        engine=_text(data, "engine") or "",
        tags=_strings(data.get("categories"), "tag"),
        harms=_strings(data.get("harms")),
        request_text=_text(data, "request_text"),
        response_text=_text(data, "response_text"),
        cached=cached if isinstance(cached, bool) else None,
        finish_reason=_text(data, "finish_reason"),
        error=_text(data, "error"),
        attempts=_int(data, "attempts"),
        prompt_tokens=_int(usage, "prompt_tokens"),
        completion_tokens=_int(usage, "completion_tokens"),
        queue_ms=_number(timings, "queue_ms"),
        engine_ms=_number(timings, "engine_ms"),
        total_ms=_number(timings, "total_ms"),
        trace_id=trace_id_from_headers(headers),
        original_model=_text(original, "model") if original else None,
        original_outcome=original_outcome,
        original_answers=original_answers,
        flipped=flipped,
        record=data,
        kafka_topic=record.topic,
        kafka_partition=record.partition,
        kafka_offset=record.offset,
    )


def decode_record(record: KafkaRecord, *, replay: bool = False) -> VerdictRow | Reject:
    """The row for one archive (``replay=False``) or replay record, or why it cannot be one."""

    def reject(reason: str) -> Reject:
        return Reject(
            kafka_topic=record.topic,
            kafka_partition=record.partition,
            kafka_offset=record.offset,
            reason=reason,
            value=record.value,
        )

    if record.value is None:
        return reject("tombstone")
    try:
        data = orjson.loads(record.value)
    except orjson.JSONDecodeError:
        return reject("not_json")
    if not isinstance(data, dict):
        return reject("not_an_object")
    try:
        return _row(record, data, replay=replay)
    except _Invalid as exc:
        return reject(exc.reason)
