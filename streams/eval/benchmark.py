"""Benchmark files (``shared/guardreasoner/benchmark/*.json``) → samples with gold labels.

Each file is a JSON list of ``{"instruction", "input", "output"}``. ``output``
is the gold label: a bare word, or (SafeRLHF, BeaverTails) an answer block in
which only ``Response:`` is set. The task of a file comes from the label kind:
refusal/compliance → ``refusal``; harmful/unharmful → ``response_harm`` when
the samples carry an assistant response, else ``prompt_harm``.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path

import orjson

from streams.errors import ConfigError
from streams.event import ChatEvent
from streams.parse import parse_answers
from streams.prompt import INSTRUCTION, split_input

__all__ = ["Benchmark", "Sample", "Task", "load_benchmark"]


class Task(StrEnum):
    PROMPT_HARM = "prompt_harm"
    RESPONSE_HARM = "response_harm"
    REFUSAL = "refusal"


_POSITIVE = {"harmful": True, "unharmful": False, "refusal": True, "compliance": False}


@dataclass(frozen=True, slots=True)
class Sample:
    index: int
    request: str
    response: str | None
    prompt: str  # instruction + "\n" + input, exactly as in the file
    positive: bool  # gold label is the positive class (harmful / refusal)

    def to_event(self, benchmark: str, *, timestamp: float | None = None) -> ChatEvent:
        return ChatEvent(
            id=f"{benchmark}-{self.index}",
            conversation_id=f"{benchmark}-{self.index}",
            user_id="eval",
            timestamp=time.time() if timestamp is None else timestamp,
            request=self.request,
            response=self.response,
        )


@dataclass(frozen=True, slots=True)
class Benchmark:
    name: str  # the file stem
    task: Task
    samples: tuple[Sample, ...]


def _gold(output: str) -> tuple[str, str]:
    """(field kind, label word) of one gold output."""
    word = output.strip().lower()
    if word in _POSITIVE:
        return ("completion" if word in {"refusal", "compliance"} else "harm"), word
    answers = parse_answers(output)
    for name, value in (("response", answers.response), ("completion", answers.completion)):
        if value is not None:
            return name, value.value
    if answers.request is not None:
        return "request", answers.request.value
    raise ValueError(f"unreadable gold label {output[:60]!r}")


def load_benchmark(path: Path) -> Benchmark:
    try:
        rows = orjson.loads(path.read_bytes())
    except (OSError, orjson.JSONDecodeError) as exc:
        raise ConfigError(f"cannot read benchmark {path}: {exc}") from exc
    if not isinstance(rows, list) or not rows:
        raise ConfigError(f"{path}: expected a non-empty JSON list")
    samples: list[Sample] = []
    kinds: set[str] = set()
    with_response = 0
    for i, row in enumerate(rows):
        try:
            if row["instruction"] != INSTRUCTION:
                raise ValueError("instruction differs from GuardReasoner's")
            request, response = split_input(row["input"])
            kind, word = _gold(row["output"])
        except (KeyError, TypeError, ValueError) as exc:
            raise ConfigError(f"{path}: sample {i}: {exc}") from exc
        kinds.add(kind)
        with_response += response is not None
        samples.append(
            Sample(i, request, response, row["instruction"] + "\n" + row["input"], _POSITIVE[word])
        )
    if kinds == {"completion"}:
        task = Task.REFUSAL
    elif kinds == {"response"} or (kinds == {"harm"} and with_response > len(samples) // 2):
        task = Task.RESPONSE_HARM
    elif kinds <= {"harm", "request"}:
        task = Task.PROMPT_HARM
    else:
        raise ConfigError(f"{path}: mixed gold label kinds {sorted(kinds)}")
    return Benchmark(path.stem, task, tuple(samples))
