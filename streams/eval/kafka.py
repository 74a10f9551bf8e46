"""Evaluation through Kafka: samples → ``chat.events`` → a real worker → ``moderation.archive`` → F1.

Uses its own uniquely named topics and consumer group, an embedded broker
unless ``bootstrap`` is given, and the worker as a child process, exactly as
deployed. Must print the same report as the offline evaluation.
"""

from __future__ import annotations

import asyncio
import tempfile
import time
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path

from streams.app import READY_LOG
from streams.broker import EmbeddedBroker
from streams.client import read_topic, send_lines
from streams.config import Settings
from streams.eval.benchmark import Benchmark
from streams.eval.run import EvalError, check_prompts, check_verdicts
from streams.eval.score import EvalReport, score
from streams.event import encode_event
from streams.process import WorkerProcess
from streams.topics import ensure_topics
from streams.verdict import Verdict

__all__ = ["evaluate_through_kafka"]

_START_TIMEOUT_S = 120.0


async def _collect(settings: Settings, expected: set[str], timeout_s: float) -> dict[str, Verdict]:
    verdicts: dict[str, Verdict] = {}

    async def read() -> None:
        async for record in read_topic(settings.kafka, settings.topics.archive):
            verdict = Verdict.from_json(record.value)
            verdicts[verdict.event_id] = verdict  # at-least-once: duplicates collapse by event id
            if expected <= verdicts.keys():
                return

    try:
        await asyncio.wait_for(read(), timeout_s)
    except TimeoutError:
        missing = len(expected - verdicts.keys())
        raise EvalError(
            f"{missing} verdict(s) did not arrive on {settings.topics.archive} in {timeout_s:g}s"
        ) from None
    return verdicts


def evaluate_through_kafka(
    benchmarks: Sequence[Benchmark],
    settings: Settings,
    *,
    bootstrap: str | None = None,
    timeout_s: float = 600.0,
) -> EvalReport:
    for benchmark in benchmarks:
        check_prompts(benchmark)
    broker = None if bootstrap else EmbeddedBroker().start()
    try:
        settings = settings.isolated("eval")
        settings = replace(settings, kafka=replace(settings.kafka, bootstrap=bootstrap or broker.bootstrap))  # type: ignore[union-attr]
        if broker is not None:
            settings = settings.for_embedded_broker()
        now = time.time()
        lines = [encode_event(s.to_event(b.name, timestamp=now)) for b in benchmarks for s in b.samples]
        expected = {s.to_event(b.name, timestamp=0).id for b in benchmarks for s in b.samples}
        asyncio.run(ensure_topics(settings.kafka, settings.topics))
        with tempfile.TemporaryDirectory(prefix="guardstream-eval-") as tmp:
            worker = WorkerProcess(settings, log_path=Path(tmp) / "worker.log").start()
            try:
                worker.wait_for_log(READY_LOG, _START_TIMEOUT_S)
                asyncio.run(send_lines(settings.kafka, settings.topics.events, lines))
                verdicts = asyncio.run(_collect(settings, expected, timeout_s))
            finally:
                worker.stop()
    finally:
        if broker is not None:
            broker.stop()
    check_verdicts(benchmarks, verdicts)
    return score(benchmarks, verdicts)
