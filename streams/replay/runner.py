"""Run a replay: read the run's offset ranges, moderate what falls in its time range, publish to
``moderation.replay``, commit progress in the run's own consumer group, and finish at the ends.

The moderation itself is the live worker's: :class:`~streams.agents.Moderator` (engine
gate, in-flight window, publish-then-ack in offset order), with a routing that sends
verdicts to the replay topic (and, with ``publish_live``, block/alert records to the
live topics) and drops bad input silently (it was dead-lettered when it went live).
Offsets are committed strictly in order, so a run killed at any moment and started
again with the same run id continues where it stopped (at-least-once: the diff
collapses duplicates by event id).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Any

from aiokafka import AIOKafkaProducer, TopicPartition

from streams.agents import HeaderFn, InputRecord, Moderator
from streams.config import Settings
from streams.engines.base import GuardEngine
from streams.errors import BrokerError, ContractError
from streams.kafka_security import client_options
from streams.pipeline import ModerationPolicy
from streams.replay.diff import REPLAY_RUN_HEADER, Summary
from streams.replay.runs import RunSpec
from streams.replay.scan import consumer_for, start_consumer
from streams.sinks import EVENT_ID_HEADER, OutputRecord, Outputs, fit_json, records_for, replay_record
from streams.sinks.findings import Replay
from streams.verdict import Action, Verdict

__all__ = ["Progress", "ReplayResult", "ReplayRouting", "run_replay"]

logger = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class ReplayResult:
    run_id: str
    records: int  # records of the offset ranges processed in this invocation
    moderated: int  # of those, events re-moderated
    skipped: int  # outside the time range, or not a valid event
    elapsed_s: float


class ReplayRouting:
    """A replay's outputs: the verdict (with the run and the original) to ``moderation.replay``;
    with ``publish_live`` also its block/alert records to the live topics."""

    def __init__(
        self,
        settings: Settings,
        *,
        run_id: str,
        originals: Mapping[str, Summary],
        publish_live: bool,
    ) -> None:
        self._topics = settings.topics
        self._run = run_id.encode()
        self._run_id = run_id
        self._originals = originals
        self._publish_live = publish_live
        self._limit = settings.kafka.max_record_bytes
        self._findings = settings.findings.enabled()
        self._include_text = settings.privacy.include_text
        self._outputs = Outputs(
            settings.topics,
            max_record_bytes=settings.kafka.max_record_bytes,
            dlq_max_value_bytes=settings.policy.dlq_max_value_bytes,
        )
        self.moderated = 0
        self.skipped = 0

    def _original(self, event_id: str) -> dict[str, Any] | None:
        found = self._originals.get(event_id)
        if found is None:
            return None
        request, completion, response = found.answers
        return {
            "model": found.model,
            "outcome": found.outcome,
            "answers": {"request": request, "completion": completion, "response": response},
        }

    def for_verdict(self, verdict: Verdict, headers: HeaderFn, item: InputRecord) -> list[OutputRecord]:
        self.moderated += 1
        key = verdict.conversation_id.encode()
        topic = self._topics.replay
        hdrs = [(EVENT_ID_HEADER, verdict.event_id.encode()), (REPLAY_RUN_HEADER, self._run), *headers(topic)]
        limit = self._limit - len(key) - sum(len(k) + len(v) for k, v in hdrs)
        record = replay_record(verdict, run_id=self._run_id, original=self._original(verdict.event_id))
        out = [OutputRecord(topic, key, fit_json(record, limit), hdrs)]
        if self._publish_live:  # block, alert and SIEM findings (marked as a replay), no archive
            live = replace(verdict, actions=tuple(a for a in verdict.actions if a is not Action.ARCHIVE))
            run_header = [(REPLAY_RUN_HEADER, self._run)]
            out += records_for(
                live,
                self._topics,
                lambda t: [*run_header, *headers(t)],
                max_record_bytes=self._limit,
                findings=self._findings,
                include_text=self._include_text,
                replay=Replay.from_record(record),
            )
        return out

    def for_dead_letter(self, item: InputRecord, error: ContractError) -> list[OutputRecord]:
        self.skipped += 1  # dead-lettered when it first arrived
        return []

    def for_rejected(
        self, output: OutputRecord, *, topic: str, partition: int, offset: int, error: BaseException
    ) -> OutputRecord:
        return self._outputs.rejected(output, topic=topic, partition=partition, offset=offset, error=error)


class _Producer:
    """aiokafka's producer behind the ``RecordProducer`` protocol."""

    def __init__(self, producer: AIOKafkaProducer) -> None:
        self._producer = producer

    async def send(
        self,
        topic: str,
        key: bytes | None,
        value: bytes | None,
        partition: int | None,
        timestamp: float | None,
        headers: list[tuple[str, bytes]] | None,
    ) -> Any:
        return await self._producer.send(topic, value, key=key, partition=partition, headers=headers)


class _Limiter:
    """At most ``rate`` events per second on average (0: no limit)."""

    def __init__(self, rate: float) -> None:
        self._interval = 1.0 / rate if rate > 0 else 0.0
        self._next = time.monotonic()

    async def take(self, count: int) -> None:
        if not self._interval or not count:
            return
        now = time.monotonic()
        self._next = max(self._next, now) + count * self._interval
        wait = self._next - now - self._interval
        if wait > 0:
            await asyncio.sleep(wait)


class Progress:
    """Events done / total, rate and ETA on stderr: a bar on a terminal, plain lines otherwise."""

    def __init__(self, stream: Any, *, interval_s: float | None = None) -> None:
        self._stream = stream
        self._tty = bool(getattr(stream, "isatty", lambda: False)())
        self._interval = interval_s if interval_s is not None else (0.2 if self._tty else 10.0)
        self._started = time.monotonic()
        self._last = 0.0

    def __call__(self, done: int, total: int, *, final: bool = False) -> None:
        now = time.monotonic()
        if not final and now - self._last < self._interval:
            return
        self._last = now
        elapsed = max(1e-6, now - self._started)
        rate = done / elapsed
        eta = (total - done) / rate if rate > 0 else float("inf")
        share = done / total if total else 1.0
        eta_text = "--:--" if eta == float("inf") else time.strftime("%H:%M:%S", time.gmtime(eta))
        text = f"{done}/{total} ({share:.0%}) {rate:.1f}/s ETA {eta_text}"
        if self._tty:
            bar = "#" * int(share * 30)
            self._stream.write(f"\r[{bar:<30}] {text}" + ("\n" if final else ""))
        else:
            self._stream.write(f"replay: {text}\n")
        self._stream.flush()


class _Committer:
    """Acks become the run's committed offsets (in order: the moderator acks strictly in order)."""

    def __init__(self, consumer: Any) -> None:
        self._consumer = consumer
        self._next: dict[TopicPartition, int] = {}
        self._committed: dict[TopicPartition, int] = {}
        self.done = 0

    async def ack(self, handle: Any) -> None:
        self._next[TopicPartition(handle.topic, handle.partition)] = handle.offset + 1
        self.done += 1

    async def commit(self) -> None:
        due = {tp: o for tp, o in self._next.items() if self._committed.get(tp) != o}
        if due:
            await self._consumer.commit(due)
            self._committed.update(due)


async def run_replay(
    settings: Settings,
    spec: RunSpec,
    engine: GuardEngine,
    *,
    originals: Mapping[str, Summary],
    max_rate: float = 0.0,
    progress: Progress | None = None,
) -> ReplayResult:
    """Replay ``spec`` (new or resumed) to its ends with ``engine``."""
    started = time.monotonic()
    group = f"{settings.kafka.group_id}-replay-{spec.run_id}"
    consumer = consumer_for(settings.kafka, group_id=group, max_poll_records=1000)
    await start_consumer(consumer, settings.kafka)
    producer = AIOKafkaProducer(
        **client_options(settings.kafka),
        acks="all",
        linger_ms=settings.kafka.producer_linger_ms,
        max_request_size=settings.kafka.producer_max_request_bytes,
    )
    await producer.start()
    routing = ReplayRouting(settings, run_id=spec.run_id, originals=originals, publish_live=spec.publish_live)
    committer = _Committer(consumer)
    fatal: list[BaseException] = []

    async def on_fatal(exc: BaseException) -> None:
        fatal.append(exc)

    policy = ModerationPolicy.from_settings(settings)
    policy = replace(policy, options=replace(policy.options, priority=spec.priority))
    moderator = Moderator(
        settings=settings,
        engine=engine,
        producer=_Producer(producer),
        ack=committer.ack,
        on_fatal=on_fatal,
        routing=routing,
        moderation=policy,
    )
    limiter = _Limiter(max_rate)
    remaining: dict[TopicPartition, int] = {}
    records = skipped_range = 0
    try:
        tps = {TopicPartition(spec.topic, p): r for p, r in spec.ranges.items()}
        consumer.assign(list(tps))
        already = 0
        for tp, (start, stop) in tps.items():
            committed = await consumer.committed(tp)
            position = min(max(start, committed or start), stop)
            already += position - start
            if position < stop:
                consumer.seek(tp, position)
                remaining[tp] = stop
        consumer.pause(*[tp for tp in tps if tp not in remaining])
        total = spec.total
        moderator.start()
        last_commit = time.monotonic()
        while remaining and not fatal:
            batches = await consumer.getmany(timeout_ms=200)
            for tp, batch in batches.items():
                if tp not in remaining:
                    continue
                end = remaining[tp]
                items = [InputRecord.from_aiokafka(r) for r in batch if r.offset < end]
                chosen = sum(1 for i in items if spec.selects(i.timestamp))
                records += len(items)
                skipped_range += len(items) - chosen
                await limiter.take(chosen)
                # outside the time range: tracked and acked in order, not moderated
                await moderator.admit(items, select=lambda i: spec.selects(i.timestamp))
                if await consumer.position(tp) >= end:
                    consumer.pause(tp)
                    del remaining[tp]
            if time.monotonic() - last_commit > 1.0:
                await committer.commit()
                last_commit = time.monotonic()
            if progress is not None:
                progress(already + committer.done, total)
        await moderator.idle()
        if fatal:
            raise fatal[0]
        await committer.commit()
        if progress is not None:
            progress(already + committer.done, total, final=True)
    finally:
        await moderator.drain(0.1)
        await producer.stop()
        await consumer.stop()
    if fatal:
        raise BrokerError(f"replay {spec.run_id} stopped: {fatal[0]!r}")
    return ReplayResult(
        run_id=spec.run_id,
        records=records,
        moderated=routing.moderated,
        skipped=routing.skipped + skipped_range,
        elapsed_s=time.monotonic() - started,
    )
