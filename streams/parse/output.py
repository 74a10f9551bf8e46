"""``parse(text)``: the whole raw output → :class:`ParsedOutput`. Total: never raises.

An output is trusted (status ``ok``) only when all of this holds:

1. the generation finished normally: ``finish_reason`` is ``"stop"``, or
   unknown (``None``, e.g. recorded playback), and it was not cut at the token
   cap (``truncated``) and does not loop (:func:`~streams.parse.is_runaway`);
2. it has a live (unquoted) answer block, and its live blocks do not disagree;
3. the final block holds every answer the event needs, each valid.

Anything else is a non-``ok`` status with a machine-readable
:class:`ParseReason`; the pipeline then treats the output as unparsed and
applies the fail policy (a ``harmful`` answer still blocks).
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from streams.parse.answers import Answers, BlockScan, answers_of, scan
from streams.parse.reasoning import TaskReasoning, split_reasoning
from streams.parse.runaway import is_runaway

__all__ = ["FINISHED", "ParseReason", "ParseStatus", "ParsedOutput", "parse"]

FINISHED = frozenset({"stop"})  # finish reasons of a generation that ended by itself


class ParseStatus(StrEnum):
    """How far the output could be read. Published as is."""

    OK = "ok"  # finished normally; every answer the event needs was found, valid and undisputed
    PARTIAL = "partial"  # an answer block, but a needed answer is missing or invalid
    NO_ANSWER = "no_answer"  # no live answer block at all (none, or only quoted ones)
    RUNAWAY = "runaway"  # cut at the token cap, stopped by repetition detection, or looping
    EMPTY = "empty"  # nothing generated (kept for published records; empty text is no_answer)
    CONFLICT = "conflict"  # live answer blocks give one field different values
    INCOMPLETE = "incomplete"  # the generation ended otherwise (aborted, unknown finish reason)


class ParseReason(StrEnum):
    """Why an output is not ``ok``: one value per cause, most serious first."""

    TRUNCATED = "truncated"  # finish_reason "length", or truncated=True
    REPETITION = "repetition"  # finish_reason "repetition" (vLLM's repetition detection)
    ABORTED = "aborted"  # finish_reason "abort"
    UNKNOWN_FINISH = "unknown_finish_reason"  # any other finish reason than "stop"
    RUNAWAY = "runaway"  # the text loops (periodic tail, repeated lines)
    EMPTY = "empty"  # nothing generated
    CONFLICTING_ANSWERS = "conflicting_answers"  # a field has different values in the live blocks
    QUOTED_BLOCK = "quoted_block"  # the only answer blocks are quoted ('> Answers:'): echoes, not answers
    NO_BLOCK = "no_block"  # no answer block at all
    INVALID_ANSWER = "invalid_answer"  # a needed answer has a value that is not allowed
    MISSING_ANSWER = "missing_answer"  # a needed answer is absent from the final block


_STATUS = {
    ParseReason.TRUNCATED: ParseStatus.RUNAWAY,
    ParseReason.REPETITION: ParseStatus.RUNAWAY,
    ParseReason.RUNAWAY: ParseStatus.RUNAWAY,
    ParseReason.ABORTED: ParseStatus.INCOMPLETE,
    ParseReason.UNKNOWN_FINISH: ParseStatus.INCOMPLETE,
    ParseReason.EMPTY: ParseStatus.NO_ANSWER,
    ParseReason.CONFLICTING_ANSWERS: ParseStatus.CONFLICT,
    ParseReason.QUOTED_BLOCK: ParseStatus.NO_ANSWER,
    ParseReason.NO_BLOCK: ParseStatus.NO_ANSWER,
    ParseReason.INVALID_ANSWER: ParseStatus.PARTIAL,
    ParseReason.MISSING_ANSWER: ParseStatus.PARTIAL,
}
_CUT = frozenset({ParseReason.TRUNCATED, ParseReason.REPETITION, ParseReason.RUNAWAY})


@dataclass(frozen=True, slots=True)
class ParsedOutput:
    """One parsed output.

    ``unfinished`` says why the generation did not end normally (None: it
    did); ``quoted_blocks`` counts answer-block headers found quoted, which
    are never read.
    """

    answers: Answers
    reasoning: tuple[TaskReasoning, ...]
    unfinished: ParseReason | None = None
    quoted_blocks: int = 0
    finish_reason: str | None = None
    empty: bool = False

    @property
    def runaway(self) -> bool:
        """Cut at the token cap, stopped for repetition, or looping."""
        return self.unfinished in _CUT

    def reason(self, *, has_response: bool) -> ParseReason | None:
        """Why the output is not ``ok`` for this event; None when it is.

        A prompt-only event needs the request answer; an exchange needs all three.
        """
        if self.unfinished is not None:
            return self.unfinished
        if self.empty:
            return ParseReason.EMPTY
        a = self.answers
        if a.conflicts:
            return ParseReason.CONFLICTING_ANSWERS
        if not a.found_block:
            return ParseReason.QUOTED_BLOCK if self.quoted_blocks else ParseReason.NO_BLOCK
        needed = ("request", "completion", "response") if has_response else ("request",)
        values = {"request": a.request, "completion": a.completion, "response": a.response}
        missing = [name for name in needed if values[name] is None]
        if not missing:
            return None
        invalid = {name for name, _ in a.invalid}
        return ParseReason.INVALID_ANSWER if invalid & set(missing) else ParseReason.MISSING_ANSWER

    def status(self, *, has_response: bool) -> ParseStatus:
        """Status for an event with (or without) an assistant response (see :meth:`reason`)."""
        reason = self.reason(has_response=has_response)
        return ParseStatus.OK if reason is None else _STATUS[reason]


def _unfinished(text: str, truncated: bool, finish_reason: str | None) -> ParseReason | None:
    reason = (finish_reason or "").strip().lower()
    if reason == "repetition":
        return ParseReason.REPETITION
    if truncated or reason == "length":
        return ParseReason.TRUNCATED
    if reason == "abort":
        return ParseReason.ABORTED
    if reason and reason not in FINISHED:
        return ParseReason.UNKNOWN_FINISH
    return ParseReason.RUNAWAY if is_runaway(text) else None


def _reasoning_text(found: BlockScan) -> str:
    """The output before its final block, without the lines of earlier (per-task) blocks."""
    if not found.blocks:
        return "".join(found.lines)
    earlier = {i for block in found.blocks[:-1] for i in range(block.start, block.end)}
    return "".join(line for i, line in enumerate(found.lines[: found.blocks[-1].start]) if i not in earlier)


def parse(text: str, *, truncated: bool = False, finish_reason: str | None = None) -> ParsedOutput:
    """Parse one raw output.

    ``truncated``: the engine stopped at its token cap. ``finish_reason``: the
    engine's (``"stop"``, ``"length"``, ``"repetition"``, ``"abort"``...; None
    when unknown, as in recorded playback).
    """
    unfinished = _unfinished(text, truncated, finish_reason)
    if not text.strip():
        return ParsedOutput(Answers(), (), unfinished, finish_reason=finish_reason, empty=True)
    found = scan(text)
    return ParsedOutput(
        answers=answers_of(found),
        reasoning=split_reasoning(_reasoning_text(found)),
        unfinished=unfinished,
        quoted_blocks=found.quoted_headers,
        finish_reason=finish_reason,
    )
