"""Read a topic to an end fixed in advance, correctly on Apache Kafka and on the embedded broker.

The end of a partition is its high watermark. Apache Kafka reports it in
``ListOffsets(LATEST)``; the embedded broker (Tansu) answers that with the last
record *batch's* base offset + 1, which is too small after batched produce, but
gives the right high watermark in fetch responses. :func:`partition_ends`
therefore fetches once from just before the listed end and takes the larger of
the two: exact on both.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Mapping
from typing import Any

from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.errors import KafkaConnectionError

from streams.errors import BrokerError
from streams.kafka_security import KafkaTarget, bootstrap_of, client_options

__all__ = ["consumer_for", "extent", "partition_ends", "partitions", "scan", "start_consumer"]

_PROBE_TIMEOUT_S = 10.0


def consumer_for(kafka: KafkaTarget, *, group_id: str | None = None, **options: Any) -> AIOKafkaConsumer:
    return AIOKafkaConsumer(
        **client_options(kafka),
        group_id=group_id,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        fetch_max_wait_ms=100,
        **options,
    )


async def start_consumer(consumer: AIOKafkaConsumer, kafka: KafkaTarget) -> None:
    try:
        await consumer.start()
    except KafkaConnectionError as exc:
        raise BrokerError(f"cannot reach a Kafka broker at {bootstrap_of(kafka)} ({exc})") from exc


async def partitions(consumer: AIOKafkaConsumer, topic: str) -> list[TopicPartition]:
    await consumer.topics()  # refresh metadata
    found = consumer.partitions_for_topic(topic)
    if not found:
        raise BrokerError(f"topic {topic!r} does not exist")
    return [TopicPartition(topic, p) for p in sorted(found)]


async def partition_ends(consumer: AIOKafkaConsumer, tps: list[TopicPartition]) -> dict[TopicPartition, int]:
    """The end offset (high watermark) of each partition, now. Leaves ``consumer`` unassigned."""
    listed: Mapping[TopicPartition, int] = await consumer.end_offsets(tps)
    consumer.assign(tps)
    for tp in tps:
        consumer.seek(tp, max(0, listed[tp] - 1))
    deadline = time.monotonic() + _PROBE_TIMEOUT_S
    while time.monotonic() < deadline and any(consumer.highwater(tp) is None for tp in tps):
        await consumer.getmany(timeout_ms=100)
    ends = {tp: max(listed[tp], consumer.highwater(tp) or 0) for tp in tps}
    consumer.assign([])
    return ends


async def extent(
    consumer: AIOKafkaConsumer, topic: str
) -> tuple[list[TopicPartition], dict[TopicPartition, int], dict[TopicPartition, int]]:
    """The partitions of ``topic``, their ends now (:func:`partition_ends`) and their beginnings."""
    tps = await partitions(consumer, topic)
    ends = await partition_ends(consumer, tps)
    beginnings = dict(await consumer.beginning_offsets(tps))
    return tps, ends, beginnings


async def scan(
    bootstrap: KafkaTarget, topic: str, *, starts: Mapping[int, int] | None = None
) -> AsyncIterator[Any]:
    """Every record of ``topic`` from ``starts`` (default: the beginning) up to the end as of now."""
    consumer = consumer_for(bootstrap)
    await start_consumer(consumer, bootstrap)
    try:
        tps, ends, beginnings = await extent(consumer, topic)
        todo = {
            tp: ends[tp] for tp in tps if ends[tp] > max(beginnings[tp], (starts or {}).get(tp.partition, 0))
        }
        if not todo:
            return
        consumer.assign(list(todo))
        for tp in todo:
            consumer.seek(tp, max(beginnings[tp], (starts or {}).get(tp.partition, 0)))
        while todo:
            batches = await consumer.getmany(timeout_ms=500, max_records=5000)
            for tp, records in batches.items():
                end = todo.get(tp)
                if end is None:
                    continue
                for record in records:
                    if record.offset < end:
                        yield record
                if await consumer.position(tp) >= end:
                    consumer.pause(tp)
                    del todo[tp]
            await asyncio.sleep(0)
    finally:
        await consumer.stop()
