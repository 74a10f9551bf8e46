"""Raw GuardReasoner output → answers, per-task reasoning and a parse status. Never raises."""

from __future__ import annotations

from streams.parse.answers import Answers, Completion, Harm, parse_answers
from streams.parse.output import ParsedOutput, ParseReason, ParseStatus, parse
from streams.parse.reasoning import TaskReasoning, split_reasoning
from streams.parse.runaway import is_runaway

__all__ = [
    "Answers",
    "Completion",
    "Harm",
    "ParseReason",
    "ParseStatus",
    "ParsedOutput",
    "TaskReasoning",
    "is_runaway",
    "parse",
    "parse_answers",
    "split_reasoning",
]
