"""The verdict store on a real PostgreSQL (embedded) fed by a real broker and real worker/store processes."""

from __future__ import annotations

import asyncio
import hashlib
import subprocess
import sys
import time
import uuid
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

import orjson
import psycopg
import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition

from loadtest.verdicts import archive_records, replay_record
from streams.broker import EmbeddedBroker
from streams.client import send_lines
from streams.config import Settings
from streams.engines.recorded import load_recordings
from streams.eval import load_benchmark
from streams.event import encode_event
from streams.process import WorkerProcess
from streams.secret import Secret
from streams.store.database import Database, open_database
from streams.store.migrate import current_revision, upgrade
from streams.store.records import trace_id_from_headers
from streams.store.sink import StoreSink
from streams.topics import ensure_named_topics
from tests.cli import ROOT, cli_env

from .conftest import SettingsFactory, WorkerFactory, collect
from .pg import count, create_database, log_text, postgres, store_url, wait_until, with_dbname
from .test_pipeline import benchmark_events

pytestmark = pytest.mark.integration
__all__ = ["postgres", "store_url"]  # fixtures used here

Headers = list[tuple[str, bytes]]


def store_settings(settings: Settings, url: str, **store: Any) -> Settings:
    run = uuid.uuid4().hex[:8]
    return replace(
        settings,
        store=replace(
            settings.store,
            url=Secret(url),
            group_id=f"store-{run}",
            backoff_initial_s=0.2,
            backoff_max_s=1.0,
            **store,
        ),
    )


def produce(bootstrap: str, topic: str, records: Sequence[tuple[bytes, bytes, Headers]]) -> None:
    async def run() -> None:
        producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all", linger_ms=5)
        await producer.start()
        try:
            futures = [
                await producer.send(topic, value, key=key, headers=headers) for key, value, headers in records
            ]
            await asyncio.gather(*futures)
        finally:
            await producer.stop()

    asyncio.run(run())


def committed_total(settings: Settings, topic: str) -> int:
    """Sum of the store group's committed offsets on ``topic`` (= records it has stored)."""

    async def run() -> int:
        consumer = AIOKafkaConsumer(
            bootstrap_servers=settings.kafka.bootstrap, group_id=settings.store.group_id
        )
        await consumer.start()
        try:
            total = 0
            for p in range(settings.kafka.partitions):
                total += await consumer.committed(TopicPartition(topic, p)) or 0
            return total
        finally:
            await consumer.stop()

    return asyncio.run(run())


def start_store(settings: Settings, log: Path) -> WorkerProcess:
    return WorkerProcess(settings, log_path=log, args=("store",)).start()


def trace_of(record: dict[str, Any]) -> str:
    """The trace id :func:`record_bytes` gives a record (derived from its event and run)."""
    return hashlib.sha256(f"{record['event_id']}/{record.get('run_id', '')}".encode()).hexdigest()[:32]


def record_bytes(records: Sequence[dict[str, Any]]) -> list[tuple[bytes, bytes, Headers]]:
    """Kafka (key, value, headers) as the worker publishes them: event id and traceparent headers."""
    out = []
    for r in records:
        trace = f"00-{trace_of(r)}-{uuid.uuid4().hex[:16]}-01".encode()
        headers = [("guardstream-event-id", r["event_id"].encode()), ("traceparent", trace)]
        out.append((r["conversation_id"].encode(), orjson.dumps(r), headers))
    return out


def xstest_live_and_replay(
    shared: Path, run_id: str, *, live_at: float, spacing_s: float = 0.001
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """XSTest's recorded 1B outputs as live archive records, and a 3B replay of them as run ``run_id``."""
    bench = load_benchmark(shared / "benchmark" / "0_6_xstest_response_harmful.json")

    def records(size: str, **at: float) -> list[dict[str, Any]]:
        outputs = load_recordings(shared / "predictions" / size / "XSTestReponseHarmful").outputs
        return archive_records(bench.samples, outputs, prefix="xs", model=f"GuardReasoner-{size}", **at)

    live = records("1B", moderated_at=live_at, spacing_s=spacing_s)
    by_id = {r["event_id"]: r for r in live}
    replayed = [
        replay_record(r, run_id, by_id.get(r["event_id"])) for r in records("3B", moderated_at=time.time())
    ]
    return live, replayed


def test_worker_then_store_every_verdict_exactly_once(
    shared: Path,
    settings_factory: SettingsFactory,
    worker_factory: WorkerFactory,
    store_url: str,
    tmp_path: Path,
) -> None:
    settings = store_settings(
        settings_factory(engine=f"recorded:{shared}/predictions/3B/SimpleSafetyTests"), store_url
    )
    events = benchmark_events(shared, "0_0_SimpleSafetyTests", "sst")
    worker_factory(settings)
    lines = [encode_event(e) for e in events]
    asyncio.run(send_lines(settings.kafka.bootstrap, settings.topics.events, lines, trace=True))
    archive = collect(settings, settings.topics.archive, count=len(events))

    store = start_store(settings, tmp_path / "store.log")
    try:
        wait_until(lambda: count(store_url) >= len(events), timeout_s=60, what="every verdict stored")
        # at-least-once: the same verdicts arrive again (a re-delivered batch) and must collapse
        again = archive[:25]
        produce(
            settings.kafka.bootstrap,
            settings.topics.archive,
            [(r["key"], orjson.dumps(r["value"]), list(r["headers"].items())) for r in again],
        )
        total = len(archive) + len(again)
        wait_until(
            lambda: committed_total(settings, settings.topics.archive) == total,
            timeout_s=30,
            what=f"the store committed all {total} archive records",
        )
        assert store.alive()
    finally:
        store.stop()

    with psycopg.connect(store_url) as conn:
        rows = conn.execute(
            "SELECT event_id, run_id, outcome, answer_request, answer_completion, answer_response, trace_id, "
            "record FROM verdicts"
        ).fetchall()
        rejects = conn.execute("SELECT count(*) FROM store_rejects").fetchone()
    assert len(rows) == len(events)  # once each, duplicates collapsed
    assert {r[0] for r in rows} == {e.id for e in events}
    assert rejects == (0,)
    by_id = {r["value"]["event_id"]: r for r in archive}
    for event_id, run_id, outcome, request, completion, response, trace_id, record in rows:
        sent = by_id[event_id]
        assert run_id == ""
        assert record == sent["value"]  # the whole archive record, as published
        assert (outcome, request, completion, response) == (
            sent["value"]["outcome"],
            *(sent["value"]["answers"][k] for k in ("request", "completion", "response")),
        )
        assert trace_id is not None and trace_id == trace_id_from_headers(list(sent["headers"].items()))


def test_store_killed_and_database_restarted_lose_nothing(
    shared: Path, broker: EmbeddedBroker, tmp_path: Path
) -> None:
    db = open_database(f"embedded:{tmp_path / 'pg'}", migrate=False)  # this test restarts its own server
    server = db.embedded_server
    try:
        name = "kill_restart"
        with psycopg.connect(db.conninfo, autocommit=True) as conn:
            conn.execute(f"CREATE DATABASE {name}")
        url = with_dbname(db.conninfo, name)
        upgrade(url)
        base = Settings.from_env({}).for_embedded_broker().isolated("store-kill")
        settings = store_settings(
            replace(base, kafka=replace(base.kafka, bootstrap=broker.bootstrap, partitions=4)),
            url,
            batch_max_size=25,
        )
        asyncio.run(ensure_named_topics(settings.kafka, [settings.topics.archive, settings.topics.replay]))
        bench = load_benchmark(shared / "benchmark" / "0_5_harmbench_response.json")
        outputs = load_recordings(shared / "predictions" / "1B" / "HarmBenchResponse").outputs
        first = [
            r
            for round_ in range(12)  # ~7,200 verdicts: enough that the kill lands mid-run
            for r in archive_records(
                bench.samples, outputs, prefix=f"k{round_}", model="1B", moderated_at=time.time()
            )
        ]
        produce(settings.kafka.bootstrap, settings.topics.archive, record_bytes(first))

        # 1. killed mid-run
        store = start_store(settings, tmp_path / "store-1.log")
        try:
            wait_until(
                lambda: count(url) >= 200, timeout_s=60, what="the store started writing", interval_s=0.02
            )
        finally:
            store.kill()
        stored_at_kill = count(url)
        assert stored_at_kill < len(first), "the store finished before it was killed: nothing was tested"

        # 2. restarted while the database is down: it waits, then resumes from its committed offsets
        server.stop()
        log2 = tmp_path / "store-2.log"
        store = start_store(settings, log2)
        try:
            wait_until(
                lambda: "waiting for the database" in log_text(log2), timeout_s=30, what="store waits for db"
            )
            assert store.alive()
            server.start()
            wait_until(lambda: count(url) == len(first), timeout_s=90, what="all verdicts after the restart")

            # 3. the database goes away while the sink runs: it pauses, keeps its batch, resumes
            server.stop()
            second = archive_records(
                bench.samples, outputs, prefix="late", model="1B", moderated_at=time.time()
            )
            produce(settings.kafka.bootstrap, settings.topics.archive, record_bytes(second))
            wait_until(lambda: "sink paused" in log_text(log2), timeout_s=30, what="the sink paused")
            time.sleep(1.0)
            assert store.alive()
            server.start()
            total = len(first) + len(second)
            wait_until(lambda: count(url) == total, timeout_s=90, what="all verdicts after the outage")
            wait_until(
                lambda: committed_total(settings, settings.topics.archive) == total,
                timeout_s=30,
                what="offsets committed",
            )
        finally:
            store.stop()
        assert "database back, sink resumed" in log_text(log2)
        with psycopg.connect(url) as conn:
            ids = {r[0] for r in conn.execute("SELECT event_id FROM verdicts").fetchall()}
            rejects = conn.execute("SELECT count(*) FROM store_rejects").fetchone()
        assert ids == {r["event_id"] for r in first + second}
        assert rejects == (0,)
    finally:
        db.close()


def _run_sink(settings: Settings, url: str, until: int) -> None:
    async def run() -> None:
        database = open_database(url, migrate=False)
        stop = asyncio.Event()
        sink = StoreSink(settings, database)
        task = asyncio.create_task(sink.run(stop))
        try:
            deadline = time.monotonic() + 60
            while sink.stats.received < until and time.monotonic() < deadline and not task.done():
                await asyncio.sleep(0.1)
        finally:
            stop.set()
            await task
        assert sink.stats.received == until, sink.stats

    asyncio.run(run())


def test_replays_are_stored_beside_live_verdicts_and_flips_are_marked(
    shared: Path, broker: EmbeddedBroker, store_url: str
) -> None:
    base = Settings.from_env({}).for_embedded_broker().isolated("store-replay")
    settings = store_settings(
        replace(base, kafka=replace(base.kafka, bootstrap=broker.bootstrap, partitions=2)), store_url
    )
    live, replayed = xstest_live_and_replay(shared, "run-3b", live_at=time.time())
    by_id = {r["event_id"]: r for r in live}
    asyncio.run(ensure_named_topics(settings.kafka, [settings.topics.archive, settings.topics.replay]))
    produce(settings.kafka.bootstrap, settings.topics.archive, record_bytes(live))
    replay_bytes = record_bytes(replayed)
    without_run = {**replayed[0], "event_id": "no-run"}
    del without_run["run_id"]
    produce(
        settings.kafka.bootstrap,
        settings.topics.replay,
        replay_bytes
        + replay_bytes[:10]
        + [(b"k", orjson.dumps(without_run), [])]
        + [(b"k", b"{not json", [])],
    )
    _run_sink(settings, store_url, until=len(live) + len(replayed) + 10 + 2)

    expected_flips = {
        r["event_id"]
        for r in replayed
        if r["answers"] != by_id[r["event_id"]]["answers"] or r["outcome"] != by_id[r["event_id"]]["outcome"]
    }
    assert expected_flips, "the two recordings agree everywhere: nothing was tested"
    with psycopg.connect(store_url) as conn:
        live_rows = conn.execute("SELECT count(*) FROM verdicts WHERE run_id = ''").fetchone()
        replay_rows = conn.execute(
            "SELECT count(*), count(*) FILTER (WHERE flipped) FROM verdicts WHERE run_id = 'run-3b'"
        ).fetchone()
        flips = {r[0] for r in conn.execute("SELECT event_id FROM verdicts WHERE flipped").fetchall()}
        rejects = sorted(r[0] for r in conn.execute("SELECT reason FROM store_rejects").fetchall())
        original = conn.execute(
            "SELECT original_model, original_answers FROM verdicts WHERE run_id = 'run-3b' AND event_id = %s",
            (replayed[0]["event_id"],),
        ).fetchone()
    assert live_rows == (len(live),)
    assert replay_rows == (len(replayed), len(expected_flips))
    assert flips == expected_flips
    assert rejects == ["not_json", "replay_without_run_id"]
    assert original == ("GuardReasoner-1B", by_id[replayed[0]["event_id"]]["answers"])


def test_a_row_the_database_refuses_becomes_a_reject_and_the_batch_goes_on(
    broker: EmbeddedBroker, store_url: str
) -> None:
    base = Settings.from_env({}).for_embedded_broker().isolated("store-nul")
    settings = store_settings(
        replace(base, kafka=replace(base.kafka, bootstrap=broker.bootstrap, partitions=1)), store_url
    )
    good = {
        "event_id": "ok-1",
        "conversation_id": "c",
        "user_id": "u",
        "event_timestamp": time.time(),
        "moderated_at": time.time(),
        "outcome": "unharmful",
        "status": "ok",
        "answers": {"request": "unharmful", "completion": None, "response": None},
        "has_response": False,
    }
    bad = {**good, "event_id": "nul-1", "raw": "a\u0000b"}  # PostgreSQL text and jsonb cannot hold NUL
    asyncio.run(ensure_named_topics(settings.kafka, [settings.topics.archive, settings.topics.replay]))
    produce(
        settings.kafka.bootstrap,
        settings.topics.archive,
        [
            (b"c", orjson.dumps(good), []),
            (b"c", orjson.dumps(bad), []),
            (b"c", orjson.dumps({**good, "event_id": "ok-2"}), []),
        ],
    )
    _run_sink(settings, store_url, until=3)
    with psycopg.connect(store_url) as conn:
        ids = sorted(r[0] for r in conn.execute("SELECT event_id FROM verdicts").fetchall())
        rejects = conn.execute("SELECT reason, value FROM store_rejects").fetchall()
    assert ids == ["ok-1", "ok-2"]
    assert len(rejects) == 1 and rejects[0][0].startswith("database_refused")
    assert orjson.loads(rejects[0][1])["event_id"] == "nul-1"


def test_concurrent_starts_migrate_the_schema_once(postgres: Database) -> None:
    url = create_database(postgres, migrate=False)
    env = cli_env(GUARDSTREAM_STORE_URL=url)
    # four commands starting together on a new database (each migrates first)
    procs = [
        subprocess.Popen(
            [sys.executable, "-m", "streams", "users", "list"],
            env=env,
            cwd=ROOT,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        for _ in range(4)
    ]
    for proc in procs:
        _, err = proc.communicate(timeout=120)
        assert proc.returncode == 0, err.decode()[-2000:]
    assert current_revision(url) == "0001"
    assert count(url, "SELECT count(*) FROM pg_tables WHERE tablename = 'verdicts'") == 1
