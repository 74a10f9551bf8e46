"""Offsets are never committed past an event that is still being moderated.

Deterministic reproduction of the loss that faust-streaming's commit path allows
(upstream issue #606): two batches of one partition are in flight, the later one
finishes first, a commit happens. Committing the later batch's offsets would lose
the earlier batch on a crash, because a restart resumes after the committed offset.
The worker runs in this process (a real Faust app on the embedded broker) with an
engine double whose answers this test releases by hand.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import replace
from typing import Any

import pytest
from aiokafka import AIOKafkaConsumer, TopicPartition

from streams.app import create_app
from streams.client import send_lines
from streams.config import BatchConfig
from streams.engines.fake import FIXED_OUTPUT, FakeEngine
from streams.event import ChatEvent, encode_event

from .conftest import SettingsFactory, collect

pytestmark = pytest.mark.integration


async def _committed(bootstrap: str, group: str, topic: str) -> int | None:
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, group_id=group, enable_auto_commit=False)
    await consumer.start()
    try:
        return await consumer.committed(TopicPartition(topic, 0))  # type: ignore[no-any-return]
    finally:
        await consumer.stop()


def _events(prefix: str, n: int) -> list[bytes]:
    return [
        encode_event(ChatEvent(f"{prefix}-{i}", "conv", "u", time.time(), f"{prefix} {i}")) for i in range(n)
    ]


def test_a_later_batch_finishing_first_commits_nothing_past_the_earlier_one(
    settings_factory: SettingsFactory,
) -> None:
    base = settings_factory(engine="fake:instant")
    settings = replace(
        base,
        kafka=replace(base.kafka, partitions=1, commit_interval_s=0.2),
        batch=BatchConfig(max_in_flight=64),
    )
    # fresh topics with one partition (the factory created 4-partition ones)
    settings = replace(settings, topics=replace(settings.topics, events=settings.topics.events + ".p1"))
    release_slow = asyncio.Event()
    started: list[str] = []

    async def answer(prompt: str) -> str:
        started.append(prompt)
        if "slow " in prompt:
            await release_slow.wait()
        return FIXED_OUTPUT

    async def run() -> tuple[int | None, int | None]:
        from streams.topics import ensure_topics

        await ensure_topics(replace(settings.kafka, partitions=1), settings.topics)
        app = create_app(settings, FakeEngine(answer))
        assigned = asyncio.Event()

        @app.on_partitions_assigned.connect  # type: ignore[untyped-decorator]
        async def on_assigned(sender: Any, assigned_tps: Any, **_: Any) -> None:
            if assigned_tps:
                assigned.set()

        await app.start()
        try:
            await asyncio.wait_for(assigned.wait(), 60)
            bootstrap, topic = settings.kafka.bootstrap, settings.topics.events
            await send_lines(bootstrap, topic, _events("slow", 4))
            while len(started) < 4:  # the first batch is with the engine
                await asyncio.sleep(0.05)
            await send_lines(bootstrap, topic, _events("fast", 4))
            deadline = time.monotonic() + 30
            while len(started) < 8 and time.monotonic() < deadline:
                await asyncio.sleep(0.05)
            await asyncio.sleep(2.0)  # the fast batch is published; several commit intervals pass
            while_in_flight = await _committed(bootstrap, settings.kafka.group_id, topic)
            release_slow.set()
            await asyncio.sleep(2.0)
            after = await _committed(bootstrap, settings.kafka.group_id, topic)
            return while_in_flight, after
        finally:
            await app.stop()

    while_in_flight, after = asyncio.run(asyncio.wait_for(run(), 120))
    assert len(collect(settings, settings.topics.archive, count=8)) >= 8
    # Offsets 0..3 were still with the engine: nothing past offset 0 may be committed.
    assert while_in_flight in (None, 0), f"committed {while_in_flight} while offsets 0..3 were in flight"
    assert after == 8
