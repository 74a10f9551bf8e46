"""The moderation agent's work: taken records → decoded events → verdicts → outputs → acks.

One place per concern:

* **decode → DLQ** (:meth:`Moderator.admit`): a record that breaks the event
  contract becomes a dead-letter record at once (bounded in size, see
  :class:`~streams.sinks.Outputs`);
* **moderate** (:func:`streams.pipeline.moderate_one`): one task per event, at most
  ``batch.max_in_flight`` at a time; each frees its slot as soon as its own outputs
  are published, so a slow request never holds the others;
* **publish, then ack in offset order** (:class:`~streams.delivery.Outbox`,
  :class:`~streams.delivery.OffsetTracker`): outputs are acknowledged by the broker
  before their event is acked, and an event is acked only after every earlier event
  of its partition, so a committed offset never passes an unfinished event.

An engine outage closes the :class:`~streams.engines.availability.EngineGate`:
:meth:`Moderator.admit` stops taking events and in-flight events wait for the
engine instead of becoming ``engine_error`` verdicts. Tracing has one code path:
every ``telemetry`` helper is a no-op when tracing is off.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Hashable, Iterable, Sequence
from functools import partial
from typing import Any, Protocol

from streams import metrics, telemetry
from streams.config import Settings
from streams.delivery import OffsetTracker, Outbox, Ticket
from streams.engines.availability import EngineGate
from streams.engines.base import GuardEngine
from streams.errors import ContractError
from streams.event import ChatEvent, EventLimits, decode_event, peek_event_id
from streams.pipeline import ModerationPolicy, moderate_one
from streams.sinks import OutputRecord, Outputs, RecordProducer
from streams.verdict import Verdict

__all__ = ["InputRecord", "LiveRouting", "Moderator", "Routing"]

logger = logging.getLogger(__name__)

Ack = Callable[[Any], Awaitable[Any]]
HeaderFn = Callable[[str], list[tuple[str, bytes]]]
Fatal = Callable[[BaseException], Awaitable[None]]

_STALL_LOG_S = 30.0  # a wait longer than this is logged, and again every as long


class InputRecord:
    """The parts of a consumed Kafka record the moderator needs.

    ``handle`` is what gets acknowledged: Faust's event (live worker) or aiokafka's
    record (replay). ``timestamp`` is in epoch seconds.
    """

    __slots__ = (
        "generation",
        "handle",
        "headers",
        "key",
        "offset",
        "partition",
        "timestamp",
        "topic",
        "tp",
        "value",
    )

    def __init__(
        self,
        handle: Any,
        *,
        topic: str,
        partition: int,
        offset: int,
        key: bytes | None,
        value: bytes | None,
        timestamp: float | None,
        headers: Any,
        tp: Hashable | None = None,
        generation: int | None = None,
    ) -> None:
        self.handle = handle
        self.topic = topic
        self.partition = partition
        self.offset = offset
        self.key = key
        self.value = value
        self.timestamp = timestamp
        self.headers = headers
        self.tp: Hashable = tp if tp is not None else (topic, partition)
        self.generation = generation

    @classmethod
    def from_faust(cls, event: Any) -> InputRecord:
        message = event.message
        return cls(
            event,
            topic=message.topic,
            partition=message.partition,
            offset=message.offset,
            key=message.key,
            value=message.value,
            timestamp=message.timestamp,
            headers=message.headers,
            tp=getattr(message, "tp", None),
            generation=getattr(message, "generation_id", None),
        )

    @classmethod
    def from_aiokafka(cls, record: Any) -> InputRecord:
        return cls(
            record,
            topic=record.topic,
            partition=record.partition,
            offset=record.offset,
            key=record.key,
            value=record.value,
            timestamp=record.timestamp / 1000 if record.timestamp is not None else None,
            headers=list(record.headers or ()),
        )


class Routing(Protocol):
    """Where a verdict and a dead letter go (the live topics, or a replay's)."""

    def for_verdict(self, verdict: Verdict, headers: HeaderFn, item: InputRecord) -> list[OutputRecord]: ...

    def for_dead_letter(self, item: InputRecord, error: ContractError) -> list[OutputRecord]: ...

    def for_rejected(
        self, output: OutputRecord, *, topic: str, partition: int, offset: int, error: BaseException
    ) -> OutputRecord: ...


class LiveRouting:
    """The live worker's outputs: block / alerts / archive for a verdict, the DLQ for bad input."""

    def __init__(self, outputs: Outputs) -> None:
        self._outputs = outputs

    def for_verdict(self, verdict: Verdict, headers: HeaderFn, item: InputRecord) -> list[OutputRecord]:
        return self._outputs.for_verdict(verdict, headers)

    def for_dead_letter(self, item: InputRecord, error: ContractError) -> list[OutputRecord]:
        return [
            self._outputs.dead_letter(
                error,
                key=item.key,
                value=item.value,
                topic=item.topic,
                partition=item.partition,
                offset=item.offset,
                timestamp=item.timestamp,
                headers=item.headers,
                event_id=peek_event_id(item.value),
            )
        ]

    def for_rejected(
        self, output: OutputRecord, *, topic: str, partition: int, offset: int, error: BaseException
    ) -> OutputRecord:
        return self._outputs.rejected(output, topic=topic, partition=partition, offset=offset, error=error)


class Moderator:
    """Moderates the events the agent takes, publishes their outputs and acks them in order."""

    def __init__(
        self,
        *,
        settings: Settings,
        engine: GuardEngine,
        producer: RecordProducer,
        ack: Ack,
        on_fatal: Fatal,
        gate: EngineGate | None = None,
        generation: Callable[[], int | None] | None = None,
        routing: Routing | None = None,
        moderation: ModerationPolicy | None = None,
    ) -> None:
        batch, kafka, policy = settings.batch, settings.kafka, settings.policy
        self._group = kafka.group_id
        self._engine = engine
        self._ack = ack
        self._on_fatal = on_fatal
        self._generation = generation
        self._policy = moderation or ModerationPolicy.from_settings(settings)
        self._limits = EventLimits(
            max_event_bytes=policy.max_event_bytes, max_text_chars=policy.max_text_chars
        )
        self.gate = gate or EngineGate(
            engine,
            probe_interval_s=settings.engine.probe_interval_s,
            probe_max_interval_s=settings.engine.probe_max_interval_s,
            max_delay_s=policy.outage_max_delay_s,
        )
        self._routing: Routing = routing or LiveRouting(Outputs.from_settings(settings))
        self._tracker = OffsetTracker(max_pending=batch.max_unacked)
        self._slots = asyncio.Semaphore(batch.max_in_flight)
        self._holding: set[Ticket] = set()  # tickets that hold a moderation slot
        self._tasks: dict[Ticket, asyncio.Task[None]] = {}
        self._done: dict[Ticket, tuple[Verdict, telemetry.OutputTrace]] = {}
        self._outbox = Outbox(
            producer,
            on_published=self._published,
            on_rejected=self._rejected,
            publish_timeout_s=kafka.publish_timeout_s,
        )
        self._runner: asyncio.Task[None] | None = None
        self._rebalances = 0  # revocations and assignments seen: a batch taken before one is stale
        self._fatal: asyncio.Future[None] | None = None

    # -- the agent's side -------------------------------------------------------------

    def start(self) -> None:
        if self._runner is None:
            self._runner = asyncio.create_task(self._outbox.run(), name="guardstream-outbox")
            self._runner.add_done_callback(self._runner_stopped)

    async def admit(
        self, batch: Sequence[InputRecord], *, select: Callable[[InputRecord], bool] | None = None
    ) -> None:
        """Take a batch: dead-letter what cannot be decoded, start moderating the rest.

        Records ``select`` rejects are acknowledged in order without being moderated.
        Waits while the engine is down, while ``max_in_flight`` events are being
        moderated, or while ``max_unacked`` events wait for an earlier one.
        """
        self.start()
        metrics.EVENTS.inc(len(batch))
        metrics.BATCH_SIZE.observe(len(batch))
        if not self.gate.is_open:
            await self._waiting("the engine", self.gate.wait_open())
        current = self._generation() if self._generation is not None else None
        rebalances = self._rebalances
        for item in batch:
            if current is not None and item.generation is not None and item.generation != current:
                continue  # fetched before a rebalance: the partition's owner reads it again
            if self._tracker.full:
                await self._waiting("earlier events of their partitions", self._tracker.wait_for_room())
            if self._rebalances != rebalances:
                # A rebalance while this batch waited: the rest was fetched before it and is read
                # again from the committed offsets; tracking it now would let a later offset be
                # acked ahead of an earlier one nobody holds any more.
                return
            ticket = self._tracker.track(item.tp, item.offset, item.handle)
            if select is not None and not select(item):
                self._outbox.put(ticket, ())
                continue
            try:
                event = decode_event(item.value, self._limits)
            except ContractError as exc:
                self._outbox.put(ticket, self._dead_letter(item, exc))
                continue
            except Exception as exc:  # a decoder bug on odd input must not stop the worker either
                logger.exception("unexpected decode failure offset=%d", item.offset)
                error = ContractError("undecodable", f"{type(exc).__name__}: {exc}")
                self._outbox.put(ticket, self._dead_letter(item, error))
                continue
            if self._slots.locked():
                await self._waiting("a moderation slot", self._slots.acquire())
            else:
                await self._slots.acquire()  # free: returns at once
            if ticket.dropped:  # its partition was revoked while it waited for the slot
                self._slots.release()
                continue
            self._holding.add(ticket)
            metrics.IN_FLIGHT.inc()
            task = asyncio.create_task(self._moderate(ticket, item, event))
            self._tasks[ticket] = task
            task.add_done_callback(partial(self._forget, ticket))

    async def _waiting(self, what: str, waiter: Awaitable[Any]) -> None:
        """Await ``waiter``; say so in the log while it takes long (a stalled worker must show why).

        A timer, not a task per wait: events wait for a slot all the time at full speed."""
        loop = asyncio.get_running_loop()
        started = loop.time()
        timer: asyncio.TimerHandle | None = None

        def stalled() -> None:
            nonlocal timer
            logger.warning(
                "waiting for %s waited_s=%.0f in_flight=%d unacked=%d unpublished=%d engine_up=%s",
                what,
                loop.time() - started,
                len(self._holding),
                self._tracker.pending,
                self._outbox.queued,
                self.gate.is_open,
            )
            timer = loop.call_later(_STALL_LOG_S, stalled)

        timer = loop.call_later(_STALL_LOG_S, stalled)
        try:
            await waiter
        finally:
            timer.cancel()

    def revoke(self, partitions: Iterable[Hashable]) -> None:
        """Partitions taken away by a rebalance: stop their work, never ack them."""
        self._rebalances += 1
        self._drop(self._tracker.revoke(partitions))

    def assigned(self, partitions: Iterable[Hashable]) -> None:
        """A new assignment: forget partitions that are not in it (normally revoked already)."""
        self._rebalances += 1
        self._drop(self._tracker.retain(partitions))

    async def idle(self) -> None:
        """Until every event taken so far is moderated, published and acknowledged."""
        while self._tasks or self._tracker.pending or self._outbox.queued:
            if self._tasks:
                await asyncio.wait(list(self._tasks.values()))
            await self._outbox.wait_idle()
            await asyncio.sleep(0.01)

    async def drain(self, timeout_s: float) -> None:
        """At shutdown: let in-flight events finish and their outputs publish, for up to
        ``timeout_s``. What does not finish is not acked, so it is delivered again."""
        deadline = time.monotonic() + timeout_s
        if self._tasks:
            logger.info("draining in_flight_events=%d timeout_s=%.0f", len(self._tasks), timeout_s)
            await asyncio.wait(list(self._tasks.values()), timeout=timeout_s)
        runner = self._runner
        if runner is not None and not runner.done():
            try:
                await asyncio.wait_for(self._outbox.wait_idle(), max(0.1, deadline - time.monotonic()))
            except TimeoutError:
                logger.warning("outputs still unpublished at shutdown: they are delivered again")
            runner.cancel()
            await asyncio.gather(runner, return_exceptions=True)
        for task in list(self._tasks.values()):
            task.cancel()
        await self.gate.aclose()

    # -- per event ----------------------------------------------------------------------

    def _dead_letter(self, item: InputRecord, error: ContractError) -> list[OutputRecord]:
        logger.warning(
            'dead-letter topic="%s" partition=%d offset=%d reason="%s"',
            item.topic,
            item.partition,
            item.offset,
            error.reason,
        )
        metrics.DEAD_LETTERS.labels(error.reason).inc()
        return self._routing.for_dead_letter(item, error)

    async def _moderate(self, ticket: Ticket, item: InputRecord, event: ChatEvent) -> None:
        try:
            with telemetry.process_span(
                topic=item.topic,
                partition=item.partition,
                offset=item.offset,
                group=self._group,
                event_id=event.id,
                headers=item.headers,
            ):
                verdict = await moderate_one(event, self._engine, self._policy, gate=self.gate)
                trace = telemetry.OutputTrace(event.id, item.headers)
                records = self._routing.for_verdict(verdict, trace.headers, item)
        except asyncio.CancelledError:
            self._release(ticket)
            raise
        except BaseException as exc:  # EngineDead, or a bug: the worker restarts, nothing is acked
            self._release(ticket)
            logger.exception('moderation failed, stopping the worker event_id="%s"', event.id)
            await self._on_fatal(exc)
            return
        if ticket.dropped:
            self._release(ticket)
            return
        self._done[ticket] = (verdict, trace)
        self._outbox.put(ticket, records)

    # -- after publishing ----------------------------------------------------------------

    async def _published(self, tickets: list[Ticket]) -> None:
        now = time.time()
        for ticket in tickets:
            self._release(ticket)
            done = self._done.pop(ticket, None)
            if done is not None:
                verdict, trace = done
                trace.end()
                _count(verdict, now)
        for ticket in self._tracker.complete(tickets):
            await self._ack(ticket.handle)

    def _rejected(self, record: OutputRecord, ticket: Ticket, error: BaseException) -> OutputRecord:
        topic, partition = _split_tp(ticket.partition)
        return self._routing.for_rejected(
            record, topic=topic, partition=partition, offset=ticket.offset, error=error
        )

    def _release(self, ticket: Ticket) -> None:
        if ticket in self._holding:
            self._holding.discard(ticket)
            self._slots.release()
            metrics.IN_FLIGHT.dec()

    def _drop(self, tickets: list[Ticket]) -> None:
        for ticket in tickets:
            self._done.pop(ticket, None)
            task = self._tasks.pop(ticket, None)
            if task is not None:
                task.cancel()
            self._release(ticket)
        if tickets:
            logger.info("dropped events of revoked partitions count=%d", len(tickets))

    def _forget(self, ticket: Ticket, _: asyncio.Task[None]) -> None:
        self._tasks.pop(ticket, None)

    def _runner_stopped(self, task: asyncio.Task[None]) -> None:
        exc = None if task.cancelled() else task.exception()
        if exc is None:
            return
        logger.error("publishing failed, stopping the worker without acknowledging: %s", exc)
        self._fatal = asyncio.ensure_future(self._on_fatal(exc))


def _split_tp(tp: Hashable) -> tuple[str, int]:
    topic = getattr(tp, "topic", None)
    if topic is not None:
        return str(topic), int(tp.partition)  # type: ignore[attr-defined]
    pair: tuple[str, int] = tp  # type: ignore[assignment]
    return pair[0], pair[1]


_PROMPT_TOKENS = metrics.TOKENS.labels("prompt")
_COMPLETION_TOKENS = metrics.TOKENS.labels("completion")
_VERDICTS: dict[str, Any] = {}


def _count(verdict: Verdict, now: float) -> None:
    """Metrics of a published verdict (counted once the broker acknowledged it)."""
    outcome = verdict.outcome.value
    counter = _VERDICTS.get(outcome)
    if counter is None:
        counter = _VERDICTS[outcome] = metrics.VERDICTS.labels(outcome)
    counter.inc()
    metrics.END_TO_END.observe(max(0.0, now - verdict.event_timestamp))
    metrics.ENGINE_LATENCY.observe(verdict.timings.engine_ms / 1000)
    if verdict.error:
        metrics.ENGINE_ERRORS.labels(verdict.error.split(":", 1)[0]).inc()
    if verdict.prompt_tokens is not None:
        _PROMPT_TOKENS.observe(verdict.prompt_tokens)
    if verdict.completion_tokens is not None:
        _COMPLETION_TOKENS.observe(verdict.completion_tokens)
    if verdict.windows:
        metrics.WINDOWS.observe(len(verdict.windows))
