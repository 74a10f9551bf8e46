"""Raw GuardReasoner output → answers, per-task reasoning and a parse status. Never raises."""

from __future__ import annotations

from streams.parse.answers import Answers, Completion, Harm, parse_answers
from streams.parse.early import (
    STOP_STRINGS,
    EarlyExit,
    continuation_prompt,
    early_answer,
    early_exit_applies,
    early_prefix,
    join_continuation,
    replay_early_exit,
)
from streams.parse.output import ParsedOutput, ParseReason, ParseStatus, parse
from streams.parse.reasoning import TaskReasoning, split_reasoning
from streams.parse.runaway import is_runaway

__all__ = [
    "STOP_STRINGS",
    "Answers",
    "Completion",
    "EarlyExit",
    "Harm",
    "ParseReason",
    "ParseStatus",
    "ParsedOutput",
    "TaskReasoning",
    "continuation_prompt",
    "early_answer",
    "early_exit_applies",
    "early_prefix",
    "is_runaway",
    "join_continuation",
    "parse",
    "parse_answers",
    "replay_early_exit",
    "split_reasoning",
]
