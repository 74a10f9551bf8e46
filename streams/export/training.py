"""Reviewed verdicts → GuardReasoner training records (pure: the database part is in ``cli``).

An event's label is its newest review's answers (request, completion,
response). Its candidate outputs are every stored verdict of the event: the
live one and each replay. A candidate **agrees** with the label when its output
was read cleanly (parse status ``ok``) and its three answers equal the label;
its reasoning is the model's own text leading to those answers.

- **SFT** (R-SFT, ``{instruction, input, output}``): ``instruction`` is the
  prompt template's instruction, ``input`` the template's input part built from
  the chat text (exactly what the model was given), ``output`` the raw text of an
  agreeing output: the reviewed one when it agrees (a confirmation), otherwise
  another recorded or replayed output of the same event (a correction).
- **DPO** (hard samples, ``{instruction, input, chosen, rejected}``): for a
  correction that changed an answer, ``rejected`` is the corrected output and
  ``chosen`` an agreeing one.

Nothing is invented: an event without retained chat text, or whose label no
stored output supports, is returned as a :class:`Skipped` with the reason.
Categories do not enter the records (GuardReasoner's output has none).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Any

from streams.prompt import INSTRUCTION, build_prompt

__all__ = [
    "Candidate",
    "ExportFormat",
    "LabelledEvent",
    "SkipReason",
    "Skipped",
    "agreeing_outputs",
    "dpo_record",
    "prompt_input",
    "sft_record",
    "training_record",
]

_FIELDS = ("request", "completion", "response")


class ExportFormat(StrEnum):
    SFT = "sft"
    DPO = "dpo"


class SkipReason(StrEnum):
    NO_CHAT_TEXT = "no_chat_text"  # the archive record did not retain the request (or response) text
    NO_AGREEING_OUTPUT = "no_agreeing_output"  # no stored output gives the reviewed answers
    NOT_A_CORRECTION = "not_a_correction"  # DPO: a confirmation has no rejected output
    ANSWERS_UNCHANGED = "answers_unchanged"  # DPO: the correction changed only categories
    NO_REJECTED_OUTPUT = "no_rejected_output"  # DPO: the corrected verdict has no model output


@dataclass(frozen=True, slots=True, kw_only=True)
class Candidate:
    """One stored verdict of the event (an output the model produced)."""

    verdict_id: int
    run_id: str
    model: str
    status: str | None
    answers: dict[str, str | None]
    raw: str
    has_response: bool
    request_text: str | None
    response_text: str | None
    moderated_at: datetime


@dataclass(frozen=True, slots=True, kw_only=True)
class LabelledEvent:
    event_id: str
    review_id: str
    action: str  # "confirm" or "correct"
    label: dict[str, str | None]
    reviewed_verdict_id: int
    candidates: Sequence[Candidate]

    @property
    def reviewed(self) -> Candidate | None:
        return next((c for c in self.candidates if c.verdict_id == self.reviewed_verdict_id), None)


@dataclass(frozen=True, slots=True)
class Skipped:
    event_id: str
    review_id: str
    reason: SkipReason

    def to_dict(self) -> dict[str, str]:
        return {"event_id": self.event_id, "review_id": self.review_id, "reason": self.reason.value}


def prompt_input(request: str, response: str | None) -> str:
    """The template's INPUT part for this exchange (``build_prompt`` = INSTRUCTION + "\\n" + input)."""
    prompt = build_prompt(request, response)
    head = INSTRUCTION + "\n"
    if not prompt.startswith(head):  # pragma: no cover - the template's own contract
        raise RuntimeError("the prompt template no longer starts with its instruction")
    return prompt[len(head) :]


def _chat(event: LabelledEvent) -> tuple[str, str | None] | None:
    for c in sorted(event.candidates, key=lambda c: (c.run_id != "", c.moderated_at)):
        if c.request_text is None:
            continue
        if c.has_response and c.response_text is None:
            continue
        return c.request_text, c.response_text if c.has_response else None
    return None


def _agrees(candidate: Candidate, label: dict[str, str | None]) -> bool:
    return (
        candidate.status == "ok"
        and bool(candidate.raw.strip())
        and all(candidate.answers.get(f) == label.get(f) for f in _FIELDS)
    )


def agreeing_outputs(event: LabelledEvent) -> list[Candidate]:
    """Outputs that support the label: the reviewed one first, then live, then replays by time."""
    return sorted(
        (c for c in event.candidates if _agrees(c, event.label)),
        key=lambda c: (
            c.verdict_id != event.reviewed_verdict_id,
            c.run_id != "",
            c.moderated_at,
            c.verdict_id,
        ),
    )


def sft_record(event: LabelledEvent) -> dict[str, str] | Skipped:
    chat = _chat(event)
    if chat is None:
        return Skipped(event.event_id, event.review_id, SkipReason.NO_CHAT_TEXT)
    supporting = agreeing_outputs(event)
    if not supporting:
        return Skipped(event.event_id, event.review_id, SkipReason.NO_AGREEING_OUTPUT)
    return {"instruction": INSTRUCTION, "input": prompt_input(*chat), "output": supporting[0].raw}


def dpo_record(event: LabelledEvent) -> dict[str, str] | Skipped:
    def skip(reason: SkipReason) -> Skipped:
        return Skipped(event.event_id, event.review_id, reason)

    if event.action != "correct":
        return skip(SkipReason.NOT_A_CORRECTION)
    reviewed = event.reviewed
    if reviewed is None or not reviewed.raw.strip():
        return skip(SkipReason.NO_REJECTED_OUTPUT)
    if all(reviewed.answers.get(f) == event.label.get(f) for f in _FIELDS):
        return skip(SkipReason.ANSWERS_UNCHANGED)
    chat = _chat(event)
    if chat is None:
        return skip(SkipReason.NO_CHAT_TEXT)
    supporting = agreeing_outputs(event)
    if not supporting:
        return skip(SkipReason.NO_AGREEING_OUTPUT)
    return {
        "instruction": INSTRUCTION,
        "input": prompt_input(*chat),
        "chosen": supporting[0].raw,
        "rejected": reviewed.raw,
    }


def training_record(event: LabelledEvent, fmt: ExportFormat) -> dict[str, Any] | Skipped:
    return sft_record(event) if fmt is ExportFormat.SFT else dpo_record(event)
