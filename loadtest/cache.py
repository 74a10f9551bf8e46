"""What the verdict cache saves: ``python -m loadtest cache --events N --repeat 0.3 --json``.

A stream of chat events in which a share ``repeat`` of the messages repeat earlier
ones, drawn from a Zipf-distributed pool of common messages ("hi", "lol", spam,
copy-pasted prompts: a few very frequent, a long tail), the rest unique. Early exit
is off in both runs so that every event is one engine call. The same
stream goes through one worker twice, in the same run: verdict cache off, then on,
with an engine that takes time per call (``fake:sleep=S,concurrency=N``, a stand-in
for a GPU engine). Engine calls are read from the worker's ``/metrics`` (cache
misses) and compared with the events; throughput is compared as a ratio.
"""

from __future__ import annotations

import asyncio
import random
import re
import tempfile
import time
import uuid
from dataclasses import replace
from pathlib import Path
from typing import Any

import httpx
import orjson

from loadtest.common import broker, machine, observe, produce, run_settings, started_worker
from streams.broker import free_port
from streams.config import CacheConfig, TelemetryConfig

__all__ = ["payloads", "run"]

_POOL = 400  # distinct common messages
_ZIPF_S = 1.1


def payloads(events: int, repeat: float, *, seed: int = 7) -> tuple[list[tuple[bytes, bytes]], float]:
    """(key, value) events of which a share ``repeat`` repeat a message seen before in the stream
    (the draws from the common pool are raised until the measured share reaches it)."""
    draw = repeat
    while True:
        data, measured = _stream(events, draw, seed)
        if measured >= repeat or draw >= 1.0:
            return data, measured
        draw = min(1.0, draw + 0.02)


def _stream(events: int, repeat: float, seed: int) -> tuple[list[tuple[bytes, bytes]], float]:
    rng = random.Random(seed)  # noqa: S311 - a workload, not security
    weights = [1 / (rank**_ZIPF_S) for rank in range(1, _POOL + 1)]
    run = uuid.uuid4().hex[:6]
    now = time.time()
    seen: set[str] = set()
    repeats = 0
    out = []
    for i in range(events):
        if rng.random() < repeat:
            (rank,) = rng.choices(range(_POOL), weights=weights)
            request = f"common message {rank}: hi there, how are you?"
        else:
            request = f"unique message {run}-{i}: tell me about topic {rng.randrange(10**9)}"
        repeats += request in seen
        seen.add(request)
        event = {"id": f"{run}-{i}", "conversation_id": f"c{i % 97}", "user_id": "u", "timestamp": now}
        event["request"] = request
        out.append((f"c{i % 97}".encode(), orjson.dumps(event)))
    return out, repeats / events


def _metric(text: str, name: str) -> float:
    found = re.search(rf"^{re.escape(name)} (\S+)$", text, flags=re.M)
    return float(found.group(1)) if found else 0.0


def _one(
    bootstrap: str, data: list[tuple[bytes, bytes]], engine: str, cache: bool, log: Path
) -> dict[str, Any]:
    port = free_port()
    settings = run_settings(bootstrap, engine)
    settings = replace(
        settings,
        cache=CacheConfig(enabled=cache),
        telemetry=TelemetryConfig(http_port=port),
        # one engine call per event (early exit can add a continuation call)
        engine=replace(settings.engine, early_exit=False),
    )
    with started_worker(settings, log):

        async def timed() -> tuple[float, list[float]]:
            watcher = asyncio.create_task(
                observe(bootstrap, settings.topics.archive, len(data), timeout_s=900)
            )
            started = await produce(bootstrap, settings.topics.events, data)
            return started, await watcher

        started, times = asyncio.run(timed())
        time.sleep(2)  # let at-least-once duplicates (a rebalance at start) show up too
        metrics = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=10).text
    moderated = int(_metric(metrics, "guardstream_events_total"))  # records taken, duplicates included
    hits = int(_metric(metrics, 'guardstream_cache_lookups_total{result="hit"}'))
    misses = int(_metric(metrics, 'guardstream_cache_lookups_total{result="miss"}'))
    return {
        "events_per_s": round(len(times) / (max(times) - started), 1),
        "records_taken": moderated,
        "engine_calls": misses if cache else moderated,
        "cache_hits": hits,
    }


def run(
    events: int = 5000, repeat: float = 0.3, engine: str = "fake:sleep=0.05,concurrency=64"
) -> dict[str, Any]:
    data, measured = payloads(events, repeat)
    with broker() as b, tempfile.TemporaryDirectory() as tmp:
        off = _one(b.bootstrap, data, engine, False, Path(tmp) / "off.log")
        on = _one(b.bootstrap, data, engine, True, Path(tmp) / "on.log")
    return {
        "events": events,
        "repeat_share": round(measured, 3),
        "zipf": {"pool": _POOL, "s": _ZIPF_S},
        "engine": engine,
        "cache_off": off,
        "cache_on": on,
        "engine_calls_saved": off["engine_calls"] - on["engine_calls"],
        "saved_fraction": round(1 - on["engine_calls"] / max(1, off["engine_calls"]), 3),
        "throughput_ratio": round(on["events_per_s"] / off["events_per_s"], 3),
        **machine(),
    }
