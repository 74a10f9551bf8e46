"""Verdicts/s of the service (Kafka → worker with in-process vLLM → archive) against vLLM's
offline ``LLM.generate`` on the same prompts, same engine settings, same run.

The offline number is the engine's ceiling: every prompt handed to vLLM at once,
no Kafka, no parsing. Fair by construction: both sides use the same engine
arguments and the same ``SamplingParams`` (``streams.engines.vllm.sampling_params``:
greedy, the same ``max_tokens``, repetition detection on both), both are warmed up
with the same two prompts (not part of the timed set), the verdict cache is off,
and the run checks that both sides generated the same number of tokens (greedy
decoding makes the outputs identical). The engine core runs in its own process on both
sides: the service's ``AsyncLLM`` cannot run it in-process, so the offline baseline runs
``LLM`` the same way (``VLLM_ENABLE_V1_MULTIPROCESSING=1``); ``ratio`` compares the two. The
offline ``LLM`` with the engine core in-process (one process, no IPC: what vLLM itself does
best on this machine) is measured too, as ``offline_inprocess_vps`` / ``ratio_vs_inprocess``.
Each figure is the median of ``runs`` runs,
with min and max. The model is the project's fixture model (a format fixture, not a
classifier), so the figures measure feeding and overhead, not GuardReasoner's own
speed.
"""

from __future__ import annotations

import asyncio
import json
import os
import statistics
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
from streams.config import BatchConfig, CacheConfig, EngineConfig, Settings
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


_WARMUP_PAIRS: list[tuple[str, str | None]] = [
    ("Warm-up question one?", None),
    ("Warm-up question two?", "Warm-up answer."),
]
_WARMUP = [build_prompt(q, a) for q, a in _WARMUP_PAIRS]


def _config(max_tokens: int) -> EngineConfig:
    # early exit off: the offline baseline generates whole outputs, so must the service
    return EngineConfig(
        max_tokens=max_tokens, max_model_len=2048, enforce_eager=True, timeout_s=300, early_exit=False
    )


def offline_baseline(model: str, prompts_file: str, max_tokens: int) -> None:
    """Child process: load ``LLM`` with the service's engine settings, time one ``generate`` call."""
    from vllm import LLM

    from streams.engines.vllm import engine_kwargs, sampling_params
    from streams.pipeline import ModerationPolicy

    prompts = json.loads(Path(prompts_file).read_text())
    config = _config(max_tokens)
    kwargs = engine_kwargs(model, config, served_name=Path(model).name)
    kwargs.pop("disable_log_stats", None)
    llm = LLM(**kwargs)
    options = ModerationPolicy.from_settings(Settings(engine=config)).options
    params = sampling_params(options)  # exactly what the service's engine sends
    llm.generate(_WARMUP, params, use_tqdm=False)  # the same warm-up as the service's
    started = time.perf_counter()
    outputs = llm.generate(prompts, params, use_tqdm=False)
    elapsed = time.perf_counter() - started
    tokens = sum(len(o.outputs[0].token_ids) for o in outputs)
    print("RESULT " + json.dumps({"seconds": elapsed, "tokens": tokens}), flush=True)


def _offline(
    model: Path, prompts: list[str], max_tokens: int, tmp: Path, *, engine_process: bool
) -> dict[str, float]:
    """``engine_process``: the engine core in its own process, as the service's AsyncLLM runs it."""
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
        env={**os.environ, **VLLM_ENV, "VLLM_ENABLE_V1_MULTIPROCESSING": "1" if engine_process else "0"},
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
    warmup = [
        (
            f"w{i}".encode(),
            orjson.dumps(
                {
                    "id": f"{run_id}-warmup-{i}",
                    "conversation_id": f"w{i}",
                    "user_id": "u",
                    "timestamp": now,
                    "request": q,
                    "response": a,
                }
            ),
        )
        for i, (q, a) in enumerate(_WARMUP_PAIRS)
    ]
    tokens: list[int] = []

    def count(record: Any, _now: float) -> None:
        value = orjson.loads(record.value)
        if "-warmup-" not in value["event_id"]:
            tokens.append(value["usage"]["completion_tokens"] or 0)

    with broker() as b:
        settings = run_settings(
            b.bootstrap,
            f"vllm:{model}",
            batch=BatchConfig(max_in_flight=len(requests)),
        )
        settings = replace(
            settings,
            engine=replace(_config(max_tokens), spec=f"vllm:{model}"),
            cache=CacheConfig(enabled=False),
        )
        with started_worker(settings, tmp / "worker.log", env=VLLM_ENV):

            async def timed() -> tuple[float, list[float]]:
                archive = settings.topics.archive
                warm = asyncio.create_task(observe(b.bootstrap, archive, len(warmup), timeout_s=600))
                await produce(b.bootstrap, settings.topics.events, warmup)
                await warm  # the same warm-up as the offline side, not timed
                watcher = asyncio.create_task(
                    observe(b.bootstrap, archive, len(warmup) + len(payloads), timeout_s=600, on_record=count)
                )
                started = await produce(b.bootstrap, settings.topics.events, payloads)
                return started, (await watcher)[len(warmup) :]

            started, times = asyncio.run(timed())
    if len(times) < len(payloads):
        raise RuntimeError(f"only {len(times)} of {len(payloads)} verdicts arrived")
    return {"seconds": max(times) - started, "tokens": float(sum(tokens))}


def run(events: int = 256, max_tokens: int = 512, runs: int = 3) -> dict[str, Any]:
    from streams.fixture import ensure_fixture_model

    model = ensure_fixture_model(ROOT / ".cache" / "guardstream" / "fixture-model")
    requests = _requests(events)
    prompts = [build_prompt(q, a) for q, a in requests]
    rows = []
    with tempfile.TemporaryDirectory(prefix="guardstream-load-") as tmp:
        for _ in range(runs):
            offline = _offline(model, prompts, max_tokens, Path(tmp), engine_process=True)
            inprocess = _offline(model, prompts, max_tokens, Path(tmp), engine_process=False)
            service = _service(model, requests, max_tokens, Path(tmp))
            rows.append(
                {
                    "offline_vps": events / offline["seconds"],
                    "offline_inprocess_vps": events / inprocess["seconds"],
                    "service_vps": events / service["seconds"],
                    "ratio": offline["seconds"] / service["seconds"],
                    "ratio_vs_inprocess": inprocess["seconds"] / service["seconds"],
                    "offline_tokens_per_s": offline["tokens"] / offline["seconds"],
                    "service_tokens_per_s": service["tokens"] / service["seconds"],
                    "offline_tokens": offline["tokens"],
                    "inprocess_tokens": inprocess["tokens"],
                    "service_tokens": service["tokens"],
                }
            )

    def median(key: str) -> dict[str, float]:
        values = sorted(row[key] for row in rows)
        return {
            "median": round(statistics.median(values), 3),
            "min": round(values[0], 3),
            "max": round(values[-1], 3),
        }

    return {
        "events": events,
        "runs": runs,
        "model": "guardstream fixture (tiny Llama, format fixture)",
        "max_tokens": max_tokens,
        "ratio": median("ratio"),
        "offline_vps": median("offline_vps"),
        "offline_inprocess_vps": median("offline_inprocess_vps"),
        "ratio_vs_inprocess": median("ratio_vs_inprocess"),
        "service_vps": median("service_vps"),
        "offline_tokens_per_s": median("offline_tokens_per_s"),
        "service_tokens_per_s": median("service_tokens_per_s"),
        "same_tokens": all(
            row["offline_tokens"] == row["service_tokens"] == row["inprocess_tokens"] for row in rows
        ),
        # per run: (offline, service, offline in-process)
        "tokens": [
            (int(row["offline_tokens"]), int(row["service_tokens"]), int(row["inprocess_tokens"]))
            for row in rows
        ],
        **machine(),
    }
