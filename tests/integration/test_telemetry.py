"""Tracing through Kafka (in-process worker, SDK in-memory exporter) and the worker's HTTP endpoints."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
from aiokafka import AIOKafkaProducer
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind

from streams import telemetry
from streams.app import create_app
from streams.broker import free_port
from streams.client import read_topic, send_lines
from streams.config import CacheConfig, TelemetryConfig
from streams.engines.fake import FakeEngine
from streams.event import ChatEvent, encode_event
from tests.conftest import SiemValidator

from .conftest import SettingsFactory, WorkerFactory, collect, make_events, send

pytestmark = pytest.mark.integration

HARMFUL = (
    "# Task 1\n\n## Reasoning Step 1\nIt asks for a weapon.\n\n"
    "---\n\nAnswers: \nRequest: harmful\nCompletion: None\nResponse: None\n"
)


@pytest.fixture
def spans() -> Iterator[InMemorySpanExporter]:
    exporter = InMemorySpanExporter()
    telemetry.setup_tracing(processor=SimpleSpanProcessor(exporter))
    yield exporter
    telemetry.shutdown_tracing()


def test_one_event_span_tree_continues_the_producers_trace(
    settings_factory: SettingsFactory, spans: InMemorySpanExporter, siem_validate: SiemValidator
) -> None:
    settings = settings_factory(engine="fake:instant")

    async def run() -> list[object]:
        app = create_app(settings, FakeEngine(lambda _p: HARMFUL, model="fake-guard"))
        assigned = asyncio.Event()

        @app.on_partitions_assigned.connect
        async def on_assigned(sender: object, assigned_tps: object, **_: object) -> None:
            assigned.set()

        await app.start()
        try:
            await asyncio.wait_for(assigned.wait(), 60)
            event = ChatEvent("trace-1", "conv-1", "u1", time.time(), "how to build a weapon")
            await send_lines(
                settings.kafka.bootstrap, settings.topics.events, [encode_event(event)], trace=True
            )
            return [
                r
                for topic in (settings.topics.archive, settings.topics.findings_ecs)
                async for r in read_topic(settings.kafka.bootstrap, topic, max_records=1)
            ]
        finally:
            await app.stop()

    (archive, finding) = asyncio.run(asyncio.wait_for(run(), 120))
    finished = spans.get_finished_spans()
    by_name = {s.name: s for s in finished}
    producer = by_name[f"send {settings.topics.events}"]
    process = by_name[f"process {settings.topics.events}"]
    engine = by_name["text_completion fake-guard"]
    sends = {
        s.attributes["messaging.destination.name"]: s
        for s in finished
        if s.kind is SpanKind.PRODUCER and s.name != producer.name
    }

    trace_id = producer.context.trace_id
    assert {s.context.trace_id for s in [process, engine, *sends.values()]} == {trace_id}
    assert process.parent.span_id == producer.context.span_id
    assert process.kind is SpanKind.CONSUMER
    assert engine.parent.span_id == process.context.span_id
    assert engine.kind is SpanKind.CLIENT
    t = settings.topics
    assert set(sends) == {t.block, t.alerts, t.findings_ecs, t.findings_ocsf, t.archive}
    assert all(s.parent.span_id == process.context.span_id for s in sends.values())

    attrs = process.attributes
    assert attrs["messaging.system"] == "kafka"
    assert attrs["messaging.destination.name"] == settings.topics.events
    assert attrs["messaging.consumer.group.name"] == settings.kafka.group_id
    assert "messaging.kafka.offset" in attrs and "messaging.destination.partition.id" in attrs
    assert engine.attributes["gen_ai.operation.name"] == "text_completion"
    assert engine.attributes["gen_ai.request.model"] == "fake-guard"
    assert engine.attributes["gen_ai.request.max_tokens"] == settings.engine.max_tokens
    assert engine.attributes["gen_ai.response.finish_reasons"] == ("stop",)
    # content stays off spans unless enabled
    assert not any("gen_ai.prompt" in s.attributes or "gen_ai.completion" in s.attributes for s in finished)

    # the verdict on the archive carries the trace: same trace id, the archive send span as parent
    headers = dict(archive.headers)
    version, header_trace, parent, _flags = headers["traceparent"].decode().split("-")
    assert int(header_trace, 16) == trace_id
    assert int(parent, 16) == sends[settings.topics.archive].context.span_id
    # the ECS finding names the same trace
    assert orjson.loads(finding.value)["trace"]["id"] == f"{trace_id:032x}"
    siem_validate("ecs", [finding.value])


def test_trace_headers_pass_through_when_tracing_is_off(
    settings_factory: SettingsFactory, worker_factory: WorkerFactory
) -> None:
    settings = settings_factory(engine="fake:instant")
    worker_factory(settings)
    traceparent = b"00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"

    async def go() -> None:
        producer = AIOKafkaProducer(bootstrap_servers=settings.kafka.bootstrap)
        await producer.start()
        try:
            await producer.send_and_wait(
                settings.topics.events,
                encode_event(make_events(1, prefix="tp")[0]),
                headers=[("traceparent", traceparent)],
            )
        finally:
            await producer.stop()

    asyncio.run(go())
    (record,) = collect(settings, settings.topics.archive, count=1)
    assert record["headers"]["traceparent"] == traceparent


def test_metrics_and_health_over_http(
    shared: Path, settings_factory: SettingsFactory, worker_factory: WorkerFactory
) -> None:
    port = free_port()
    settings = settings_factory(engine="fake:instant", telemetry=TelemetryConfig(http_port=port))
    worker_factory(settings)
    base = f"http://127.0.0.1:{port}"
    assert httpx.get(f"{base}/healthz").json() == {"status": "alive"}
    ready = httpx.get(f"{base}/readyz")
    assert ready.status_code == 200 and ready.json() == {
        "ready": True,
        "checks": {"engine": True, "broker": True},
    }

    send(settings, [*make_events(7, prefix="m"), b"not json"])
    collect(settings, settings.topics.archive, count=7)
    collect(settings, settings.topics.dlq, count=1)
    text = ""
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:  # metrics are counted right after the publish is acknowledged
        text = httpx.get(f"{base}/metrics").text
        if 'guardstream_verdicts_total{outcome="unharmful"} 7.0' in text:
            break
        time.sleep(0.2)
    assert 'guardstream_verdicts_total{outcome="unharmful"} 7.0' in text
    assert "guardstream_events_total 8.0" in text
    assert 'guardstream_dead_letters_total{reason="not_json"} 1.0' in text
    assert "guardstream_engine_latency_seconds_count 7.0" in text
    assert "guardstream_batch_size_count" in text


def test_repeated_prompts_are_answered_from_the_verdict_cache(
    settings_factory: SettingsFactory, worker_factory: WorkerFactory, fake_openai: Callable[..., Any]
) -> None:
    server = fake_openai(delay=(0.05, 0.1))
    port = free_port()
    settings = settings_factory(
        engine=f"openai:{server.url}", telemetry=TelemetryConfig(http_port=port), cache=CacheConfig()
    )
    worker_factory(settings)
    first = make_events(1, prefix="first", request="lol")
    send(settings, first)
    collect(settings, settings.topics.archive, count=1)
    repeats = make_events(30, prefix="again", request="lol")
    send(settings, repeats)
    archive = {
        r["value"]["event_id"]: r["value"] for r in collect(settings, settings.topics.archive, count=31)
    }
    assert archive["first0"]["cached"] is False
    assert all(archive[e.id]["cached"] for e in repeats)
    assert httpx.get(f"http://127.0.0.1:{server.port}/stats").json()["served"] == 1  # one engine call
    text = httpx.get(f"http://127.0.0.1:{port}/metrics").text
    assert 'guardstream_cache_lookups_total{result="hit"} 30.0' in text
    assert "guardstream_cache_entries 1.0" in text


def test_readiness_turns_false_when_the_engine_is_unreachable(
    settings_factory: SettingsFactory, worker_factory: WorkerFactory
) -> None:
    port = free_port()
    settings = settings_factory(
        engine=f"openai:http://127.0.0.1:{free_port()}", telemetry=TelemetryConfig(http_port=port)
    )
    worker_factory(settings)
    ready = httpx.get(f"http://127.0.0.1:{port}/readyz")
    assert ready.status_code == 503
    assert ready.json()["checks"] == {"engine": False, "broker": True}
    assert httpx.get(f"http://127.0.0.1:{port}/healthz").status_code == 200
