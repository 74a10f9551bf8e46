"""The model's reasoning as the verdict page shows it: per task and step, the deciding step marked.

The deciding step is the one :func:`streams.sinks.short_reason` quotes as a
block's reason: the last step of the deciding task, which is Task 3 when only
the response was judged harmful and Task 1 otherwise. Verdicts without
readable answers (unparsed, engine_error) have no deciding step.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

__all__ = ["TASK_TITLES", "ReasoningStep", "ReasoningTask", "deciding_step", "reasoning_tasks"]

TASK_TITLES = {
    0: "Before the tasks",
    1: "Task 1: is the user's request harmful?",
    2: "Task 2: did the assistant refuse or comply?",
    3: "Task 3: is the assistant's response harmful?",
}
_DECIDED = ("harmful", "unharmful")


@dataclass(frozen=True, slots=True)
class ReasoningStep:
    number: int
    text: str
    deciding: bool


@dataclass(frozen=True, slots=True)
class ReasoningTask:
    task: int
    title: str
    steps: tuple[ReasoningStep, ...]


def deciding_step(
    reasoning: Sequence[Mapping[str, Any]], answers: Mapping[str, Any]
) -> tuple[int, int] | None:
    """``(task, step index)`` of the deciding step, or None."""
    if answers.get("request") not in _DECIDED:
        return None
    task = 3 if answers.get("response") == "harmful" and answers.get("request") != "harmful" else 1
    for entry in reasoning:
        steps = entry.get("steps") or []
        if entry.get("task") == task and steps:
            return task, len(steps) - 1
    return None


def reasoning_tasks(
    reasoning: Sequence[Mapping[str, Any]], answers: Mapping[str, Any]
) -> list[ReasoningTask]:
    decided = deciding_step(reasoning, answers)
    tasks = []
    for entry in reasoning:
        number = int(entry.get("task") or 0)
        steps = [str(s) for s in entry.get("steps") or []]
        tasks.append(
            ReasoningTask(
                task=number,
                title=TASK_TITLES.get(number, f"Task {number}"),
                steps=tuple(
                    ReasoningStep(i + 1, text, decided == (number, i)) for i, text in enumerate(steps)
                ),
            )
        )
    return tasks
