"""Early exit through the real pipeline path, on recorded GuardReasoner outputs.

The recorded engine honours stop strings and continues a generation from
prompt + prefix exactly as greedy decoding would, so the pipeline's early-exit path
must reproduce, for every prompt-only recorded output, what the evaluation's replay
of the rule (``replay_early_exit``) measures.
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import orjson

from streams.engines.base import GenerateOptions, Generation
from streams.engines.recorded import RecordedEngine
from streams.event import ChatEvent
from streams.parse import parse, replay_early_exit
from streams.pipeline import ModerationPolicy, moderate_one
from streams.prompt import split_input

from ..conftest import RECORDED_DATASETS


class CountingRecorded(RecordedEngine):
    """The recorded engine, counting calls and what it was asked to stop at."""

    def __init__(self, root: Path) -> None:
        super().__init__(root)
        self.calls: list[tuple[str, ...]] = []

    async def generate(self, prompt: str, options: GenerateOptions) -> Generation:
        self.calls.append(options.stop)
        return await super().generate(prompt, options)


def _samples(shared: Path, model: str, dataset: str) -> list[tuple[str, str]]:
    path = shared / "predictions" / model / dataset / "generated_predictions.jsonl"
    rows = [orjson.loads(line) for line in path.read_bytes().split(b"\n") if line.strip()]
    return [(r["prompt"], r["predict"]) for r in rows]


def test_the_pipeline_exits_early_exactly_where_the_evaluation_says(shared: Path) -> None:
    policy = ModerationPolicy(early_exit=True)
    checked = exited = 0
    for model in ("1B", "3B"):
        for dataset in ("SimpleSafetyTests", "AegisSafetyTest", "HarmBenchPrompt"):
            assert dataset in RECORDED_DATASETS.values()
            engine = CountingRecorded(shared / "predictions" / model / dataset)

            async def run(
                samples: list[tuple[str, str]],
                engine: CountingRecorded = engine,
                where: str = f"{model}/{dataset}",
            ) -> None:
                nonlocal checked, exited
                for i, (prompt, full) in enumerate(samples):
                    request, response = split_input(prompt[prompt.index("Human user:\n") :])
                    assert response is None
                    engine.calls.clear()
                    event = ChatEvent(f"e{i}", "c", "u", time.time(), request, None)
                    verdict = await moderate_one(event, engine, policy)
                    replay = replay_early_exit(full)
                    expected = replay.answer or parse(full).answers.request
                    assert verdict.request is expected, (where, i)
                    assert verdict.early_exit is replay.exited
                    if replay.exited:
                        exited += 1
                        assert "Task 2" not in verdict.raw and full.startswith(verdict.raw)
                        assert len(engine.calls) == 1 and engine.calls[0]  # one call, with stop strings
                    else:
                        assert verdict.raw == full  # continued (or never stopped): the whole output
                    checked += 1

            asyncio.run(run(_samples(shared, model, dataset)))
    assert checked == 2 * (100 + 359 + 239)
    assert exited > checked * 0.75


def test_events_with_a_response_never_exit_early(shared: Path) -> None:
    engine = CountingRecorded(shared / "predictions" / "3B" / "XSTestReponseHarmful")
    prompt, _ = _samples(shared, "3B", "XSTestReponseHarmful")[0]
    request, response = split_input(prompt[prompt.index("Human user:\n") :])
    assert response is not None
    event = ChatEvent("x", "c", "u", time.time(), request, response)
    verdict = asyncio.run(moderate_one(event, engine, ModerationPolicy(early_exit=True)))
    assert engine.calls == [()]  # no stop strings asked for
    assert verdict.early_exit is False
