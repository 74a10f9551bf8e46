"""The store sink: ``moderation.archive`` and ``moderation.replay`` → PostgreSQL.

Its own process and its own consumer group (``GUARDSTREAM_STORE_GROUP_ID``), so
nothing here can slow or stop the moderation worker. Delivery is at-least-once:

1. take a batch (up to ``batch_max_size`` records, waiting at most ``batch_max_wait_s``);
2. write it in one transaction (idempotent: duplicates collapse on event id + run id);
3. commit the batch's offsets only after the transaction committed.

A database outage **pauses** the sink: the batch is retried with exponential
backoff (``backoff_initial_s`` … ``backoff_max_s``) for as long as it takes,
no new records are taken and no offsets are committed, so nothing is dropped. A
crash at any point re-delivers at most the uncommitted batches, which the
upsert absorbs. A stop requested during an outage exits without committing.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import psycopg
from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.errors import KafkaConnectionError, KafkaError

from streams.config import Settings
from streams.errors import BrokerError
from streams.kafka_security import client_options
from streams.store.database import Database
from streams.store.errors import StoreUnavailable
from streams.store.records import Reject, VerdictRow, decode_record
from streams.store.verdicts import WriteResult, write_batch
from streams.topics import ensure_named_topics

__all__ = ["READY_LOG", "SinkStats", "StoreSink"]

logger = logging.getLogger(__name__)

READY_LOG = "store sink consuming"
_PROGRESS_EVERY_S = 30.0
# A lost connection (server down, restarted, unreachable): retry the batch later.
_CONNECTION_ERRORS = (psycopg.OperationalError, psycopg.InterfaceError, StoreUnavailable)


@dataclass(slots=True)
class SinkStats:
    batches: int = 0
    received: int = 0
    inserted: int = 0
    rejected: int = 0
    outages: int = 0  # database failures that paused the sink
    last_error: str = ""
    paused_since: float | None = None
    by_topic: dict[str, int] = field(default_factory=dict)


class StoreSink:
    """Consumes the verdict topics into the store until :meth:`run`'s ``stop`` is set."""

    def __init__(
        self,
        settings: Settings,
        database: Database,
        *,
        on_batch: Callable[[WriteResult], None] | None = None,
    ) -> None:
        self._settings = settings
        self._database = database
        self._on_batch = on_batch
        self._conn: psycopg.AsyncConnection[Any] | None = None
        self._replay_topic = settings.topics.replay
        self.topics = (settings.topics.archive, settings.topics.replay)
        self.stats = SinkStats()

    def _consumer(self) -> AIOKafkaConsumer:
        kafka = self._settings.kafka
        return AIOKafkaConsumer(
            *self.topics,
            **client_options(kafka),
            group_id=self._settings.store.group_id,
            client_id=f"{kafka.client_id}-store",
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            session_timeout_ms=int(kafka.session_timeout_s * 1000),
            heartbeat_interval_ms=int(kafka.heartbeat_interval_s * 1000),
            request_timeout_ms=int(kafka.request_timeout_s * 1000),
            fetch_max_wait_ms=kafka.fetch_max_wait_ms,
        )

    async def run(self, stop: asyncio.Event) -> SinkStats:
        await ensure_named_topics(self._settings.kafka, self.topics)
        consumer = self._consumer()
        try:
            await consumer.start()
        except KafkaConnectionError as exc:
            raise BrokerError(
                f"cannot reach a Kafka broker at {self._settings.kafka.bootstrap} ({exc})"
            ) from exc
        store = self._settings.store
        logger.info(
            '%s topics="%s" group="%s" batch_max_size=%d',
            READY_LOG,
            ",".join(self.topics),
            store.group_id,
            store.batch_max_size,
        )
        last_progress = time.monotonic()
        try:
            while not stop.is_set():
                batches = await consumer.getmany(
                    timeout_ms=int(store.batch_max_wait_s * 1000), max_records=store.batch_max_size
                )
                if not batches:
                    continue
                rows, rejects = self._decode(batches)
                result = await self._write(rows, rejects, stop)
                if result is None:  # stopping while the database is down: commit nothing
                    break
                await self._commit(consumer, batches)
                self._count(result, batches)
                if time.monotonic() - last_progress > _PROGRESS_EVERY_S:
                    last_progress = time.monotonic()
                    self._log_progress()
        finally:
            self._log_progress()
            await consumer.stop()
            await self._close_connection()
        return self.stats

    def _decode(
        self, batches: Mapping[TopicPartition, Sequence[Any]]
    ) -> tuple[list[VerdictRow], list[Reject]]:
        rows: list[VerdictRow] = []
        rejects: list[Reject] = []
        for tp, records in batches.items():
            replay = tp.topic == self._replay_topic
            for record in records:
                decoded = decode_record(record, replay=replay)
                (rows if isinstance(decoded, VerdictRow) else rejects).append(decoded)  # type: ignore[arg-type]
        for reject in rejects:
            logger.warning(
                'unreadable verdict record stored as a reject topic="%s" partition=%d offset=%d reason="%s"',
                reject.kafka_topic,
                reject.kafka_partition,
                reject.kafka_offset,
                reject.reason,
            )
        return rows, rejects

    async def _write(
        self, rows: Sequence[VerdictRow], rejects: Sequence[Reject], stop: asyncio.Event
    ) -> WriteResult | None:
        """Write the batch, retrying through database outages; None if stopped meanwhile."""
        store = self._settings.store
        delay = store.backoff_initial_s
        while True:
            try:
                if self._conn is None or self._conn.closed:
                    self._conn = await self._database.aconnect()
                result = await write_batch(self._conn, rows, rejects)
            except _CONNECTION_ERRORS as exc:
                await self._close_connection()
                stats = self.stats
                if stats.paused_since is None:
                    stats.paused_since = time.monotonic()
                    stats.outages += 1
                stats.last_error = str(exc).strip().splitlines()[0] if str(exc).strip() else repr(exc)
                logger.warning(
                    "database unavailable, sink paused (nothing committed, nothing dropped) "
                    'batch=%d retry_in_s=%.1f error="%s"',
                    len(rows) + len(rejects),
                    delay,
                    stats.last_error,
                )
                try:
                    await asyncio.wait_for(stop.wait(), delay)
                    return None
                except TimeoutError:
                    pass
                delay = min(delay * 2, store.backoff_max_s)
                continue
            if self.stats.paused_since is not None:
                logger.info(
                    "database back, sink resumed paused_s=%.1f", time.monotonic() - self.stats.paused_since
                )
                self.stats.paused_since = None
            return result

    async def _commit(
        self, consumer: AIOKafkaConsumer, batches: Mapping[TopicPartition, Sequence[Any]]
    ) -> None:
        assigned = consumer.assignment()
        offsets = {
            tp: records[-1].offset + 1 for tp, records in batches.items() if records and tp in assigned
        }
        if not offsets:
            return
        try:
            await consumer.commit(offsets)
        except (KafkaError, AssertionError) as exc:
            # A rebalance took the partitions: the new owner re-reads from the last commit, and the
            # upsert absorbs the repeat. Nothing is lost.
            logger.warning('offset commit failed; records will be re-read and deduplicated error="%r"', exc)

    def _count(self, result: WriteResult, batches: Mapping[TopicPartition, Sequence[Any]]) -> None:
        stats = self.stats
        stats.batches += 1
        stats.received += result.received
        stats.inserted += result.inserted
        stats.rejected += result.rejected
        for tp, records in batches.items():
            stats.by_topic[tp.topic] = stats.by_topic.get(tp.topic, 0) + len(records)
        if self._on_batch is not None:
            self._on_batch(result)

    def _log_progress(self) -> None:
        s = self.stats
        logger.info(
            "store sink progress batches=%d records=%d inserted=%d duplicates=%d rejects=%d outages=%d",
            s.batches,
            s.received,
            s.inserted,
            s.received - s.inserted - s.rejected,
            s.rejected,
            s.outages,
        )

    async def _close_connection(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None and not conn.closed:
            try:
                await conn.close()
            except psycopg.Error:
                pass
