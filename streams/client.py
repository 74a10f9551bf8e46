"""Client side helpers for the CLI and tests: send chat events, read output topics."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Iterable
from typing import Any

import orjson
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.errors import KafkaConnectionError

from streams import telemetry
from streams.errors import BrokerError
from streams.kafka_security import KafkaTarget, bootstrap_of, client_options

__all__ = ["event_key", "read_topic", "send_lines"]


def event_key(line: bytes) -> bytes | None:
    """The conversation id of a JSON event line, as the record key (None if unreadable)."""
    try:
        data = orjson.loads(line)
    except orjson.JSONDecodeError:
        return None
    conv = data.get("conversation_id") if isinstance(data, dict) else None
    return str(conv).encode() if conv is not None else None


async def send_lines(
    kafka: KafkaTarget,
    topic: str,
    lines: Iterable[bytes],
    *,
    trace: bool = False,
) -> int:
    """Produce each non-empty line as one record (keyed by its conversation id); returns the count.

    Lines are sent as they are, so malformed input reaches the service (and its DLQ).
    ``trace``: start a trace per record and send its ``traceparent`` header.
    ``kafka``: the settings (bootstrap and security) or a bare bootstrap string.
    """
    bootstrap = bootstrap_of(kafka)
    producer = AIOKafkaProducer(**client_options(kafka), acks="all", linger_ms=5)
    try:
        await producer.start()
    except KafkaConnectionError as exc:
        raise BrokerError(f"cannot reach a Kafka broker at {bootstrap} ({exc})") from exc
    try:
        futures = []
        spans = []
        for raw in lines:
            line = raw.rstrip(b"\r\n")
            if not line.strip():
                continue
            headers, span = telemetry.new_trace_headers(topic) if trace else (None, None)
            futures.append(await producer.send(topic, line, key=event_key(line), headers=headers))
            if span is not None:
                spans.append(span)
        await asyncio.gather(*futures)
        for span in spans:
            span.end()
        return len(futures)
    finally:
        await producer.stop()


async def read_topic(
    kafka: KafkaTarget,
    topic: str,
    *,
    max_records: int | None = None,
    idle_timeout_s: float | None = None,
    group_id: str | None = None,
) -> AsyncIterator[Any]:
    """Yield records of ``topic`` from the beginning (aiokafka ``ConsumerRecord``).

    Stops after ``max_records``, or when nothing arrived for ``idle_timeout_s``
    (``None``: follow forever).
    """
    bootstrap = bootstrap_of(kafka)
    consumer = AIOKafkaConsumer(
        topic,
        **client_options(kafka),
        group_id=group_id,
        auto_offset_reset="earliest",
        enable_auto_commit=group_id is not None,
        fetch_max_wait_ms=100,
    )
    try:
        await consumer.start()
    except KafkaConnectionError as exc:
        raise BrokerError(f"cannot reach a Kafka broker at {bootstrap} ({exc})") from exc
    seen = 0
    last = time.monotonic()
    try:
        while max_records is None or seen < max_records:
            batches = await consumer.getmany(timeout_ms=200)
            got = [r for records in batches.values() for r in records]
            if got:
                last = time.monotonic()
            elif idle_timeout_s is not None and time.monotonic() - last > idle_timeout_s:
                return
            for record in got:
                yield record
                seen += 1
                if max_records is not None and seen >= max_records:
                    return
    finally:
        await consumer.stop()
