"""Run an evaluation offline: benchmark samples → engine → verdicts → F1."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from typing import TypeVar

from streams.config import Settings
from streams.engines import create_engine
from streams.engines.base import GuardEngine
from streams.errors import StreamsError
from streams.eval.benchmark import Benchmark
from streams.eval.score import EvalReport, score
from streams.pipeline import ModerationPolicy, moderate_one
from streams.prompt import build_prompt
from streams.verdict import Outcome, Verdict

__all__ = ["EvalError", "check_prompts", "check_verdicts", "evaluate", "evaluate_with_engine", "with_engine"]

T = TypeVar("T")


class EvalError(StreamsError):
    """The evaluation cannot produce a complete, honest score."""


def check_prompts(benchmark: Benchmark) -> None:
    """The prompt builder must reproduce every sample's prompt exactly."""
    for sample in benchmark.samples:
        if build_prompt(sample.request, sample.response) != sample.prompt:
            raise EvalError(
                f"{benchmark.name}: sample {sample.index}: built prompt differs from the benchmark's"
            )


def check_verdicts(benchmarks: Sequence[Benchmark], verdicts: dict[str, Verdict]) -> None:
    """Every sample has a verdict, and none is an engine error (e.g. no recording): never skip."""
    failed: list[str] = []
    for benchmark in benchmarks:
        for sample in benchmark.samples:
            event_id = sample.to_event(benchmark.name, timestamp=0).id
            verdict = verdicts.get(event_id)
            if verdict is None:
                failed.append(f"{event_id}: no verdict")
            elif verdict.outcome is Outcome.ENGINE_ERROR:
                failed.append(f"{event_id}: {verdict.error}")
    if failed:
        shown = "\n  ".join(failed[:5])
        raise EvalError(f"{len(failed)} sample(s) have no model output:\n  {shown}")


async def with_engine(settings: Settings, run: Callable[[GuardEngine, ModerationPolicy], Awaitable[T]]) -> T:
    """Build the engine from ``settings``, ``run`` with it and the settings' policy, close it."""
    engine = create_engine(settings.engine)
    await engine.start()
    try:
        return await run(engine, ModerationPolicy.from_settings(settings))
    finally:
        await engine.aclose()


async def evaluate_with_engine(benchmarks: Sequence[Benchmark], settings: Settings) -> EvalReport:
    """Build the engine from ``settings``, evaluate, close it."""
    return await with_engine(settings, lambda engine, policy: evaluate(benchmarks, engine, policy))


async def evaluate(
    benchmarks: Sequence[Benchmark], engine: GuardEngine, policy: ModerationPolicy, *, concurrency: int = 256
) -> EvalReport:
    for benchmark in benchmarks:
        check_prompts(benchmark)
    gate = asyncio.Semaphore(concurrency)

    async def one(benchmark: Benchmark, index: int) -> Verdict:
        async with gate:
            return await moderate_one(benchmark.samples[index].to_event(benchmark.name), engine, policy)

    tasks = [one(b, i) for b in benchmarks for i in range(len(b.samples))]
    verdicts = {v.event_id: v for v in await asyncio.gather(*tasks)}
    check_verdicts(benchmarks, verdicts)
    return score(benchmarks, verdicts)
