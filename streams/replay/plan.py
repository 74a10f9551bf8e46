"""Fix a run's ranges when it starts, and find them again when it resumes.

Start of each partition: the first offset whose record is at or after ``--from``.
``offsets_for_times`` answers that on Apache Kafka; the embedded broker answers 0
whatever the time, so the answer is only used when the record just before it is
older than ``--from`` (true on a correct broker); otherwise the run starts at the
beginning and the time filter does the selecting (correct, only slower). End: the
high watermark now (:func:`~streams.replay.scan.partition_ends`).
"""

from __future__ import annotations

import logging
import time
from typing import Any

from aiokafka import AIOKafkaProducer, TopicPartition

from streams.kafka_security import KafkaTarget, client_options
from streams.replay.runs import RunSpec
from streams.replay.scan import consumer_for, extent, scan, start_consumer

__all__ = ["load_run", "plan_run", "save_run"]

logger = logging.getLogger(__name__)

_PROBE_TIMEOUT_S = 5.0


async def _timestamp_at(consumer: Any, tp: TopicPartition, offset: int) -> float | None:
    """The timestamp (seconds) of the record at ``offset``, or None when it cannot be read."""
    consumer.assign([tp])
    consumer.seek(tp, offset)
    deadline = time.monotonic() + _PROBE_TIMEOUT_S
    while time.monotonic() < deadline:
        batches = await consumer.getmany(tp, timeout_ms=200)
        for record in batches.get(tp, []):
            if record.offset >= offset:
                return float(record.timestamp) / 1000 if record.offset == offset else None
    return None


async def plan_run(
    bootstrap: KafkaTarget,
    *,
    run_id: str,
    topic: str,
    time_from: float | None,
    time_until: float | None,
    engine: str,
    priority: int,
    publish_live: bool,
) -> RunSpec:
    consumer = consumer_for(bootstrap)
    await start_consumer(consumer, bootstrap)
    try:
        tps, ends, beginnings = await extent(consumer, topic)
        starts = dict(beginnings)
        if time_from is not None:
            hints = await consumer.offsets_for_times({tp: int(time_from * 1000) for tp in tps})
            for tp in tps:
                hint = hints.get(tp)
                if hint is None:  # no record at or after --from
                    starts[tp] = ends[tp]
                elif hint.offset > beginnings[tp]:
                    before = await _timestamp_at(consumer, tp, hint.offset - 1)
                    if before is not None and before < time_from:
                        starts[tp] = hint.offset
                    else:
                        logger.info(
                            "offsets_for_times is not trustworthy here: scanning partition=%d", tp.partition
                        )
        ranges = {tp.partition: (min(starts[tp], ends[tp]), ends[tp]) for tp in tps}
    finally:
        await consumer.stop()
    return RunSpec(
        run_id=run_id,
        topic=topic,
        ranges=ranges,
        time_from=time_from,
        time_until=time_until,
        engine=engine,
        priority=priority,
        publish_live=publish_live,
    )


async def save_run(bootstrap: KafkaTarget, runs_topic: str, spec: RunSpec) -> None:
    producer = AIOKafkaProducer(**client_options(bootstrap), acks="all")
    await producer.start()
    try:
        await producer.send_and_wait(runs_topic, spec.to_json(), key=spec.run_id.encode())
    finally:
        await producer.stop()


async def load_run(bootstrap: KafkaTarget, runs_topic: str, run_id: str) -> RunSpec | None:
    """The latest spec recorded for ``run_id`` (None: a new run)."""
    found: RunSpec | None = None
    key = run_id.encode()
    async for record in scan(bootstrap, runs_topic):
        if record.key == key:
            found = RunSpec.from_json(record.value)
    return found
