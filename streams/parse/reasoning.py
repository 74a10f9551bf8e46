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

_TASK = re.compile(r"(?im)^[ \t]*#{1,3}[ \t]*task[ \t]*(\d{1,3})\b[^\n]*$")
_STEP = re.compile(r"(?im)^[ \t]*#{1,4}[ \t]*reasoning[ \t]+step[ \t]*\d{1,3}[ \t]*:?[ \t]*")


@dataclass(frozen=True, slots=True)
class TaskReasoning:
    task: int
    steps: tuple[str, ...]

    def to_dict(self) -> dict[str, object]:
        return {"task": self.task, "steps": list(self.steps)}


def _steps(body: str) -> tuple[str, ...]:
    parts = _STEP.split(body)
    steps = [p.strip() for p in parts]
    return tuple(s for s in steps if s)


def split_reasoning(text: str) -> tuple[TaskReasoning, ...]:
    """``text`` is the output before its answer block."""
    heads = list(_TASK.finditer(text))
    out: list[TaskReasoning] = []
    preamble = text[: heads[0].start()] if heads else text
    if steps := _steps(preamble):
        out.append(TaskReasoning(0, steps))
    ends = [h.start() for h in heads[1:]] + [len(text)]
    for head, end in zip(heads, ends, strict=False):
        out.append(TaskReasoning(int(head.group(1)), _steps(text[head.end() : end])))
    return tuple(out)
