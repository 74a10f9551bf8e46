"""The moderation agent: ``chat.events`` → batches → engine → verdicts → block/alert/archive (+ DLQ).

Flow for each batch taken from the stream (``noack_take``: nothing is acked
by Faust itself):

1. decode every record; a record that breaks the contract becomes a DLQ record,
2. moderate the valid events (all prompts to the engine at once, with retries),
3. publish every output record and wait for the broker's acks,
4. only then ack the input events, so their offsets can be committed.

Several batches are in flight at once (``BatchConfig.max_in_flight`` events),
so the engine keeps busy while a batch's slowest request finishes. Faust
commits only contiguous acked offsets, so out-of-order completion is safe.
A crash anywhere before step 4 re-delivers the batch (at-least-once).
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import orjson
from opentelemetry.trace import Span

from streams import metrics, telemetry
from streams.config import Settings
from streams.engines.base import GuardEngine
from streams.errors import ContractError, PublishError
from streams.event import ChatEvent, EventLimits, decode_event
from streams.pipeline import ModerationPolicy, moderate_one
from streams.sinks import OutputRecord, Publisher, dlq_record, records_for
from streams.verdict import Verdict

__all__ = ["BatchModerator", "InputRecord"]

logger = logging.getLogger(__name__)

Ack = Callable[[Any], Awaitable[Any]]
Fatal = Callable[[BaseException], Awaitable[None]]

_PUBLISH_ATTEMPTS = 3


class InputRecord:
    """The parts of a consumed Kafka message the moderator needs (adapts faust's Event)."""

    __slots__ = ("handle", "headers", "key", "offset", "partition", "timestamp", "topic", "value")

    def __init__(self, handle: Any) -> None:
        message = handle.message
        self.handle = handle
        self.key: bytes | None = message.key
        self.value: bytes | None = message.value
        self.topic: str = message.topic
        self.partition: int = message.partition
        self.offset: int = message.offset
        self.timestamp: float | None = message.timestamp
        self.headers: Any = message.headers


@dataclass(slots=True)
class Processed:
    records: list[OutputRecord]
    verdicts: list[Verdict] = field(default_factory=list)
    spans: list[Span] = field(default_factory=list)


class BatchModerator:
    """Moderates batches concurrently, bounded by an in-flight window."""

    def __init__(
        self,
        *,
        settings: Settings,
        engine: GuardEngine,
        publisher: Publisher,
        ack: Ack,
        on_fatal: Fatal,
    ) -> None:
        self._settings = settings
        self._engine = engine
        self._publisher = publisher
        self._ack = ack
        self._on_fatal = on_fatal
        self._policy = ModerationPolicy.from_settings(settings)
        self._limits = EventLimits(
            max_event_bytes=settings.policy.max_event_bytes, max_text_chars=settings.policy.max_text_chars
        )
        batches = max(1, math.ceil(settings.batch.max_in_flight / max(1, settings.batch.max_size)))
        self._slots = asyncio.Semaphore(batches)
        self._tasks: set[asyncio.Task[None]] = set()

    async def submit(self, batch: Sequence[InputRecord]) -> None:
        """Start moderating ``batch``; waits while the in-flight window is full."""
        await self._slots.acquire()
        task = asyncio.create_task(self._run(batch))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def drain(self, timeout_s: float) -> None:
        """Wait for in-flight batches (at shutdown); what does not finish is re-delivered later."""
        if self._tasks:
            logger.info("draining in_flight_batches=%d timeout_s=%.0f", len(self._tasks), timeout_s)
            await asyncio.wait(list(self._tasks), timeout=timeout_s)

    async def _run(self, batch: Sequence[InputRecord]) -> None:
        metrics.IN_FLIGHT.inc(len(batch))
        try:
            done = await self.process(batch)
            try:
                await self._publish(done.records)
            finally:
                for span in done.spans:
                    span.end()
            for item in batch:
                await self._ack(item.handle)
            self._count(done.verdicts)
        except asyncio.CancelledError:
            raise
        except BaseException as exc:  # not input-related: the worker must restart, nothing is acked
            logger.exception("batch failed, stopping the worker batch_size=%d", len(batch))
            await self._on_fatal(exc)
        finally:
            metrics.IN_FLIGHT.dec(len(batch))
            self._slots.release()

    def decode(
        self, batch: Sequence[InputRecord]
    ) -> tuple[list[tuple[InputRecord, ChatEvent]], list[OutputRecord]]:
        """Valid events (with their input record), and DLQ records for the rest."""
        events: list[tuple[InputRecord, ChatEvent]] = []
        dead: list[OutputRecord] = []
        for item in batch:
            try:
                events.append((item, decode_event(item.value, self._limits)))
                continue
            except ContractError as exc:
                error = exc
            except Exception as exc:  # a decoder bug on odd input must not stop the worker either
                logger.exception("unexpected decode failure offset=%d", item.offset)
                error = ContractError("undecodable", f"{type(exc).__name__}: {exc}")
            dead.append(self._dead_letter(item, error))
        return events, dead

    def _dead_letter(self, item: InputRecord, error: ContractError) -> OutputRecord:
        logger.warning(
            'dead-letter topic="%s" partition=%d offset=%d reason="%s"',
            item.topic,
            item.partition,
            item.offset,
            error.reason,
        )
        metrics.DEAD_LETTERS.labels(error.reason).inc()
        record = dlq_record(
            error,
            key=item.key,
            value=item.value,
            topic=item.topic,
            partition=item.partition,
            offset=item.offset,
            timestamp=item.timestamp,
        )
        return OutputRecord(
            self._settings.topics.dlq,
            item.key,
            orjson.dumps(record),
            telemetry.passthrough_headers(item.headers),
        )

    async def process(self, batch: Sequence[InputRecord]) -> Processed:
        """Output records for a batch (DLQ records first), its verdicts, and the send spans to end
        once the records are published."""
        metrics.EVENTS.inc(len(batch))
        metrics.BATCH_SIZE.observe(len(batch))
        events, records = self.decode(batch)
        moderate = self._moderate_traced if telemetry.is_enabled() else self._moderate
        done = Processed(records)
        for verdict, outputs, sends in await asyncio.gather(
            *(moderate(item, event) for item, event in events)
        ):
            done.verdicts.append(verdict)
            done.records.extend(outputs)
            done.spans.extend(sends)
        return done

    async def _moderate(
        self, item: InputRecord, event: ChatEvent
    ) -> tuple[Verdict, list[OutputRecord], list[Span]]:
        verdict = await moderate_one(event, self._engine, self._policy)
        headers = telemetry.passthrough_headers(item.headers) if item.headers else None
        return verdict, records_for(verdict, self._settings.topics, headers), []

    async def _moderate_traced(
        self, item: InputRecord, event: ChatEvent
    ) -> tuple[Verdict, list[OutputRecord], list[Span]]:
        with telemetry.process_span(
            topic=item.topic,
            partition=item.partition,
            offset=item.offset,
            group=self._settings.kafka.group_id,
            event_id=event.id,
            headers=item.headers,
        ):
            verdict = await moderate_one(event, self._engine, self._policy)
            traced: list[OutputRecord] = []
            sends: list[Span] = []
            for record in records_for(verdict, self._settings.topics):
                span = telemetry.send_span(record.topic, event.id)
                if span is not None:
                    sends.append(span)
                    record = OutputRecord(
                        record.topic, record.key, record.value, [*record.headers, *telemetry.inject(span)]
                    )
                traced.append(record)
            return verdict, traced, sends

    @staticmethod
    def _count(verdicts: Sequence[Verdict]) -> None:
        """Metrics of published verdicts (called once the broker acknowledged them)."""
        now = time.time()
        for verdict in verdicts:
            metrics.VERDICTS.labels(verdict.outcome.value).inc()
            metrics.END_TO_END.observe(max(0.0, now - verdict.event_timestamp))
            metrics.ENGINE_LATENCY.observe(verdict.timings.engine_ms / 1000)
            if verdict.error:
                metrics.ENGINE_ERRORS.labels(verdict.error.split(":", 1)[0]).inc()
            if verdict.prompt_tokens is not None:
                metrics.TOKENS.labels("prompt").observe(verdict.prompt_tokens)
            if verdict.completion_tokens is not None:
                metrics.TOKENS.labels("completion").observe(verdict.completion_tokens)

    async def _publish(self, records: Sequence[OutputRecord]) -> None:
        delay = 0.5
        for attempt in range(1, _PUBLISH_ATTEMPTS + 1):
            try:
                await self._publisher.publish(records)
                return
            except PublishError as exc:
                if attempt == _PUBLISH_ATTEMPTS:
                    raise
                logger.warning('publish failed, retrying attempt=%d error="%s"', attempt, exc)
                await asyncio.sleep(delay)
                delay *= 2
