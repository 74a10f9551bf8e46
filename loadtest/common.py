"""Shared pieces: event payloads, an embedded broker, a worker process, an output observer."""

from __future__ import annotations

import asyncio
import os
import platform
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import replace
from pathlib import Path
from typing import Any

import orjson
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

from streams.app import READY_LOG
from streams.broker import EmbeddedBroker
from streams.config import BatchConfig, Settings
from streams.kafka_security import KafkaTarget, client_options
from streams.process import WorkerProcess
from streams.topics import ensure_topics

__all__ = [
    "event_payloads",
    "machine",
    "observe",
    "produce",
    "run_settings",
    "started_worker",
    "stdout_to_stderr",
]

_WORDS = ("weather", "recipe", "python", "garden", "history", "music", "travel", "budget", "poem", "math")


def event_payloads(n: int, *, run: str, size: int = 340) -> list[tuple[bytes, bytes]]:
    """(key, value) chat events of roughly ``size`` bytes each."""
    out = []
    now = time.time()
    for i in range(n):
        request = f"Tell me something about {_WORDS[i % len(_WORDS)]} number {i}. "
        conversation = f"conv-{i % 997}"
        event: dict[str, object] = {
            "id": f"{run}-{i}",
            "conversation_id": conversation,
            "user_id": f"user-{i % 101}",
            "timestamp": now,
            "request": request,
            "response": None,
        }
        pad = max(0, size - len(orjson.dumps(event)))
        event["request"] = request + "x" * pad
        out.append((conversation.encode(), orjson.dumps(event)))
    return out


def run_settings(bootstrap: str, engine: str, *, batch: BatchConfig | None = None) -> Settings:
    base = Settings.from_env({}).for_embedded_broker().isolated("load")
    return replace(
        base,
        kafka=replace(base.kafka, bootstrap=bootstrap, partitions=4),
        engine=replace(base.engine, spec=engine),
        batch=batch or base.batch,
    )


@contextmanager
def started_worker(
    settings: Settings,
    log_path: Path,
    *,
    module: str = "streams",
    args: tuple[str, ...] = ("worker",),
    ready: str = READY_LOG,
    env: dict[str, str] | None = None,
) -> Iterator[WorkerProcess]:
    """Topics created, then ``python -m module args`` running until it logged ``ready``
    (``guardstream worker`` by default; a benchmark's own worker otherwise)."""
    asyncio.run(ensure_topics(settings.kafka, settings.topics))
    with WorkerProcess(settings, log_path=log_path, extra_env=env, args=args, module=module) as worker:
        worker.wait_for_log(ready, 300)
        yield worker


async def produce(kafka: KafkaTarget, topic: str, payloads: list[tuple[bytes, bytes]]) -> float:
    """Send all payloads; returns the wall time the sends started."""
    producer = AIOKafkaProducer(**client_options(kafka), acks="all", linger_ms=5, max_batch_size=256 * 1024)
    await producer.start()
    try:
        started = time.time()
        futures = [await producer.send(topic, value, key=key) for key, value in payloads]
        await asyncio.gather(*futures)
        return started
    finally:
        await producer.stop()


async def observe(
    kafka: KafkaTarget, topic: str, n: int, *, timeout_s: float, on_record: Any = None
) -> list[float]:
    """Receive times of the first ``n`` records of ``topic`` (reading from the beginning)."""
    consumer = AIOKafkaConsumer(
        topic,
        **client_options(kafka),
        group_id=None,
        auto_offset_reset="earliest",
        enable_auto_commit=False,
        fetch_max_bytes=16 * 1024 * 1024,
        fetch_max_wait_ms=20,
    )
    await consumer.start()
    times: list[float] = []
    deadline = time.monotonic() + timeout_s
    try:
        while len(times) < n and time.monotonic() < deadline:
            batches = await consumer.getmany(timeout_ms=100, max_records=10_000)
            now = time.time()
            for records in batches.values():
                for record in records:
                    times.append(now)
                    if on_record is not None:
                        on_record(record, now)
        return times
    finally:
        await consumer.stop()


def machine() -> dict[str, Any]:
    commit = subprocess.run(
        ["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, check=False
    )
    import os

    return {
        "date": time.strftime("%Y-%m-%d"),
        "machine": f"{platform.machine()} {os.cpu_count()} cpu, {platform.python_implementation()} "
        f"{platform.python_version()}",
        "commit": commit.stdout.strip() or None,
    }


@contextmanager
def stdout_to_stderr() -> Iterator[None]:
    """File descriptor 1 points at stderr meanwhile, for this process and the processes it starts
    (vLLM's engine logs to stdout): stdout stays for the JSON result."""
    sys.stdout.flush()
    saved = os.dup(1)
    os.dup2(2, 1)
    try:
        yield
    finally:
        sys.stdout.flush()
        os.dup2(saved, 1)
        os.close(saved)


@contextmanager
def broker() -> Iterator[EmbeddedBroker]:
    with EmbeddedBroker() as running:
        yield running
