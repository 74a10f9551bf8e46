"""The chat event and its decoder.

Wire format: one JSON object per Kafka record value (UTF-8), keyed by
``conversation_id`` so that a conversation stays ordered on one partition::

    {"id": "evt-1", "conversation_id": "c-9", "user_id": "u-3",
     "timestamp": 1764280000.25, "request": "...", "response": "..." | null}

``timestamp`` is epoch seconds (a number) or an ISO-8601 string. Unknown fields
are ignored, so producers can add their own. Anything else that breaks the
contract raises :class:`~streams.errors.ContractError`, which the agent sends
to the dead-letter topic.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import orjson

from streams.errors import ContractError

__all__ = ["ChatEvent", "EventLimits", "decode_event", "encode_event", "peek_event_id"]

_MAX_ID_CHARS = 256


@dataclass(frozen=True, slots=True)
class ChatEvent:
    """One moderation request: a user's message and, optionally, the assistant's reply."""

    id: str
    conversation_id: str
    user_id: str
    timestamp: float
    request: str
    response: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "conversation_id": self.conversation_id,
            "user_id": self.user_id,
            "timestamp": self.timestamp,
            "request": self.request,
            "response": self.response,
        }


@dataclass(frozen=True, slots=True, kw_only=True)
class EventLimits:
    max_event_bytes: int = 256 * 1024
    max_text_chars: int = 32_000


def encode_event(event: ChatEvent) -> bytes:
    return orjson.dumps(event.to_dict())


def decode_event(raw: bytes | None, limits: EventLimits | None = None) -> ChatEvent:
    """Decode and validate one record value. Never returns a partially valid event."""
    limits = limits or EventLimits()
    if raw is None:
        raise ContractError("empty", "record has no value (tombstone)")
    if len(raw) > limits.max_event_bytes:
        raise ContractError("oversize", f"record is {len(raw)} bytes, limit {limits.max_event_bytes}")
    data = _load(raw)
    if not isinstance(data, dict):
        raise ContractError("wrong_type", f"value must be a JSON object, got {type(data).__name__}")
    event = ChatEvent(
        id=_identifier(data, "id"),
        conversation_id=_identifier(data, "conversation_id"),
        user_id=_identifier(data, "user_id"),
        timestamp=_timestamp(data),
        request=_text(data, "request", limits, required=True) or "",
        response=_text(data, "response", limits, required=False),
    )
    return event


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def _load(raw: bytes) -> Any:
    """JSON of a record value. orjson first (fast); what it refuses but RFC 8259 allows
    (integers beyond 64 bits, deep nesting up to Python's limit) gets a second reading by the
    standard library, which must then agree that it is strict JSON."""
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ContractError("invalid_utf8", f"value is not UTF-8: {exc}") from exc
    try:
        return orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        first = exc
    try:
        return json.loads(text, parse_constant=_reject_constant)
    except (ValueError, RecursionError):
        raise ContractError("not_json", f"value is not JSON: {first}") from first


def peek_event_id(raw: bytes | None) -> str | None:
    """The ``id`` of a record that failed validation, when it has a readable one (for the DLQ)."""
    if raw is None or len(raw) > 4 * 1024 * 1024:
        return None
    try:
        data = orjson.loads(raw)
    except orjson.JSONDecodeError:
        return None
    value = data.get("id") if isinstance(data, dict) else None
    if isinstance(value, int) and not isinstance(value, bool):
        value = str(value)
    if isinstance(value, str) and 0 < len(value) <= _MAX_ID_CHARS and value.isprintable():
        return value
    return None


def _field(data: dict[str, Any], name: str) -> Any:
    if name not in data:
        raise ContractError("missing_field", f"field {name!r} is required")
    return data[name]


def _identifier(data: dict[str, Any], name: str) -> str:
    value = _field(data, name)
    if isinstance(value, int) and not isinstance(value, bool):
        value = str(value)
    if not isinstance(value, str):
        raise ContractError("wrong_type", f"field {name!r} must be a string, got {type(value).__name__}")
    if not value.strip():
        raise ContractError("empty_field", f"field {name!r} is empty")
    if len(value) > _MAX_ID_CHARS or not value.isprintable() or not _encodable(value):
        raise ContractError(
            "bad_identifier", f"field {name!r} must be printable, at most {_MAX_ID_CHARS} chars"
        )
    return value


def _timestamp(data: dict[str, Any]) -> float:
    value = _field(data, "timestamp")
    if isinstance(value, bool):
        raise ContractError("wrong_type", "field 'timestamp' must be a number or ISO-8601 string")
    if isinstance(value, int | float):
        ts = float(value)
    elif isinstance(value, str):
        try:
            parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError as exc:
            raise ContractError("bad_timestamp", f"timestamp {value[:64]!r} is not ISO-8601") from exc
        if parsed.tzinfo is None:
            raise ContractError("bad_timestamp", "timestamp string must carry a time zone")
        ts = parsed.timestamp()
    else:
        raise ContractError("wrong_type", "field 'timestamp' must be a number or ISO-8601 string")
    if not 0 <= ts < 1e11:  # also rejects NaN and infinities
        raise ContractError("bad_timestamp", f"timestamp {ts!r} is out of range (epoch seconds)")
    return ts


def _text(data: dict[str, Any], name: str, limits: EventLimits, *, required: bool) -> str | None:
    if required:
        value = _field(data, name)
    else:
        value = data.get(name)
        if value is None:
            return None
    if not isinstance(value, str):
        raise ContractError("wrong_type", f"field {name!r} must be a string, got {type(value).__name__}")
    if required and not value.strip():
        raise ContractError("empty_field", f"field {name!r} is empty")
    if len(value) > limits.max_text_chars:
        raise ContractError(
            "oversize", f"field {name!r} has {len(value)} chars, limit {limits.max_text_chars}"
        )
    if "\x00" in value:
        raise ContractError("bad_text", f"field {name!r} contains NUL characters")
    if not _encodable(value):
        raise ContractError("bad_text", f"field {name!r} contains unpaired surrogates (not Unicode text)")
    return value


def _encodable(value: str) -> bool:
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True
