"""Tokens per verdict with and without early exit: ``python -m loadtest early-exit --json``.

Prompt-only events through the real pipeline (``moderate_one``) and the in-process vLLM
engine with the project's fixture model, twice: early exit off, then on. Greedy decoding
makes the two runs comparable event by event. The fixture model is a format fixture,
not GuardReasoner: its conclusions are phrased like GuardReasoner's only when its
training corpus happens to, so the share of early exits here says little about
GuardReasoner (measured on its recorded outputs: ``guardstream eval --early-exit``).
"""

from __future__ import annotations

import asyncio
import os
import time
from dataclasses import replace
from typing import Any

from loadtest.common import machine, stdout_to_stderr
from loadtest.engine import ROOT, VLLM_ENV, _config, _requests
from streams.event import ChatEvent
from streams.pipeline import ModerationPolicy, moderate_one

__all__ = ["run"]


async def _measure(events: int, max_tokens: int) -> dict[str, Any]:
    from streams.engines.vllm import VllmEngine
    from streams.fixture import ensure_fixture_model

    model = ensure_fixture_model(ROOT / ".cache" / "guardstream" / "fixture-model")
    engine = VllmEngine(str(model), config=_config(max_tokens))
    requests = [q for q, _ in _requests(events)]
    now = time.time()
    batch = [ChatEvent(f"e{i}", "c", "u", now, q) for i, q in enumerate(requests)]
    base = ModerationPolicy(options=replace(ModerationPolicy().options, max_tokens=max_tokens))
    await engine.start()
    try:
        rows: dict[str, dict[str, Any]] = {}
        for name, exit_early in (("full", False), ("early_exit", True)):
            policy = replace(base, early_exit=exit_early)
            started = time.perf_counter()
            verdicts = await asyncio.gather(*(moderate_one(e, engine, policy) for e in batch))
            rows[name] = {
                "seconds": time.perf_counter() - started,
                "tokens": [v.completion_tokens or 0 for v in verdicts],
                "answers": [v.request for v in verdicts],
                "exited": sum(v.early_exit for v in verdicts),
            }
    finally:
        await engine.aclose()
    full, early = rows["full"], rows["early_exit"]
    tokens_full, tokens_early = sum(full["tokens"]), sum(early["tokens"])
    return {
        "events": events,
        "model": "guardstream fixture (tiny Llama, format fixture)",
        "max_tokens": max_tokens,
        "tokens_per_verdict_full": round(tokens_full / events, 1),
        "tokens_per_verdict_early_exit": round(tokens_early / events, 1),
        "saved_fraction": round(1 - tokens_early / max(1, tokens_full), 3),
        "exited": early["exited"],
        "same_answers": full["answers"] == early["answers"],
        "seconds_full": round(full["seconds"], 2),
        "seconds_early_exit": round(early["seconds"], 2),
        **machine(),
    }


def run(events: int = 64, max_tokens: int = 512) -> dict[str, Any]:
    os.environ.update(VLLM_ENV)
    with stdout_to_stderr():
        return asyncio.run(_measure(events, max_tokens))
