"""What ECS and OCSF findings share: identity, replay context, title, severity, times, trace id."""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from streams import __version__
from streams.categorize import Severity
from streams.parse import Completion, Harm
from streams.sinks.records import alert_category
from streams.verdict import Verdict

__all__ = [
    "GUARD_REFERENCE",
    "HAZARD_FRAMEWORK",
    "PRODUCT",
    "PRODUCT_VERSION",
    "UNCLASSIFIED",
    "Replay",
    "category_labels",
    "detection",
    "epoch_ms",
    "finding_uid",
    "iso_time",
    "provider",
    "severity_of",
    "title",
    "trace_id_from",
]

PRODUCT = "GuardStream"
PRODUCT_VERSION = __version__
GUARD_REFERENCE = "https://arxiv.org/abs/2501.18492"  # GuardReasoner
HAZARD_FRAMEWORK = "MLCommons AI hazard taxonomy (Llama Guard 3 categories)"
UNCLASSIFIED = "unclassified"  # the type of a harmful verdict no taxonomy tag fits
# Engine kinds as GenAI providers: ``openai:URL`` is a vLLM server behind its OpenAI-compatible API.
_PROVIDERS = {"vllm": "vllm", "openai": "vllm", "transformers": "transformers"}
_TRACEPARENT = re.compile(rb"^[0-9a-f]{2}-([0-9a-f]{32})-[0-9a-f]{16}-[0-9a-f]{2}")


@dataclass(frozen=True, slots=True)
class Replay:
    """A verdict from a re-moderation run (a replay), and what the original verdict said.

    A replay's finding gets its own uid (``<event id>:replay:<run id>``, the same for
    at-least-once duplicates of that run) and links to the original finding, whose uid is
    the event id.
    """

    run_id: str
    original_model: str | None = None
    original_outcome: str | None = None
    original_answers: Mapping[str, Any] = field(default_factory=dict)

    @classmethod
    def from_record(cls, data: Mapping[str, Any]) -> Replay | None:
        """The replay context of a published verdict dict (``run_id``, ``original``), or None."""
        run_id = data.get("run_id")
        if not run_id:
            return None
        original = data.get("original") or {}
        return cls(
            run_id=str(run_id),
            original_model=original.get("model"),
            original_outcome=original.get("outcome"),
            original_answers=dict(original.get("answers") or {}),
        )

    def to_dict(self, event_id: str) -> dict[str, Any]:
        """The replay context as findings carry it; ``original.finding_uid`` is the uid the
        original verdict's finding has (when that verdict was harmful)."""
        return {
            "run_id": self.run_id,
            "original": {
                "finding_uid": finding_uid(event_id),
                "model": self.original_model,
                "outcome": self.original_outcome,
                "answers": dict(self.original_answers),
            },
        }


def finding_uid(event_id: str, replay: Replay | None = None) -> str:
    """Stable per event (and per replay run): duplicates of one verdict share it."""
    return event_id if replay is None else f"{event_id}:replay:{replay.run_id}"


def detection(verdict: Verdict) -> str:
    """``harmful_request`` or ``harmful_response`` (findings are made for harmful verdicts only)."""
    return alert_category(verdict)


def severity_of(verdict: Verdict) -> Severity:
    """The verdict's severity; HIGH for a harmful verdict that was never categorised."""
    return verdict.severity if verdict.severity is not None else Severity.HIGH


def category_labels(verdict: Verdict) -> list[str]:
    """``"S9 Indiscriminate Weapons"`` per category, or ``["unclassified"]``."""
    return [f"{c.tag} {c.name}" for c in verdict.categories] or [UNCLASSIFIED]


def provider(verdict: Verdict) -> str | None:
    """What served the guard model (``vllm``, ``transformers``; playback and fakes as named)."""
    kind = verdict.engine.split(":", 1)[0] if verdict.engine else ""
    return _PROVIDERS.get(kind, kind) or None


def title(verdict: Verdict) -> str:
    if verdict.response is Harm.HARMFUL:
        what = "Harmful response"
    elif verdict.completion is Completion.REFUSAL:
        what = "Harmful request (refused)"
    else:
        what = "Harmful request"
    names = ", ".join(f"{c.tag} {c.name}" for c in verdict.categories) or "no taxonomy category"
    return f"{what}: {names}"


def epoch_ms(seconds: float) -> int:
    return round(seconds * 1000)


def iso_time(seconds: float) -> str:
    """ISO-8601 UTC with milliseconds, e.g. ``2026-11-27T10:00:00.123Z``."""
    stamp = datetime.fromtimestamp(epoch_ms(seconds) / 1000, UTC)
    return stamp.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def trace_id_from(headers: Sequence[tuple[str, bytes]]) -> str | None:
    """The trace id of a W3C ``traceparent`` header (untrusted input: strictly parsed)."""
    for key, value in headers:
        if key.lower() == "traceparent":
            match = _TRACEPARENT.match(value)
            if match and match.group(1) != b"0" * 32:
                return match.group(1).decode()
    return None
