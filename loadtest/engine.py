"""Verdicts/s of the service (Kafka → worker with in-process vLLM → archive) against vLLM's
offline ``LLM.generate`` on the same prompts, same engine settings, same run.

The offline number is the engine's ceiling: every prompt handed to vLLM at once,
no Kafka, no parsing. The model is the project's fixture model (a format
fixture, not a classifier), so the figures measure feeding and overhead, not
GuardReasoner's own speed.
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import tempfile
import time
import uuid
from dataclasses import replace
from pathlib import Path
from typing import Any

import orjson

from loadtest.common import broker, machine, observe, produce, run_settings, started_worker
from streams.config import BatchConfig, EngineConfig
from streams.prompt import build_prompt

__all__ = ["offline_baseline", "run"]

ROOT = Path(__file__).resolve().parents[1]
_TOPICS = ("garden", "history", "python", "travel", "cooking", "music", "physics", "poetry")
VLLM_ENV = {
    "VLLM_CPU_KVCACHE_SPACE": "2",
    "VLLM_CPU_NUM_OF_RESERVED_CPU": "0",
    "VLLM_ENABLE_V1_MULTIPROCESSING": "0",
    "VLLM_CACHE_ROOT": str(ROOT / ".cache" / "vllm"),
    "VLLM_LOGGING_LEVEL": "WARNING",
}


def _requests(n: int) -> list[tuple[str, str | None]]:
    out: list[tuple[str, str | None]] = []
    for i in range(n):
        topic = _TOPICS[i % len(_TOPICS)]
        request = f"Can you explain something interesting about {topic}? Question {i}."
        response = None if i % 2 else f"Sure, here is a short note about {topic}."
        out.append((request, response))
    return out


def _config(max_tokens: int) -> EngineConfig:
    return EngineConfig(max_tokens=max_tokens, max_model_len=2048, enforce_eager=True, timeout_s=300)


def offline_baseline(model: str, prompts_file: str, max_tokens: int) -> None:
    """Child process: load ``LLM`` with the service's engine settings, time one ``generate`` call."""
    from vllm import LLM, SamplingParams

    from streams.engines.vllm import engine_kwargs

    prompts = json.loads(Path(prompts_file).read_text())
    kwargs = engine_kwargs(model, _config(max_tokens), served_name=Path(model).name)
    kwargs.pop("disable_log_stats", None)
    llm = LLM(**kwargs)
    params = SamplingParams(temperature=0.0, top_p=1.0, max_tokens=max_tokens)
    llm.generate(prompts[:2], params, use_tqdm=False)  # warm-up, like the service's first batch
    started = time.perf_counter()
    outputs = llm.generate(prompts, params, use_tqdm=False)
    elapsed = time.perf_counter() - started
    tokens = sum(len(o.outputs[0].token_ids) for o in outputs)
    print("RESULT " + json.dumps({"seconds": elapsed, "tokens": tokens}), flush=True)


def _offline(model: Path, prompts: list[str], max_tokens: int, tmp: Path) -> dict[str, float]:
    prompts_file = tmp / "prompts.json"
    prompts_file.write_text(json.dumps(prompts))
    proc = subprocess.run(
        [
            sys.executable,
            "-c",
            "import sys; from loadtest.engine import offline_baseline; "
            "offline_baseline(sys.argv[1], sys.argv[2], int(sys.argv[3]))",
            str(model),
            str(prompts_file),
            str(max_tokens),
        ],
        capture_output=True,
        text=True,
        env={**os.environ, **VLLM_ENV},
        timeout=600,
        check=False,
        cwd=ROOT,
    )
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("RESULT ")]
    if proc.returncode != 0 or not lines:
        raise RuntimeError(f"offline baseline failed:\n{proc.stderr[-3000:]}")
    result: dict[str, float] = json.loads(lines[-1][len("RESULT ") :])
    return result


def _service(
    model: Path, requests: list[tuple[str, str | None]], max_tokens: int, tmp: Path
) -> dict[str, float]:
    run_id = uuid.uuid4().hex[:6]
    now = time.time()
    payloads = [
        (
            f"c{i}".encode(),
            orjson.dumps(
                {
                    "id": f"{run_id}-{i}",
                    "conversation_id": f"c{i}",
                    "user_id": "u",
                    "timestamp": now,
                    "request": q,
                    "response": a,
                }
            ),
        )
        for i, (q, a) in enumerate(requests)
    ]
    tokens: list[int] = []

    def count(record: Any, _now: float) -> None:
        tokens.append(orjson.loads(record.value)["usage"]["completion_tokens"] or 0)

    with broker() as b:
        settings = run_settings(
            b.bootstrap,
            f"vllm:{model}",
            batch=BatchConfig(max_size=64, max_wait_s=0.02, max_in_flight=len(requests)),
        )
        settings = replace(settings, engine=replace(_config(max_tokens), spec=f"vllm:{model}"))
        with started_worker(settings, tmp / "worker.log", **VLLM_ENV):

            async def timed() -> tuple[float, list[float]]:
                watcher = asyncio.create_task(
                    observe(
                        b.bootstrap, settings.topics.archive, len(payloads), timeout_s=600, on_record=count
                    )
                )
                started = await produce(b.bootstrap, settings.topics.events, payloads)
                return started, await watcher

            started, times = asyncio.run(timed())
    if len(times) < len(payloads):
        raise RuntimeError(f"only {len(times)} of {len(payloads)} verdicts arrived")
    return {"seconds": max(times) - started, "tokens": float(sum(tokens))}


def run(events: int = 256, max_tokens: int = 512) -> dict[str, Any]:
    from streams.fixture import ensure_fixture_model

    model = ensure_fixture_model(ROOT / ".cache" / "guardstream" / "fixture-model")
    requests = _requests(events)
    prompts = [build_prompt(q, a) for q, a in requests]
    with tempfile.TemporaryDirectory(prefix="guardstream-load-") as tmp:
        offline = _offline(model, prompts, max_tokens, Path(tmp))
        service = _service(model, requests, max_tokens, Path(tmp))
    offline_vps = events / offline["seconds"]
    service_vps = events / service["seconds"]
    return {
        "events": events,
        "model": "guardstream fixture (tiny Llama, format fixture)",
        "offline_vps": round(offline_vps, 2),
        "service_vps": round(service_vps, 2),
        "ratio": round(service_vps / offline_vps, 3),
        "offline_tokens_per_s": round(offline["tokens"] / offline["seconds"], 1),
        "service_tokens_per_s": round(service["tokens"] / service["seconds"], 1),
        **machine(),
    }
