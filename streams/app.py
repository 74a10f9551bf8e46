"""The Faust application: topic declarations, the moderation agent and the worker.

Nothing here runs at import time: vLLM's engine process re-imports modules,
and the app is only built by :func:`create_app`.
"""

from __future__ import annotations

import logging
import tempfile
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import faust
from faust.transport.drivers import aiokafka as faust_aiokafka

from streams.agents import InputRecord, Moderator
from streams.config import Settings
from streams.engines.availability import EngineGate
from streams.engines.base import GuardEngine
from streams.health import HealthServer, broker_reachable
from streams.kafka_security import faust_credentials
from streams.lag import report_lag

__all__ = [
    "READY_LOG",
    "GuardWorker",
    "create_app",
    "engine_gate",
    "health_server",
    "new_app",
    "queued_batches",
]

logger = logging.getLogger(__name__)

READY_LOG = "guardstream assigned"


def engine_gate(settings: Settings, engine: GuardEngine) -> EngineGate:
    return EngineGate(
        engine,
        probe_interval_s=settings.engine.probe_interval_s,
        probe_max_interval_s=settings.engine.probe_max_interval_s,
        max_delay_s=settings.policy.outage_max_delay_s,
    )


class _ConsumerThread(faust_aiokafka.AIOKafkaConsumerThread):
    """Faust hard-codes the worker consumer's ``fetch_max_wait_ms`` (1.5 s); make it a setting."""

    fetch_max_wait_ms = 100

    def _create_worker_consumer(self, transport: Any) -> Any:
        consumer = super()._create_worker_consumer(transport)
        consumer._fetch_max_wait_ms = self.fetch_max_wait_ms  # noqa: SLF001 - read by start()
        return consumer


class _App(faust.App):
    fetch_max_wait_ms = 100

    def _new_transport(self) -> Any:
        transport = super()._new_transport()
        wait_ms = self.fetch_max_wait_ms

        class Thread(_ConsumerThread):
            fetch_max_wait_ms = wait_ms

        class Consumer(faust_aiokafka.Consumer):
            def _new_consumer_thread(self) -> Any:
                return Thread(self, loop=self.loop, beacon=self.beacon)

        transport.Consumer = Consumer  # type: ignore[misc]
        return transport


async def _ack(event: Any) -> None:
    event.ack()  # the message's last reference: its offset may be committed


async def queued_batches(app: faust.App, channel: Any, limit: int) -> AsyncIterator[list[Any]]:
    """The events Faust's conductor queued on an agent's ``channel``, up to ``limit`` at a time.

    What Faust's stream iterator does per event, done per batch: events fetched before the
    current rebalance generation (or during one) are skipped, never acked, so the partition's
    new owner reads them again; the rest are tracked as pending acks, and Faust's monitor sees
    their partitions being processed (its stall check reads that). Without the iterator's
    per-event trip through the event loop (``sleep(0)``), per-event sensors and context.

    Ends when Faust stops the agent (it throws ``StopAsyncIteration`` into the channel). An
    error thrown into the channel is raised after the events already taken are handed out, so
    no taken event goes untracked while later ones are acked.
    """
    queue = channel.queue
    consumer = app.consumer
    acking = app.topics.acking_topics
    inbound = app.monitor.stream_inbound_time
    while True:
        batch: list[Any] = []
        error: Exception | None = None
        try:
            batch.append(await channel.__anext__())  # waits; raises what was thrown into the channel
            while len(batch) < limit and not queue.empty():
                batch.append(queue.get_nowait())
        except StopAsyncIteration:
            return  # the agent is stopping: what was taken is not acked, so it is read again
        except Exception as exc:
            if not batch:
                raise
            error = exc
        if app.flow_control.is_active():  # else a rebalance is under way: the queue is cleared
            generation = app.consumer_generation_id
            events = []
            now = time.monotonic()
            for event in batch:
                message = getattr(event, "message", None)
                if message is None or message.generation_id != generation:
                    continue
                if not message.tracked and message.topic in acking:
                    message.tracked = True
                    consumer.track_message(message)
                inbound[message.tp] = now
                events.append(event)
            if events:
                yield events
        if error is not None:
            raise error


def new_app(settings: Settings) -> faust.App:
    """The worker's Faust app, with its consumer and producer settings, and no agent yet."""
    kafka = settings.kafka
    # No tables are kept, but Faust wants a data folder: keep it out of the working directory.
    datadir = Path(tempfile.gettempdir()) / "guardstream-faust" / kafka.group_id
    datadir.mkdir(parents=True, exist_ok=True)
    app = _App(
        kafka.group_id,
        broker=[f"kafka://{host.strip()}" for host in kafka.bootstrap.split(",")],
        broker_client_id=kafka.client_id,
        broker_credentials=faust_credentials(kafka),  # SASL / TLS, or None
        store="memory://",
        datadir=str(datadir),
        key_serializer="raw",
        value_serializer="raw",
        web_enabled=False,
        topic_disable_leader=True,
        consumer_auto_offset_reset=kafka.auto_offset_reset,
        broker_session_timeout=kafka.session_timeout_s,
        broker_heartbeat_interval=kafka.heartbeat_interval_s,
        broker_request_timeout=kafka.request_timeout_s,
        broker_commit_interval=kafka.commit_interval_s,
        producer_acks=-1,
        producer_linger_ms=kafka.producer_linger_ms,
        producer_max_batch_size=kafka.producer_max_batch_bytes,
        producer_max_request_size=kafka.producer_max_request_bytes,
        # The moderator tracks its own in-flight events and acks them in offset order; a
        # rebalance must not wait for them (an engine outage would stall the whole group).
        stream_wait_empty=False,
        autodiscover=False,
    )
    app.fetch_max_wait_ms = kafka.fetch_max_wait_ms
    return app


def create_app(settings: Settings, engine: GuardEngine, *, gate: EngineGate | None = None) -> faust.App:
    settings.check()
    gate = gate or engine_gate(settings, engine)
    app = new_app(settings)
    events_topic = app.topic(settings.topics.events, key_type=bytes, value_type=bytes)
    moderators: list[Moderator] = []

    @app.on_partitions_revoked.connect  # type: ignore[arg-type]
    async def on_revoked(sender: Any, revoked: Any, **_: Any) -> None:
        for moderator in moderators:
            moderator.revoke(revoked)

    @app.on_partitions_assigned.connect  # type: ignore[arg-type]
    async def on_assigned(sender: Any, assigned: Any, **_: Any) -> None:
        for moderator in moderators:
            moderator.assigned(assigned)
        logger.info("%s partitions=%d", READY_LOG, len(assigned))

    @app.timer(interval=settings.telemetry.lag_interval_s)  # type: ignore[untyped-decorator]
    async def lag() -> None:
        report_lag(app.consumer)

    @app.agent(events_topic, name="guardstream.moderate")
    async def moderate_events(stream: Any) -> None:
        # Whatever the agent's channel holds, as one batch, with manual acks (the Moderator
        # acks in offset order once the outputs are published). Not Faust's noack_take: its
        # buffer can deadlock after a rebalance (seen here: the stream stops delivering while
        # partitions still have events).
        moderator = Moderator(
            settings=settings,
            engine=engine,
            producer=app.producer,
            ack=_ack,
            on_fatal=app.crash,
            gate=gate,
            generation=lambda: app.consumer_generation_id,
        )
        moderators.append(moderator)
        try:
            async for events in queued_batches(app, stream.channel, settings.batch.max_in_flight):
                await moderator.admit([InputRecord.from_faust(event) for event in events])
        finally:
            moderators.remove(moderator)
            await moderator.drain(settings.batch.drain_timeout_s)

    return app


def health_server(settings: Settings, engine: GuardEngine, gate: EngineGate | None = None) -> HealthServer:
    async def broker() -> bool:
        return await broker_reachable(settings.kafka.bootstrap)

    async def engine_ready() -> bool:  # paused for an outage, or the probe fails now
        return (gate is None or gate.is_open) and await engine.ready()

    return HealthServer(
        host=settings.telemetry.http_host,
        port=settings.telemetry.http_port,
        checks={"engine": engine_ready, "broker": broker},
    )


class GuardWorker(faust.Worker):
    """Faust worker that loads the engine before joining the group and closes it last.

    With ``telemetry.http_port`` set it also serves /metrics, /healthz and /readyz
    (up before the engine loads, so a slow model load shows as "not ready").
    """

    def __init__(
        self,
        app: faust.App,
        engine: GuardEngine,
        settings: Settings,
        *,
        gate: EngineGate | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(app, **kwargs)
        self._engine = engine
        self._health = health_server(settings, engine, gate) if settings.telemetry.http_port else None

    async def on_first_start(self) -> None:
        if self._health is not None:
            await self._health.start()
        logger.info('starting engine engine="%s"', self._engine.name)
        await self._engine.start()
        await super().on_first_start()

    async def on_shutdown(self) -> None:
        await super().on_shutdown()
        await self._engine.aclose()
        if self._health is not None:
            await self._health.stop()

    def on_setup_root_logger(self, logger: logging.Logger, level: int) -> None:
        # Faust's start-up spinner sets the root logger to DEBUG, which makes every
        # debug call on the hot path build a record. No spinner, no DEBUG.
        return None
