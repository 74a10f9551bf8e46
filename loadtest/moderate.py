"""µs per event of the worker's own moderation work, in-process, no broker.

The throughput benchmark's events (prompt-only, ~340 bytes), each taken through what the
worker does between consuming and producing it: decode and validate the event
(``decode_event``), moderate it (``moderate_one``: prompt, verdict cache key and lookup, the
``fake:instant`` engine, early exit's stop-string cut and conclusion rule, parse, verdict,
categories) and build its output records (``Outputs.for_verdict``: the archive record as JSON).
The service's default settings (cache, early exit and findings on). Every event is distinct, so
every cache lookup misses, as in the throughput benchmark.

Baseline, same events, same run: decode the JSON and encode it again, the JSON work any
pass-through does. Each of ``rounds`` rounds times every stage over all events (a fresh cache
each round); the report gives the median round's µs per event per stage, and the ratio
baseline ÷ moderation (how many times cheaper a bare pass-through is).
"""

from __future__ import annotations

import asyncio
import statistics
import time
import uuid
from typing import Any

import orjson

from loadtest.common import event_payloads, machine
from streams.config import EngineConfig, Settings
from streams.engines import create_engine
from streams.event import decode_event
from streams.pipeline import ModerationPolicy, moderate_one
from streams.sinks import Outputs

__all__ = ["run"]


async def _round(values: list[bytes], settings: Settings, policy: ModerationPolicy) -> dict[str, float]:
    engine = create_engine(EngineConfig(spec="fake:instant"), settings.cache)
    outputs = Outputs.from_settings(settings)
    clock = time.perf_counter
    spent = {"decode": 0.0, "moderate": 0.0, "records": 0.0}
    early = records = 0
    for value in values:
        started = clock()
        event = decode_event(value)
        decoded = clock()
        verdict = await moderate_one(event, engine, policy)
        moderated = clock()
        records += len(outputs.for_verdict(verdict))
        early += verdict.early_exit
        spent["decode"] += decoded - started
        spent["moderate"] += moderated - decoded
        spent["records"] += clock() - moderated
    per_event = {stage: seconds / len(values) * 1e6 for stage, seconds in spent.items()}
    return {**per_event, "early_exit_share": early / len(values), "records_per_event": records / len(values)}


def _baseline(values: list[bytes]) -> float:
    started = time.perf_counter()
    for value in values:
        orjson.dumps(orjson.loads(value))
    return (time.perf_counter() - started) / len(values) * 1e6


def run(events: int = 20_000, rounds: int = 3) -> dict[str, Any]:
    settings = Settings()
    policy = ModerationPolicy.from_settings(settings)
    values = [value for _, value in event_payloads(events, run=uuid.uuid4().hex[:6])]
    stages: list[dict[str, float]] = []
    baselines: list[float] = []
    for _ in range(rounds):  # interleaved, so drift on a shared machine hits both sides alike
        stages.append(asyncio.run(_round(values, settings, policy)))
        baselines.append(_baseline(values))
    timed = ("decode", "moderate", "records")
    totals = [sum(s[stage] for stage in timed) for s in stages]
    middle = stages[totals.index(statistics.median_low(totals))]
    baseline = statistics.median(baselines)
    total = sum(middle[stage] for stage in timed)
    return {
        "events": events,
        "rounds": rounds,
        "us_per_event": round(total, 1),
        "stages_us": {stage: round(middle[stage], 1) for stage in timed},
        "baseline_us_per_event": round(baseline, 2),
        "ratio": round(baseline / total, 4),
        "events_per_s_one_core": round(1e6 / total),
        "early_exit": policy.early_exit,
        "early_exit_share": middle["early_exit_share"],  # verdicts read from Task 1's conclusion
        "records_per_event": middle["records_per_event"],
        "cache": settings.cache.enabled,
        **machine(),
    }
