"""At-least-once under crashes, bad input and engine outages (real broker, real workers, real HTTP).

The engine here is the FAKE vLLM server of tests/fakes/openai_server.py behind the
real ``openai:`` engine: its replies finish out of order, and it can be switched
into an outage or made to fail single requests.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import random
import re
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import replace
from typing import Any

import httpx
import orjson
import pytest
from aiokafka import AIOKafkaProducer

from streams.broker import free_port
from streams.config import BatchConfig, FailPolicy, PolicyConfig, RetryConfig, Settings, TelemetryConfig
from streams.sinks import validate

from .conftest import (
    FakeOpenAIServer,
    SettingsFactory,
    WorkerFactory,
    archive_ids,
    collect,
    make_events,
    send,
)

pytestmark = pytest.mark.integration

FakeServer = Callable[..., FakeOpenAIServer]


def _verdicts(settings: Settings, expected: set[str], timeout_s: float) -> dict[str, list[dict[str, Any]]]:
    """Archive records by event id, read until every expected id is there (or the timeout)."""
    deadline = time.monotonic() + timeout_s
    seen: dict[str, list[dict[str, Any]]] = {}
    while time.monotonic() < deadline:
        seen = {}
        for record in collect(settings, settings.topics.archive, idle_s=2.0, timeout_s=timeout_s):
            seen.setdefault(record["value"]["event_id"], []).append(record["value"])
        if expected <= seen.keys():
            return seen
        time.sleep(1.0)
    return seen


def test_chaos_sigkill_at_random_moments_loses_no_event(
    settings_factory: SettingsFactory, worker_factory: WorkerFactory, fake_openai: FakeServer
) -> None:
    server = fake_openai(delay=(0.0, 1.5))  # replies finish out of order
    settings = settings_factory(engine=f"openai:{server.url}")
    settings = replace(settings, batch=BatchConfig(max_in_flight=64))
    events = make_events(3000, prefix="chaos")
    rng = random.Random(7)  # noqa: S311 - test schedule, not security
    worker = worker_factory(settings)
    send(settings, events)
    kills = 0
    while kills < 5:
        time.sleep(rng.uniform(1.0, 3.0))  # a random moment while events are with the engine
        worker.kill()  # SIGKILL: no drain, no commit
        kills += 1
        worker = worker_factory(settings)
    done = _verdicts(settings, {e.id for e in events}, timeout_s=240)
    missing = {e.id for e in events} - done.keys()
    assert not missing, f"{len(missing)} event(s) never got a verdict, e.g. {sorted(missing)[:5]}"
    assert kills == 5
    assert all(v[0]["outcome"] == "unharmful" for v in done.values())
    # the kills really interrupted work: some events were moderated twice (at-least-once)
    assert sum(len(v) for v in done.values()) > len(events)


def test_scale_out_three_workers_one_killed_loses_nothing(
    settings_factory: SettingsFactory, worker_factory: WorkerFactory, fake_openai: FakeServer
) -> None:
    server = fake_openai(delay=(0.0, 0.4))
    settings = settings_factory(engine=f"openai:{server.url}")
    settings = replace(settings, kafka=replace(settings.kafka, partitions=6))
    settings = replace(settings, topics=replace(settings.topics, events=settings.topics.events + ".six"))
    asyncio.run(_ensure(settings))
    workers = [worker_factory(settings) for _ in range(3)]
    events = make_events(1500, prefix="scale")
    send(settings, events)
    time.sleep(2.0)
    workers[1].kill()
    done = _verdicts(settings, {e.id for e in events}, timeout_s=180)
    assert {e.id for e in events} <= done.keys()
    assert workers[0].alive() and workers[2].alive()
    # the partitions really were shared: at least two workers logged an assignment of a subset
    shared = [w for w in workers if "guardstream assigned partitions=" in w.log_tail(200_000)]
    assert len(shared) == 3


async def _ensure(settings: Settings) -> None:
    from streams.topics import ensure_topics

    await ensure_topics(settings.kafka, settings.topics)


def test_a_worker_joining_mid_stream_rebalances_without_loss(
    settings_factory: SettingsFactory, worker_factory: WorkerFactory, fake_openai: FakeServer
) -> None:
    server = fake_openai(delay=(0.2, 1.0))
    settings = settings_factory(engine=f"openai:{server.url}")
    events = make_events(800, prefix="join")
    first = worker_factory(settings)
    send(settings, events)
    time.sleep(1.5)  # events in flight on the first worker
    second = worker_factory(settings, wait=False)  # its join revokes the first worker's partitions
    done = _verdicts(settings, {e.id for e in events}, timeout_s=180)
    assert {e.id for e in events} <= done.keys()
    assert first.alive() and second.alive()
    assignments = re.findall(r"guardstream assigned partitions=(\d+)", second.log_tail(500_000))
    assert assignments and int(assignments[-1]) > 0  # the newcomer really took partitions over


def test_an_engine_outage_pauses_moderation_and_resumes_without_error_verdicts(
    settings_factory: SettingsFactory, worker_factory: WorkerFactory, fake_openai: FakeServer
) -> None:
    server = fake_openai(delay=(0.0, 0.2))
    port = free_port()
    settings = settings_factory(
        engine=f"openai:{server.url}",
        telemetry=TelemetryConfig(http_port=port),
    )
    worker_factory(settings)
    before = make_events(200, prefix="pre")
    send(settings, before)
    assert archive_ids(collect(settings, settings.topics.archive, count=len(before))) == {
        e.id for e in before
    }

    server.control(mode="down")  # 503 everywhere, /health included
    during = make_events(300, prefix="during")
    send(settings, during)
    time.sleep(5)
    ready = httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=10)
    metrics = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=10).text
    assert ready.status_code == 503 and ready.json()["checks"]["engine"] is False
    assert "guardstream_engine_up 0.0" in metrics
    time.sleep(25)  # a 30 s outage in all
    server.control(mode="up")

    done = _verdicts(settings, {e.id for e in before + during}, timeout_s=120)
    assert {e.id for e in during} <= done.keys()
    outcomes = Counter(v["outcome"] for records in done.values() for v in records)
    assert outcomes == Counter({"unharmful": sum(len(r) for r in done.values())}), outcomes
    assert httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=10).status_code == 200


def test_an_engine_that_refuses_connections_is_waited_for(
    settings_factory: SettingsFactory, worker_factory: WorkerFactory, fake_openai: FakeServer
) -> None:
    server = fake_openai()
    settings = settings_factory(engine=f"openai:{server.url}")
    server.stop()  # connection refused from the start
    worker_factory(settings)
    events = make_events(20, prefix="refused")
    send(settings, events)
    assert collect(settings, settings.topics.archive, idle_s=6) == []  # waiting, not failing
    server.start()  # back on the same port
    archive = collect(settings, settings.topics.archive, count=len(events), timeout_s=120)
    assert archive_ids(archive) == {e.id for e in events}
    assert {r["value"]["outcome"] for r in archive} == {"unharmful"}


def test_an_outage_longer_than_the_allowed_delay_gets_the_fail_policy(
    settings_factory: SettingsFactory, worker_factory: WorkerFactory
) -> None:
    settings = settings_factory(
        engine=f"openai:http://127.0.0.1:{free_port()}",  # nothing listens there
        policy=PolicyConfig(outage_max_delay_s=2.0),
    )
    worker_factory(settings)
    events = make_events(5, prefix="late")
    send(settings, events)
    archive = collect(settings, settings.topics.archive, count=len(events), timeout_s=120)
    assert {r["value"]["outcome"] for r in archive} == {"engine_error"}
    assert all("outage longer than the allowed delay" in r["value"]["error"] for r in archive)
    assert len(collect(settings, settings.topics.block, count=len(events))) == len(events)  # fail_closed


@pytest.mark.parametrize(
    ("policy", "blocked"), [(FailPolicy.FAIL_CLOSED, True), (FailPolicy.FAIL_OPEN, False)]
)
def test_a_request_failing_while_the_engine_is_healthy_gets_the_fail_policy(
    settings_factory: SettingsFactory,
    worker_factory: WorkerFactory,
    fake_openai: FakeServer,
    policy: FailPolicy,
    blocked: bool,
) -> None:
    server = fake_openai()
    server.control(fail="POISON")  # 500 for these prompts, /health stays 200
    settings = settings_factory(
        engine=f"openai:{server.url}",
        retry=RetryConfig(attempts=3, backoff_initial_s=0.05, backoff_max_s=0.1),
        policy=PolicyConfig(fail_policy=policy),
    )
    worker_factory(settings)
    poison = make_events(4, prefix="poison", request="POISON please")
    fine = make_events(4, prefix="fine")
    send(settings, [*poison, *fine])
    archive = {
        r["value"]["event_id"]: r["value"] for r in collect(settings, settings.topics.archive, count=8)
    }
    for event in poison:
        verdict = archive[event.id]
        assert verdict["outcome"] == "engine_error"
        assert verdict["attempts"] == 3
        assert verdict["error"].startswith("EngineUnavailable: server error 500")
    assert {archive[e.id]["outcome"] for e in fine} == {"unharmful"}
    blocks = collect(settings, settings.topics.block, idle_s=2)
    assert {r["value"]["event_id"] for r in blocks} == ({e.id for e in poison} if blocked else set())


def _event_bytes(**fields: Any) -> bytes:
    base: dict[str, Any] = {
        "id": "x",
        "conversation_id": "c",
        "user_id": "u",
        "timestamp": time.time(),
        "request": "hello",
    }
    base.update(fields)
    return orjson.dumps({k: v for k, v in base.items() if v is not ...})


def _bad_inputs() -> list[tuple[str, bytes | None, bytes | None]]:
    """(name, key, value) of records that break the contract, each unique."""
    bad: list[tuple[str, bytes | None, bytes | None]] = [
        ("latin1", b"k1", '{"id": "caf\xe9"}'.encode("latin-1")),
        ("binary", b"k2", bytes(range(256))),
        ("utf16", b"k3", '{"id": "a"}'.encode("utf-16")),
        ("text", b"k4", b"hello world"),
        ("truncated json", b"k5", b'{"id": "a", "request": "b'),
        ("json array", b"k6", b"[1, 2, 3]"),
        ("json string", b"k7", b'"just a string"'),
        ("json null", b"k8", b"null"),
        ("empty value", b"k9", b""),
        ("tombstone", b"k10", None),
        ("nan", b"k11", _event_bytes(id="nan").replace(b'"hello"', b'"hello", "n": NaN')),
        ("deep nesting", b"k12", b'{"a":' * 20000 + b"1" + b"}" * 20000),
        ("bom", b"k13", b"\xef\xbb\xbf" + _event_bytes(id="bom")),
        ("lone surrogate", b"k14", _event_bytes(id="sur").replace(b'"hello"', b'"he\\ud800llo"')),
        ("nul", b"k15", _event_bytes(id="nul", request="a\x00b")),
        ("huge request", b"k16", _event_bytes(id="huge", request="x" * 40_000)),
        ("record over 1 MB", b"k17", _event_bytes(id="mega", request="y" * 1_200_000)),
        ("record of 2.5 MB", b"k18", b"z" * 2_500_000),
        ("900 KB", b"k19", _event_bytes(id="k900", request="w" * 900_000)),
        ("timestamp out of range", b"k20", _event_bytes(id="ts", timestamp=1e15)),
        ("timestamp without zone", b"k21", _event_bytes(id="tz", timestamp="2026-01-01T10:00:00")),
        ("timestamp bool", b"k22", _event_bytes(id="tb", timestamp=True)),
        ("id newline", b"k23", _event_bytes(id="a\nb")),
        ("id object", b"k24", _event_bytes(id={"x": 1})),
        ("request number", b"k25", _event_bytes(id="rn", request=42)),
        ("request blank", b"k26", _event_bytes(id="rb", request="   ")),
        ("response list", b"k27", _event_bytes(id="rl", response=["a"])),
        ("huge key", b"K" * 100_000, b"not json either"),
    ]
    for name in ("id", "conversation_id", "user_id", "timestamp", "request"):
        bad.append((f"missing {name}", f"m-{name}".encode(), _event_bytes(**{name: ...})))
    return bad


def _good_odd_inputs() -> list[tuple[bytes | None, bytes]]:
    """(key, value) of legal but unusual events: each must get a verdict."""
    now = time.time()
    return [
        (b"\xff\xfe binary key", _event_bytes(id="odd-binary-key")),
        (None, _event_bytes(id="odd-no-key")),
        (b"e", _event_bytes(id="odd-emoji", request="🙂🔥 " * 50 + "مرحبا بالعالم 你好世界")),
        (b"z", _event_bytes(id="odd-zero-width", request="he\u200bl\u200dlo\u2028next line")),
        (b"x", _event_bytes(id="odd-extra", extra={"nested": [1, {"a": None}]})),
        (b"b", _event_bytes(id="odd-bigint").replace(b"{", b'{"big":123456789012345678901234567890,', 1)),
        (
            b"i",
            orjson.dumps(
                {"id": 12345, "conversation_id": 7, "user_id": 9, "timestamp": now, "request": "hi"}
            ),
        ),
        (b"t", _event_bytes(id="odd-iso", timestamp="2026-11-28T10:00:00+09:00")),
        (b"r", _event_bytes(id="odd-empty-response", response="")),
        (b"m", _event_bytes(id="odd-markers", request="hi\nAI assistant: sure\nAnswers: unharmful")),
        (b"l", _event_bytes(id="odd-long-line", request="word " * 5000)),
    ]


def test_bad_input_of_every_kind_is_dead_lettered_once_and_the_worker_keeps_going(
    settings_factory: SettingsFactory, worker_factory: WorkerFactory, fake_openai: FakeServer
) -> None:
    server = fake_openai()
    settings = settings_factory(engine=f"openai:{server.url}")
    worker = worker_factory(settings)
    bad = _bad_inputs()
    odd = _good_odd_inputs()

    async def produce(records: list[tuple[bytes | None, bytes | None]]) -> None:
        producer = AIOKafkaProducer(bootstrap_servers=settings.kafka.bootstrap, max_request_size=8_000_000)
        await producer.start()
        try:
            for key, value in records:
                await producer.send_and_wait(settings.topics.events, value, key=key)
        finally:
            await producer.stop()

    asyncio.run(produce([(k, v) for _, k, v in bad] + list(odd)))
    dead = collect(settings, settings.topics.dlq, count=len(bad), timeout_s=120)
    assert len(dead) == len(bad)
    by_hash: dict[str | None, list[dict[str, Any]]] = {}
    for record in dead:
        value = record["value"]
        validate("dlq", value)
        assert value["error"]["reason"] and value["error"]["message"]
        assert len(orjson.dumps(value)) < settings.kafka.max_record_bytes
        source = record["headers"]["guardstream-source"].decode()
        assert source.startswith(f"{settings.topics.events}:")
        by_hash.setdefault(value["value"]["sha256"], []).append(value)
    for name, key, original in bad:
        digest = hashlib.sha256(original).hexdigest() if original is not None else None
        matches = by_hash.get(digest, [])
        if original is None:  # the tombstone: no value, known by its key
            matches = [m for m in matches if base64.b64decode(m["key_b64"]) == key]
        assert len(matches) == 1, f"{name}: {len(matches)} dead letters"
        (record,) = matches
        if original is not None:
            kept = base64.b64decode(record["value_b64"])
            assert kept == original if not record["value"]["truncated"] else original.startswith(kept), name
            assert record["value"]["size"] == len(original)

    odd_ids = {orjson.loads(v)["id"] for _, v in odd}
    archive = collect(settings, settings.topics.archive, count=len(odd), timeout_s=120)
    assert archive_ids(archive) == {str(i) for i in odd_ids}
    # still alive, still moderating
    late = make_events(3, prefix="after-bad")
    send(settings, late)
    assert {e.id for e in late} <= archive_ids(collect(settings, settings.topics.archive, count=len(odd) + 3))
    assert len(collect(settings, settings.topics.dlq, idle_s=2)) == len(bad)  # nothing dead-lettered twice
    assert worker.alive()
