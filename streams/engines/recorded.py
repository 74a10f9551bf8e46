"""Plays back recorded GuardReasoner outputs by exact prompt string.

Reads every ``generated_predictions.jsonl`` under a folder (the format of
``shared/guardreasoner/predictions``: ``{"prompt", "label", "predict"}`` per
line). Two *different* recordings of the same prompt under one folder are
never resolved by picking one: asking for such a prompt fails with an error
that names both files (XSTest's two sets share prompts but come from separate
runs; point the engine at one dataset folder instead). Used for evaluation,
replays and tests; it runs no model.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass
from pathlib import Path

import orjson

from streams.engines.base import GenerateOptions, Generation, cut_at_stop
from streams.errors import ConfigError, EngineRejected

__all__ = ["RECORDING_FILE", "RecordedEngine", "Recordings", "load_recordings"]

RECORDING_FILE = "generated_predictions.jsonl"


@dataclass(frozen=True, slots=True)
class Recordings:
    outputs: dict[str, str]  # prompt -> output
    conflicts: dict[str, str]  # prompt -> description of the conflicting files


def load_recordings(root: Path) -> Recordings:
    """Every recording under ``root`` (a file or a folder)."""
    files = [root] if root.is_file() else sorted(root.rglob(RECORDING_FILE))
    if not files:
        raise ConfigError(f"no {RECORDING_FILE} found under {root}")
    table: dict[str, str] = {}
    origin: dict[str, str] = {}
    conflicts: dict[str, str] = {}
    for path in files:
        with path.open("rb") as fh:
            for lineno, line in enumerate(fh, 1):
                if not line.strip():
                    continue
                try:
                    record = orjson.loads(line)
                    prompt, output = record["prompt"], record["predict"]
                except (orjson.JSONDecodeError, KeyError, TypeError) as exc:
                    raise ConfigError(f"{path}:{lineno}: not a recording ({exc})") from exc
                where = f"{path}:{lineno}"
                if prompt in table and table[prompt] != output:
                    conflicts[prompt] = f"{origin[prompt]} and {where}"
                table[prompt] = output
                origin[prompt] = where
    return Recordings(table, conflicts)


def _continuation(outputs: dict[str, str], prompt: str) -> str | None:
    """For ``prompt`` = a recorded prompt + the start of its output (a generation continued after
    a stop string), the rest of that output: greedy decoding makes it exactly what the model
    would have generated. Recorded prompts end with a blank line, so only those cut points are
    tried."""
    cut = len(prompt)
    while (cut := prompt.rfind("\n\n", 0, cut)) >= 0:
        base = prompt[: cut + 2]
        output = outputs.get(base)
        if output is not None and output.startswith(prompt[cut + 2 :]):
            return output[len(prompt) - cut - 2 :]
    return None


class RecordedEngine:
    """Engine that answers with recorded real model outputs (unknown prompt → ``EngineRejected``)."""

    def __init__(self, root: Path, *, model: str | None = None) -> None:
        self._root = root
        self._model = model or f"recorded:{root.name}"
        self._table: Recordings | None = None

    @property
    def name(self) -> str:
        return f"recorded:{self._root}"

    @property
    def model(self) -> str:
        return self._model

    @property
    def context_tokens(self) -> int | None:
        return None  # recordings answer any prompt they hold, whatever its length

    async def count_tokens(self, text: str) -> int:
        raise NotImplementedError("recorded playback has no tokenizer")

    async def start(self) -> None:
        await self._loaded()

    async def _loaded(self) -> Recordings:
        if self._table is None:
            self._table = await asyncio.to_thread(load_recordings, self._root)
        return self._table

    async def generate(self, prompt: str, options: GenerateOptions) -> Generation:
        started = time.perf_counter()
        table = await self._loaded()
        if prompt in table.conflicts:
            raise EngineRejected(
                f"conflicting recordings of this prompt in {table.conflicts[prompt]};"
                " point the recorded engine at one dataset folder"
            )
        text = table.outputs.get(prompt)
        if text is None:
            text = _continuation(table.outputs, prompt)
        if text is None:
            raise EngineRejected(f"no recording for this prompt under {self._root}")
        text, stopped = cut_at_stop(text, options.stop) if options.stop else (text, None)
        return Generation(
            text=text,
            model=self._model,
            latency_s=time.perf_counter() - started,
            finish_reason="stop" if stopped else None,
            stop_reason=stopped,
        )

    async def ready(self) -> bool:
        return self._table is not None

    async def aclose(self) -> None:
        self._table = None
