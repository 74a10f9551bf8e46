"""The streaming pipeline against a real broker and real worker processes (recorded engine)."""

from __future__ import annotations

import base64
import time
from dataclasses import replace
from pathlib import Path

import orjson
import pytest

from streams.config import PolicyConfig
from streams.eval import load_benchmark
from streams.event import ChatEvent
from streams.sinks import validate

from .conftest import SettingsFactory, WorkerFactory, archive_ids, collect, send

pytestmark = pytest.mark.integration


def benchmark_events(shared: Path, stem: str, prefix: str) -> list[ChatEvent]:
    bench = load_benchmark(shared / "benchmark" / f"{stem}.json")
    return [
        ChatEvent(f"{prefix}-{s.index}", f"conv-{s.index % 13}", "u", time.time(), s.request, s.response)
        for s in bench.samples
    ]


def test_one_archive_verdict_per_event_and_block_alert_only_for_harmful(
    shared: Path, settings_factory: SettingsFactory, worker_factory: WorkerFactory
) -> None:
    settings = settings_factory(engine=f"recorded:{shared}/predictions/3B/XSTestReponseHarmful")
    events = benchmark_events(shared, "0_6_xstest_response_harmful", "xs")
    worker_factory(settings)
    send(settings, events)

    archive = collect(settings, settings.topics.archive, count=len(events))
    assert archive_ids(archive) == {e.id for e in events}
    by_id = {r["value"]["event_id"]: r["value"] for r in archive}
    for record in archive:
        validate("archive", record["value"])
        assert record["headers"]["guardstream-event-id"] == record["value"]["event_id"].encode()
        assert record["key"] == record["value"]["conversation_id"].encode()
    harmful = {i for i, v in by_id.items() if v["outcome"] == "harmful"}
    undecided = {i for i, v in by_id.items() if v["outcome"] in {"unparsed", "engine_error"}}
    assert harmful and len(harmful) < len(events)  # the set has both kinds
    assert all(v["raw"] for v in by_id.values())
    assert all(v["reasoning"] for v in by_id.values() if "# Task" in v["raw"])

    blocks = collect(settings, settings.topics.block, count=len(harmful | undecided))
    alerts = collect(settings, settings.topics.alerts, count=len(harmful | undecided))
    assert {r["value"]["event_id"] for r in blocks} == harmful | undecided  # fail_closed default
    assert {r["value"]["event_id"] for r in alerts} == harmful | undecided
    for record in blocks:
        validate("block", record["value"])
        assert record["value"]["reason"]
    for record in alerts:
        validate("alert", record["value"])
    # nothing else arrives afterwards
    assert len(collect(settings, settings.topics.block, idle_s=2)) == len(blocks)


BAD_INPUTS: dict[str, bytes] = {
    "not_json": b"this is not json",
    "invalid_utf8": b'{"id": "x\xff\xfe"}',
    "missing_field": orjson.dumps({"id": "m1", "conversation_id": "c", "user_id": "u", "timestamp": 1}),
    "wrong_type": orjson.dumps(
        {"id": "w1", "conversation_id": "c", "user_id": "u", "timestamp": 1, "request": 7}
    ),
    "oversize": orjson.dumps(
        {"id": "o1", "conversation_id": "c", "user_id": "u", "timestamp": 1, "request": "x" * 5000}
    ),
    "bad_timestamp": orjson.dumps(
        {"id": "t1", "conversation_id": "c", "user_id": "u", "timestamp": "soon", "request": "hi"}
    ),
}


def test_bad_input_goes_to_the_dlq_and_the_agent_keeps_running(
    shared: Path, settings_factory: SettingsFactory, worker_factory: WorkerFactory
) -> None:
    settings = settings_factory(
        engine=f"recorded:{shared}/predictions/3B/SimpleSafetyTests",
        policy=PolicyConfig(max_text_chars=4000),
    )
    good = benchmark_events(shared, "0_0_SimpleSafetyTests", "ss")[:20]
    worker = worker_factory(settings)
    send(settings, [*good[:10], *BAD_INPUTS.values(), *good[10:]])

    dead = collect(settings, settings.topics.dlq, count=len(BAD_INPUTS))
    by_reason = {r["value"]["error"]["reason"]: r["value"] for r in dead}
    assert set(by_reason) == set(BAD_INPUTS)
    for reason, record in by_reason.items():
        validate("dlq", record)
        assert base64.b64decode(record["value_b64"]) == BAD_INPUTS[reason]  # original bytes kept
        assert record["error"]["message"]
        assert record["source"]["topic"] == settings.topics.events
    assert archive_ids(collect(settings, settings.topics.archive, count=len(good))) == {e.id for e in good}
    # still alive and still moderating after the bad input
    more = benchmark_events(shared, "0_0_SimpleSafetyTests", "late")[:5]
    send(settings, more)
    archive = collect(settings, settings.topics.archive, count=len(good) + len(more))
    assert {e.id for e in more} <= archive_ids(archive)
    assert worker.alive()


def test_sigkill_mid_stream_then_restart_leaves_no_event_without_verdict(
    shared: Path, settings_factory: SettingsFactory, worker_factory: WorkerFactory
) -> None:
    settings = settings_factory(engine=f"recorded:{shared}/predictions/3B/HarmBenchResponse")
    settings = replace(settings, batch=replace(settings.batch, max_in_flight=8))
    events = [
        replace(e, id=f"{e.id}-r{round_}")
        for round_ in range(3)
        for e in benchmark_events(shared, "0_5_harmbench_response", "hb")
    ]
    first = worker_factory(settings)
    send(settings, events)
    seen = collect(settings, settings.topics.archive, count=100)
    first.kill()  # SIGKILL: no drain, no commit
    partial = archive_ids(collect(settings, settings.topics.archive, idle_s=1.5))
    assert len(partial) < len(events), "the worker finished before it was killed: nothing was tested"
    assert len(seen) >= 100

    worker_factory(settings)  # same group: resumes from the committed offsets
    archive = collect(settings, settings.topics.archive, idle_s=5, timeout_s=180)
    assert archive_ids(archive) == {e.id for e in events}
