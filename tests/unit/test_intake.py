"""The agent's intake (``streams.app.queued_batches``): what Faust's stream iterator does per
event, done per batch. The events here are stand-ins for Faust's (no broker in unit tests);
tests/integration/test_reliability.py runs the same intake against the real broker."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine
from typing import Any

import pytest

from streams.app import new_app, queued_batches
from streams.config import Settings

TOPIC = "chat.events.intake-test"


_APPS: list[Any] = []


def _run(case: Callable[[], Coroutine[Any, Any, None]]) -> Callable[[], None]:
    def test() -> None:
        try:
            asyncio.run(case())
        finally:  # Faust's consumer, never started here, made an event loop for its thread
            while _APPS:
                _APPS.pop().consumer._thread.thread_loop.close()

    test.__name__ = case.__name__
    return test


class _Message:
    def __init__(self, offset: int, generation: int) -> None:
        self.topic, self.partition, self.offset = TOPIC, 0, offset
        self.tp = (TOPIC, 0)
        self.generation_id = generation
        self.tracked = False


class _Event:
    def __init__(self, offset: int, generation: int) -> None:
        self.message = _Message(offset, generation)


async def _setup(*offsets: int, generation: int | None = None) -> tuple[Any, Any]:
    app = new_app(Settings().isolated("intake"))
    _APPS.append(app)
    app.flow_control.resume()  # as after an assignment
    channel = app.topic(TOPIC, key_type=bytes, value_type=bytes).__aiter__()
    app.topics.acking_topics.add(TOPIC)
    current = app.consumer_generation_id if generation is None else generation
    for offset in offsets:
        await channel.put(_Event(offset, current))
    return app, channel


async def _offsets(batches: Any) -> list[int]:
    return [event.message.offset for event in await asyncio.wait_for(batches.__anext__(), 5)]


@_run
async def test_takes_what_is_queued_in_batches_of_at_most_the_limit() -> None:
    app, channel = await _setup(0, 1, 2, 3, 4)
    batches = queued_batches(app, channel, 2)
    assert [await _offsets(batches) for _ in range(3)] == [[0, 1], [2, 3], [4]]


@_run
async def test_waits_for_the_next_event_when_the_queue_is_empty() -> None:
    app, channel = await _setup()
    batches = queued_batches(app, channel, 10)
    taking = asyncio.ensure_future(_offsets(batches))
    await asyncio.sleep(0.05)
    assert not taking.done()
    await channel.put(_Event(7, app.consumer_generation_id))
    assert await taking == [7]


@_run
async def test_events_taken_are_tracked_as_pending_acks() -> None:
    app, channel = await _setup(0, 1)
    (first, second) = await asyncio.wait_for(queued_batches(app, channel, 10).__anext__(), 5)
    assert first.message.tracked and second.message.tracked
    assert {first.message, second.message} <= set(app.consumer.unacked)


@_run
async def test_events_of_an_earlier_rebalance_generation_are_skipped_untracked() -> None:
    app, channel = await _setup(0, 1, generation=-5)  # fetched before the current generation
    current = app.consumer_generation_id
    await channel.put(_Event(2, current))
    batch = await asyncio.wait_for(queued_batches(app, channel, 10).__anext__(), 5)
    assert [event.message.offset for event in batch] == [2]
    assert not app.consumer.unacked - {batch[0].message}


@_run
async def test_nothing_is_taken_while_a_rebalance_suspends_flow() -> None:
    app, channel = await _setup(0)
    app.flow_control.suspend()
    with pytest.raises(TimeoutError):
        await asyncio.wait_for(queued_batches(app, channel, 10).__anext__(), 0.2)


@_run
async def test_faust_stopping_the_agent_ends_the_batches_cleanly() -> None:
    app, channel = await _setup()
    batches = queued_batches(app, channel, 10)
    taking = asyncio.ensure_future(batches.__anext__())
    await asyncio.sleep(0.05)
    await channel.throw(StopAsyncIteration())  # how Faust stops an agent's actor
    with pytest.raises(StopAsyncIteration):  # the iteration ends; not a RuntimeError (a "crash")
        await asyncio.wait_for(taking, 5)


@_run
async def test_faust_monitor_sees_the_partitions_being_processed() -> None:
    app, channel = await _setup(0)
    assert (TOPIC, 0) not in app.monitor.stream_inbound_time
    await asyncio.wait_for(queued_batches(app, channel, 10).__anext__(), 5)
    assert (TOPIC, 0) in app.monitor.stream_inbound_time  # read by Faust's stall check
