"""Publishes review actions to ``moderation.corrections`` from the database outbox.

A review is committed to PostgreSQL together with an outbox row; this task
sends outbox rows to Kafka, waits for the broker's acknowledgements, and only
then deletes them. A broker outage delays corrections and loses none; a crash
between the acknowledgement and the delete re-sends a review, so consumers
dedupe on ``review_id`` (also in the ``guardstream-review-id`` header). Records
are keyed by conversation id, like every other output topic.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import orjson
from aiokafka import AIOKafkaProducer
from psycopg_pool import AsyncConnectionPool

from streams.config import KafkaConfig
from streams.store.reviews import mark_published, pending_corrections

__all__ = ["REVIEW_ID_HEADER", "CorrectionsPublisher"]

logger = logging.getLogger(__name__)

REVIEW_ID_HEADER = "guardstream-review-id"
EVENT_ID_HEADER = "guardstream-event-id"
_BATCH = 200
_IDLE_CHECK_S = 5.0


class CorrectionsPublisher:
    """Drains the corrections outbox to Kafka; :meth:`notify` after each review for low latency."""

    def __init__(self, pool: AsyncConnectionPool[Any], kafka: KafkaConfig, topic: str) -> None:
        self._pool = pool
        self._kafka = kafka
        self.topic = topic
        self._wake = asyncio.Event()
        self._producer: AIOKafkaProducer | None = None
        self.published = 0
        self.last_error = ""

    def notify(self) -> None:
        self._wake.set()

    async def _ensure_producer(self) -> AIOKafkaProducer:
        if self._producer is None:
            from streams.kafka_security import client_options
            from streams.topics import ensure_named_topics

            await ensure_named_topics(self._kafka, [self.topic])
            producer = AIOKafkaProducer(
                **client_options(self._kafka),
                client_id=f"{self._kafka.client_id}-console",
                acks="all",
                request_timeout_ms=int(self._kafka.request_timeout_s * 1000),
            )
            try:
                await producer.start()
            except BaseException:
                await producer.stop()
                raise
            self._producer = producer
        return self._producer

    async def drain(self) -> int:
        """Publish every pending review (in batches); returns how many were acknowledged."""
        producer = await self._ensure_producer()
        sent = 0
        while True:
            async with self._pool.connection() as conn, conn.transaction():
                pending = await pending_corrections(conn, _BATCH)
                if not pending:
                    return sent
                futures = []
                for review, conversation_id in pending:
                    headers = [
                        (EVENT_ID_HEADER, review.event_id.encode()),
                        (REVIEW_ID_HEADER, review.review_id.encode()),
                    ]
                    futures.append(
                        await producer.send(
                            self.topic,
                            orjson.dumps(review.to_dict()),
                            key=(conversation_id or review.event_id).encode(),
                            headers=headers,
                        )
                    )
                await asyncio.gather(*futures)
                await mark_published(conn, [review.review_id for review, _ in pending])
            sent += len(pending)
            self.published += len(pending)

    async def run(self, *, backoff_initial_s: float = 0.5, backoff_max_s: float = 30.0) -> None:
        """Forever: drain, then wait for a notification (or a periodic check); back off on failures."""
        delay = backoff_initial_s
        while True:
            try:
                sent = await self.drain()
                if sent:
                    logger.info('corrections published count=%d topic="%s"', sent, self.topic)
                delay = backoff_initial_s
                self.last_error = ""
                try:
                    await asyncio.wait_for(self._wake.wait(), _IDLE_CHECK_S)
                except TimeoutError:
                    pass
                self._wake.clear()
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # broker or database down: keep the outbox, try again later
                self.last_error = repr(exc)
                logger.warning(
                    'corrections not published yet (kept in the outbox) retry_in_s=%.1f error="%r"',
                    delay,
                    exc,
                )
                await self._reset_producer()
                await asyncio.sleep(delay)
                delay = min(delay * 2, backoff_max_s)

    async def _reset_producer(self) -> None:
        producer, self._producer = self._producer, None
        if producer is not None:
            try:
                await producer.stop()
            except Exception:  # noqa: BLE001 - already failing; the next attempt makes a new one
                logger.debug("producer stop failed", exc_info=True)

    async def aclose(self) -> None:
        await self._reset_producer()
