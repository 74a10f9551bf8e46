"""End-to-end latency under open-loop load, and the drain of a burst.

``latency``: events are produced at a fixed rate whatever the service does
(open loop); latency per event = time its verdict is read from the archive −
its timestamp (set when produced). The default engine is the fake engine with
a service time and a concurrency limit (``fake:sleep=0.2,concurrency=64``:
saturates at 64 / 0.2 = 320 verdicts/s), standing in for a GPU engine, so the
figures show the streaming layer's queueing, not a model's speed. ``--sweep``
runs 25 %, 50 % and 90 % of the saturating rate on one worker.

``burst``: a backlog is produced before the worker starts; the drain time and
the lag curve (events produced − verdicts published, sampled every 0.25 s) are
printed, and plotted to a PNG.
"""

from __future__ import annotations

import asyncio
import statistics
import tempfile
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

from loadtest.common import broker, machine, run_settings, started_worker
from streams.config import BatchConfig, Settings
from streams.kafka_security import client_options

__all__ = ["run_burst", "run_latency", "saturating_rate"]

DEFAULT_ENGINE = "fake:sleep=0.2,concurrency=64"
_BATCH = BatchConfig(max_in_flight=512)


def saturating_rate(engine: str) -> float:
    """Verdicts/s at which a ``fake:sleep=S,concurrency=N`` engine is saturated (N / S)."""
    options = dict(part.split("=") for part in engine.removeprefix("fake:").split(","))
    return float(options["concurrency"]) / float(options["sleep"])


@dataclass
class _Tracker:
    """Verdicts seen on the archive: latency and completion per event."""

    latencies: dict[str, float] = field(default_factory=dict)
    done_at: list[float] = field(default_factory=list)

    def on_record(self, value: bytes, now: float) -> None:
        verdict = orjson.loads(value)
        if verdict["event_id"] not in self.latencies:
            self.latencies[verdict["event_id"]] = now - verdict["event_timestamp"]
            self.done_at.append(now)


async def _follow(settings: Settings, tracker: _Tracker, stop: asyncio.Event) -> None:
    consumer = AIOKafkaConsumer(
        settings.topics.archive,
        **client_options(settings.kafka),
        group_id=None,
        auto_offset_reset="earliest",
        enable_auto_commit=False,
        fetch_max_wait_ms=20,
    )
    await consumer.start()
    try:
        while not stop.is_set():
            batches = await consumer.getmany(timeout_ms=50, max_records=5000)
            now = time.time()
            for records in batches.values():
                for record in records:
                    tracker.on_record(record.value, now)
    finally:
        await consumer.stop()


def _event(run: str, i: int) -> tuple[bytes, bytes]:
    conversation = f"conv-{i % 997}"
    return conversation.encode(), orjson.dumps(
        {
            "id": f"{run}-{i}",
            "conversation_id": conversation,
            "user_id": "load",
            "timestamp": time.time(),
            "request": f"How do I plant tulip bulbs, question {i}?",
            "response": None,
        }
    )


def _percentiles(values: list[float]) -> dict[str, float]:
    ordered = sorted(values)
    if not ordered:
        return {}

    def pick(q: float) -> float:
        return ordered[min(len(ordered) - 1, int(q * len(ordered)))]

    return {
        "p50_ms": round(pick(0.50) * 1000, 1),
        "p90_ms": round(pick(0.90) * 1000, 1),
        "p99_ms": round(pick(0.99) * 1000, 1),
        "max_ms": round(ordered[-1] * 1000, 1),
        "mean_ms": round(statistics.fmean(ordered) * 1000, 1),
    }


async def _open_loop(settings: Settings, rate: float, seconds: float, tracker: _Tracker) -> dict[str, Any]:
    run = uuid.uuid4().hex[:6]
    producer = AIOKafkaProducer(**client_options(settings.kafka), acks="all", linger_ms=1)
    await producer.start()
    total = int(rate * seconds)
    ids = [f"{run}-{i}" for i in range(total)]
    max_lag = 0
    before = len(tracker.latencies)  # verdicts of earlier phases
    started = time.perf_counter()
    try:
        for i in range(total):  # open loop: the schedule never waits for verdicts
            delay = started + i / rate - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            key, value = _event(run, i)
            await producer.send(settings.topics.events, value, key=key)
            max_lag = max(max_lag, i - (len(tracker.latencies) - before))
        await producer.flush()
        sent_s = time.perf_counter() - started
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and len(tracker.latencies) - before < total:
            await asyncio.sleep(0.1)
    finally:
        await producer.stop()
    got = [tracker.latencies[x] for x in ids if x in tracker.latencies]
    return {
        "rate": rate,
        "seconds": seconds,
        "events": total,
        "verdicts": len(got),
        "sent_per_s": round(total / sent_s, 1),
        **_percentiles(got),
        "max_lag_events": max_lag,
    }


def run_latency(rates: list[float], seconds: float, engine: str = DEFAULT_ENGINE) -> dict[str, Any]:
    with broker() as b, tempfile.TemporaryDirectory() as tmp:
        settings = run_settings(b.bootstrap, engine, batch=_BATCH)
        with started_worker(settings, Path(tmp) / "worker.log"):

            async def all_rates() -> list[dict[str, Any]]:
                tracker, stop = _Tracker(), asyncio.Event()
                follower = asyncio.create_task(_follow(settings, tracker, stop))
                try:
                    return [await _open_loop(settings, rate, seconds, tracker) for rate in rates]
                finally:
                    stop.set()
                    await follower

            results = asyncio.run(all_rates())
    saturation = saturating_rate(engine) if engine.startswith("fake:sleep") else None
    for result in results:
        if saturation:
            result["load"] = round(result["rate"] / saturation, 2)
    return {"engine": engine, "saturating_rate": saturation, "results": results, **machine()}


def run_burst(events: int, engine: str = DEFAULT_ENGINE, plot: Path | None = None) -> dict[str, Any]:
    with broker() as b, tempfile.TemporaryDirectory() as tmp:
        settings = run_settings(b.bootstrap, engine, batch=_BATCH)
        run = uuid.uuid4().hex[:6]

        async def backlog() -> None:
            from streams.topics import ensure_topics

            await ensure_topics(settings.kafka, settings.topics)
            producer = AIOKafkaProducer(**client_options(settings.kafka), acks="all", linger_ms=5)
            await producer.start()
            try:
                for i in range(events):
                    key, value = _event(run, i)
                    await producer.send(settings.topics.events, value, key=key)
            finally:
                await producer.stop()

        asyncio.run(backlog())
        tracker = _Tracker()

        async def drain(ready_at: float) -> list[tuple[float, int]]:
            stop = asyncio.Event()
            follower = asyncio.create_task(_follow(settings, tracker, stop))
            curve = []
            deadline = time.monotonic() + 150
            while len(tracker.latencies) < events and time.monotonic() < deadline:
                curve.append((round(time.time() - ready_at, 2), events - len(tracker.latencies)))
                await asyncio.sleep(0.25)
            curve.append((round(time.time() - ready_at, 2), events - len(tracker.latencies)))
            stop.set()
            await follower
            return curve

        with started_worker(settings, Path(tmp) / "worker.log"):
            ready_at = time.time()
            curve = asyncio.run(drain(ready_at))
    drained = max(tracker.done_at) - ready_at if tracker.done_at else float("nan")
    result = {
        "engine": engine,
        "events": events,
        "verdicts": len(tracker.latencies),
        "drain_s": round(drained, 2),
        "drain_eps": round(len(tracker.latencies) / drained, 1),
        "lag_curve": curve,
        **machine(),
    }
    if plot is not None:
        _plot(curve, plot, title=f"burst of {events} events, {engine}")
        result["plot"] = str(plot)
    return result


def _plot(curve: list[tuple[float, int]], path: Path, *, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 3.2), dpi=110)
    ax.plot([t for t, _ in curve], [lag for _, lag in curve], color="#c0392b")
    ax.set_xlabel("seconds since the worker joined")
    ax.set_ylabel("lag (events without verdict)")
    ax.set_title(title, fontsize=9)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)
    plt.close(fig)
