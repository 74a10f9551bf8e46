"""Split the reasoning into tasks (``# Task N``) and steps (``## Reasoning Step K``).

The model mostly writes ``# Task 1`` … ``# Task 3``, each with ``## Reasoning
Step K`` sections (the title on its own line or followed by ``:``). Text before
the first task heading (some outputs start by continuing the assistant's
reply) is kept as task ``0``; a task without step headings is one step.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

__all__ = ["TaskReasoning", "split_reasoning"]

# One pass over the headings: "# Task N ..." (group 1 = N) or "## Reasoning Step K[:]".
_HEADING = re.compile(
    r"^[ \t]*#{1,4}[ \t]*(?:task[ \t]*(\d{1,3})\b[^\n]*|reasoning[ \t]+step[ \t]*\d{1,3}[ \t]*:?[ \t]*)",
    re.IGNORECASE | re.MULTILINE,
)


@dataclass(frozen=True, slots=True)
class TaskReasoning:
    task: int
    steps: tuple[str, ...]

    def to_dict(self) -> dict[str, object]:
        return {"task": self.task, "steps": list(self.steps)}


def split_reasoning(text: str) -> tuple[TaskReasoning, ...]:
    """``text`` is the output before its answer block."""
    out: list[TaskReasoning] = []
    task = 0
    steps: list[str] = []
    cursor = 0
    for match in _HEADING.finditer(text):
        chunk = text[cursor : match.start()].strip()
        if chunk:
            steps.append(chunk)
        cursor = match.end()
        if match.group(1) is not None:  # a task heading closes the previous task
            if steps or task:
                out.append(TaskReasoning(task, tuple(steps)))
            task, steps = int(match.group(1)), []
    chunk = text[cursor:].strip()
    if chunk:
        steps.append(chunk)
    if steps or task:
        out.append(TaskReasoning(task, tuple(steps)))
    return tuple(out)
