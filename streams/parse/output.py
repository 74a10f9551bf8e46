"""``parse(text)``: the whole raw output → :class:`ParsedOutput`. Total: never raises."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from streams.parse.answers import _BLOCK_START, _FIELD, Answers, last_block, parse_answers
from streams.parse.reasoning import TaskReasoning, split_reasoning
from streams.parse.runaway import is_runaway

__all__ = ["ParseStatus", "ParsedOutput", "parse"]


class ParseStatus(StrEnum):
    """How far the output could be read. Published as is."""

    OK = "ok"  # every answer the event needs was found and valid
    PARTIAL = "partial"  # an answer block, but a needed answer is missing or invalid
    NO_ANSWER = "no_answer"  # no answer block at all
    RUNAWAY = "runaway"  # the model looped (or hit the token cap) without a usable block
    EMPTY = "empty"  # nothing generated


@dataclass(frozen=True, slots=True)
class ParsedOutput:
    answers: Answers
    reasoning: tuple[TaskReasoning, ...]
    runaway: bool

    def status(self, *, has_response: bool) -> ParseStatus:
        """Status for an event with (or without) an assistant response.

        A prompt-only event needs the request answer; an exchange needs all three.
        """
        a = self.answers
        if not a.found_block:
            return ParseStatus.RUNAWAY if self.runaway else ParseStatus.NO_ANSWER
        needed = [a.request] + ([a.completion, a.response] if has_response else [])
        if all(v is not None for v in needed):
            return ParseStatus.OK
        return ParseStatus.RUNAWAY if self.runaway else ParseStatus.PARTIAL


def parse(text: str, *, truncated: bool = False) -> ParsedOutput:
    """Parse one raw output. ``truncated``: the engine stopped at its token cap."""
    if not text or not text.strip():
        return ParsedOutput(Answers(), (), runaway=truncated)
    found = last_block(text)
    body = text[: found[0]] if found else text
    if found and _BLOCK_START.search(body):  # earlier (per-task) answer blocks are answers, not reasoning
        body = _FIELD.sub("", _BLOCK_START.sub("", body))
    return ParsedOutput(
        answers=parse_answers(text, found),
        reasoning=split_reasoning(body),
        runaway=truncated or is_runaway(text),
    )
