"""The JSON published on each output topic (schemas in ``schemas/``; contract-tested).

Every record carries ``event_id``: delivery is at-least-once, so consumers
dedupe on it. Records are keyed by ``conversation_id`` (DLQ: the input's key).
Block and alert records show the chat only through a
:class:`~streams.sinks.disclosure.Disclosure` (privacy by default: digests and
redacted reasoning); the archive record is the full verdict, chat text included.
SIEM findings (ECS, OCSF) are built in :mod:`streams.sinks.findings`.
"""

from __future__ import annotations

import base64
import hashlib
import time
from typing import Any

from streams.config import DLQ_KEY_BYTES
from streams.errors import ContractError
from streams.parse import Harm
from streams.sinks.disclosure import Disclosure, short_reason
from streams.verdict import SCHEMA_VERSION, Outcome, Verdict

__all__ = [
    "alert_category",
    "alert_record",
    "archive_record",
    "block_record",
    "dlq_record",
    "replay_record",
    "short_reason",
]

_MESSAGE_CHARS = 1000


def _targets(verdict: Verdict) -> list[str]:
    targets = []
    if verdict.request is Harm.HARMFUL:
        targets.append("request")
    if verdict.response is Harm.HARMFUL:
        targets.append("response")
    if not targets:  # fail-closed on an unreadable verdict: hide what was checked
        targets = ["request", "response"] if verdict.has_response else ["request"]
    return targets


def _base(verdict: Verdict) -> dict[str, Any]:
    return {
        "schema_version": SCHEMA_VERSION,
        "event_id": verdict.event_id,
        "conversation_id": verdict.conversation_id,
        "user_id": verdict.user_id,
    }


def block_record(verdict: Verdict, disclosure: Disclosure | None = None) -> dict[str, Any]:
    shown = disclosure or Disclosure(verdict)
    return {
        **_base(verdict),
        "action": "block",
        "targets": _targets(verdict),
        "outcome": verdict.outcome.value,
        "reason": shown.reason,
        "model": verdict.model,
        "moderated_at": verdict.moderated_at,
        "text": shown.digests(),
        **shown.texts(),
    }


def alert_category(verdict: Verdict) -> str:
    """``harmful_request``, ``harmful_response`` (the response decides if both), or ``guard_failure``."""
    if verdict.outcome is not Outcome.HARMFUL:
        return "guard_failure"
    return "harmful_response" if verdict.response is Harm.HARMFUL else "harmful_request"


def alert_record(verdict: Verdict, disclosure: Disclosure | None = None) -> dict[str, Any]:
    shown = disclosure or Disclosure(verdict)
    if verdict.outcome is Outcome.HARMFUL:
        severity = verdict.severity.label if verdict.severity is not None else "high"
    else:
        severity = "medium"
    record = {
        **_base(verdict),
        "category": alert_category(verdict),
        "severity": severity,
        "outcome": verdict.outcome.value,
        "status": verdict.status.value if verdict.status else None,
        "answers": verdict.to_dict()["answers"],
        "categories": shown.categories(),
        "harms": shown.harms(),
        "reason": shown.reason,
        "model": verdict.model,
        "event_timestamp": verdict.event_timestamp,
        "moderated_at": verdict.moderated_at,
        "text": shown.digests(),
        **shown.texts(),
    }
    reasoning = shown.reasoning()
    if reasoning is not None:
        record["reasoning"] = reasoning
    return record


def archive_record(verdict: Verdict) -> dict[str, Any]:
    return verdict.to_dict()


def replay_record(verdict: Verdict, *, run_id: str, original: dict[str, Any] | None) -> dict[str, Any]:
    """A re-moderated event (topic ``moderation.replay``): the full verdict, the run, and the
    original verdict's model, outcome and answers when the archive has one."""
    return {**verdict.to_dict(), "run_id": run_id, "original": original}


def _payload(data: bytes | None, limit: int) -> dict[str, Any]:
    """Bytes as base64, at most ``limit`` of them, with the full size and SHA-256."""
    if data is None:
        return {"b64": None, "size": None, "sha256": None, "truncated": False}
    return {
        "b64": base64.b64encode(data[:limit]).decode(),
        "size": len(data),
        "sha256": hashlib.sha256(data).hexdigest(),
        "truncated": len(data) > limit,
    }


def dlq_record(
    error: ContractError,
    *,
    key: bytes | None,
    value: bytes | None,
    topic: str,
    partition: int,
    offset: int,
    timestamp: float | None,
    max_value_bytes: int = 64 * 1024,
    event_id: str | None = None,
) -> dict[str, Any]:
    """Bad input and where it came from. The original bytes are kept in base64 up to
    ``max_value_bytes`` (key: 4 KiB), always with their full size and SHA-256, so the
    record stays publishable whatever the input's size."""
    key_part = _payload(key, DLQ_KEY_BYTES)
    value_part = _payload(value, max_value_bytes)
    return {
        "schema_version": SCHEMA_VERSION,
        "event_id": event_id,
        "error": {"reason": error.reason, "message": error.message[:_MESSAGE_CHARS]},
        "source": {"topic": topic, "partition": partition, "offset": offset, "timestamp": timestamp},
        "key_b64": key_part["b64"],
        "value_b64": value_part["b64"],
        "key": {k: key_part[k] for k in ("size", "sha256", "truncated")},
        "value": {k: value_part[k] for k in ("size", "sha256", "truncated")},
        "failed_at": time.time(),
    }
