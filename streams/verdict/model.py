"""The verdict record (published in full on ``moderation.archive``)."""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

import orjson

from streams.categorize.model import HarmCategory, Severity
from streams.parse import Completion, Harm, ParseStatus, TaskReasoning

__all__ = ["SCHEMA_VERSION", "Action", "Outcome", "Timings", "Verdict"]

SCHEMA_VERSION = 1


class Action(StrEnum):
    BLOCK = "block"
    ALERT = "alert"
    ARCHIVE = "archive"


class Outcome(StrEnum):
    """The verdict in one word (what dashboards count)."""

    HARMFUL = "harmful"  # request or response judged harmful
    UNHARMFUL = "unharmful"
    UNPARSED = "unparsed"  # the model answered, but not readably (see ``status``)
    ENGINE_ERROR = "engine_error"  # no model output after the retry budget


@dataclass(frozen=True, slots=True, kw_only=True)
class Timings:
    """Milliseconds. ``queue``: event timestamp → picked up; ``engine``: generation incl. retries."""

    queue_ms: float = 0.0
    engine_ms: float = 0.0
    total_ms: float = 0.0


@dataclass(frozen=True, slots=True, kw_only=True)
class Verdict:
    event_id: str
    conversation_id: str
    user_id: str
    event_timestamp: float
    outcome: Outcome
    status: ParseStatus | None  # None when the engine produced nothing
    parse_reason: str | None = None  # why status is not ok (streams.parse.ParseReason), else None
    request: Harm | None = None
    completion: Completion | None = None
    response: Harm | None = None
    has_response: bool = False
    reasoning: tuple[TaskReasoning, ...] = ()
    raw: str = ""
    invalid: tuple[tuple[str, str], ...] = ()
    model: str = ""
    engine: str = ""
    prompt_tokens: int | None = None
    completion_tokens: int | None = None
    finish_reason: str | None = None
    error: str | None = None
    attempts: int = 1
    timings: Timings = field(default_factory=Timings)
    moderated_at: float = 0.0
    actions: tuple[Action, ...] = ()
    # Long input moderated in pieces: one summary per window (spans, outcome, answers);
    # the verdict's answers are the worst over the windows, its reasoning the deciding window's.
    windows: tuple[dict[str, Any], ...] = ()
    cached: bool = False  # the model output came from the verdict cache (no engine call)
    early_exit: bool = False  # the request answer came from Task 1's conclusion; Tasks 2-3 not generated
    # Set by ``streams.categorize`` on harmful verdicts (empty / None otherwise).
    categories: tuple[HarmCategory, ...] = ()
    harms: tuple[str, ...] = ()
    severity: Severity | None = None
    # The chat texts that were moderated (archived in full; other records see only
    # their digests unless GUARDSTREAM_PRIVACY_INCLUDE_TEXT, see streams.sinks.disclosure).
    request_text: str = ""
    response_text: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "schema_version": SCHEMA_VERSION,
            "event_id": self.event_id,
            "conversation_id": self.conversation_id,
            "user_id": self.user_id,
            "event_timestamp": self.event_timestamp,
            "outcome": self.outcome.value,
            "status": self.status.value if self.status else None,
            "parse_reason": self.parse_reason,
            "answers": {
                "request": _v(self.request),
                "completion": _v(self.completion),
                "response": _v(self.response),
            },
            "has_response": self.has_response,
            "actions": [a.value for a in self.actions],
            "reasoning": [r.to_dict() for r in self.reasoning],
            "raw": self.raw,
            "invalid": [{"field": f, "value": v} for f, v in self.invalid],
            "model": self.model,
            "engine": self.engine,
            "usage": {"prompt_tokens": self.prompt_tokens, "completion_tokens": self.completion_tokens},
            "finish_reason": self.finish_reason,
            "error": self.error,
            "attempts": self.attempts,
            "timings": {
                "queue_ms": self.timings.queue_ms,
                "engine_ms": self.timings.engine_ms,
                "total_ms": self.timings.total_ms,
            },
            "moderated_at": self.moderated_at,
            "windows": list(self.windows),
            "cached": self.cached,
            "early_exit": self.early_exit,
            "categories": [c.to_dict() for c in self.categories],
            "harms": list(self.harms),
            "severity": self.severity.label if self.severity is not None else None,
            "request_text": self.request_text,
            "response_text": self.response_text,
        }

    def to_json(self) -> bytes:
        return orjson.dumps(self.to_dict())

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Verdict:
        answers = data["answers"]
        usage = data.get("usage") or {}
        timings = data.get("timings") or {}
        return cls(
            event_id=data["event_id"],
            conversation_id=data["conversation_id"],
            user_id=data["user_id"],
            event_timestamp=data["event_timestamp"],
            outcome=Outcome(data["outcome"]),
            status=ParseStatus(data["status"]) if data.get("status") else None,
            parse_reason=data.get("parse_reason"),
            request=Harm(answers["request"]) if answers.get("request") else None,
            completion=Completion(answers["completion"]) if answers.get("completion") else None,
            response=Harm(answers["response"]) if answers.get("response") else None,
            has_response=data.get("has_response", False),
            reasoning=tuple(TaskReasoning(r["task"], tuple(r["steps"])) for r in data.get("reasoning", [])),
            raw=data.get("raw", ""),
            invalid=tuple((i["field"], i["value"]) for i in data.get("invalid", [])),
            model=data.get("model", ""),
            engine=data.get("engine", ""),
            prompt_tokens=usage.get("prompt_tokens"),
            completion_tokens=usage.get("completion_tokens"),
            finish_reason=data.get("finish_reason"),
            error=data.get("error"),
            attempts=data.get("attempts", 1),
            timings=Timings(**timings),
            moderated_at=data.get("moderated_at", 0.0),
            actions=tuple(Action(a) for a in data.get("actions", [])),
            windows=tuple(data.get("windows") or ()),
            cached=bool(data.get("cached", False)),
            early_exit=bool(data.get("early_exit", False)),
            categories=tuple(HarmCategory.from_dict(c) for c in data.get("categories", [])),
            harms=tuple(data.get("harms", [])),
            severity=Severity.parse(data["severity"]) if data.get("severity") else None,
            request_text=data.get("request_text") or "",
            response_text=data.get("response_text"),
        )

    @classmethod
    def from_json(cls, raw: bytes) -> Verdict:
        return cls.from_dict(orjson.loads(raw))


def _v(value: StrEnum | None) -> str | None:
    return value.value if value is not None else None
