"""Store sink throughput: verdicts/s from Kafka into PostgreSQL, against plain writes of the same rows.

Same run, same embedded PostgreSQL, same rows:

(a) sink: the production :class:`streams.store.sink.StoreSink` (aiokafka consumer,
    decode, batched idempotent upsert with tags, offset commits) reading ``events``
    archive records from the embedded broker. Timed from the end of its first batch
    to the end of its last (the consumer group join is not throughput);
(b) COPY: the same decoded rows written by one ``COPY`` into a table like the
    store's (same columns, constraints and indexes), with no Kafka, no decoding,
    no deduplication and no tags: the database's ingest ceiling for these rows;
(c) executemany: the same rows as one ``INSERT`` per row (psycopg pipelines it)
    into such a table, a naive writer.
"""

from __future__ import annotations

import asyncio
import logging
import tempfile
import time
from dataclasses import fields, replace
from pathlib import Path
from typing import Any

import orjson
import psycopg
from aiokafka import AIOKafkaProducer
from psycopg.types.json import Jsonb

from loadtest.common import broker, machine
from loadtest.verdicts import synthetic_records
from streams.config import Settings
from streams.store.database import open_database
from streams.store.records import VerdictRow, decode_record
from streams.store.sink import StoreSink
from streams.store.verdicts import WriteResult
from streams.topics import ensure_named_topics

__all__ = ["run"]

_COLUMNS = [f.name for f in fields(VerdictRow)]


class _Record:
    """The fields of a ConsumerRecord the decoder reads (rows for the baselines are decoded once)."""

    def __init__(self, value: bytes, offset: int) -> None:
        self.topic = "moderation.archive"
        self.partition = 0
        self.offset = offset
        self.value = value
        self.headers: list[tuple[str, bytes]] = []


def _values(row: VerdictRow) -> list[Any]:
    out: list[Any] = []
    for name in _COLUMNS:
        value = getattr(row, name)
        out.append(
            Jsonb(value) if isinstance(value, dict) else list(value) if isinstance(value, tuple) else value
        )
    return out


def _baselines(conninfo: str, rows: list[VerdictRow]) -> dict[str, float]:
    values = [_values(r) for r in rows]
    columns = ", ".join(_COLUMNS)
    with psycopg.connect(conninfo) as conn:
        # the same columns, defaults, constraints and indexes as the store's table
        conn.execute("CREATE TABLE copy_baseline (LIKE verdicts INCLUDING ALL)")
        conn.execute("CREATE TABLE insert_baseline (LIKE verdicts INCLUDING ALL)")
        conn.commit()
        started = time.perf_counter()
        with conn.cursor() as cur, cur.copy(f"COPY copy_baseline ({columns}) FROM STDIN") as copy:  # noqa: S608
            for row in values:
                copy.write_row(row)
        conn.commit()
        copy_s = time.perf_counter() - started
        placeholders = ", ".join(["%s"] * len(_COLUMNS))
        started = time.perf_counter()
        with conn.cursor() as cur:
            cur.executemany(f"INSERT INTO insert_baseline ({columns}) VALUES ({placeholders})", values)  # noqa: S608
        conn.commit()
        insert_s = time.perf_counter() - started
    return {"copy_rows_per_s": len(rows) / copy_s, "executemany_rows_per_s": len(rows) / insert_s}


async def _produce(bootstrap: str, topic: str, values: list[bytes]) -> None:
    producer = AIOKafkaProducer(
        bootstrap_servers=bootstrap, acks="all", linger_ms=5, max_batch_size=512 * 1024
    )
    await producer.start()
    try:
        futures = [await producer.send(topic, v, key=str(i % 64).encode()) for i, v in enumerate(values)]
        await asyncio.gather(*futures)
    finally:
        await producer.stop()


async def _sink(settings: Settings, url: str, n: int) -> dict[str, float]:
    database = open_database(url, migrate=False)
    marks: list[tuple[float, int]] = []

    def on_batch(result: WriteResult) -> None:
        marks.append((time.perf_counter(), result.received))

    stop = asyncio.Event()
    sink = StoreSink(settings, database, on_batch=on_batch)
    task = asyncio.create_task(sink.run(stop))
    deadline = time.monotonic() + 600
    while sink.stats.received < n and time.monotonic() < deadline and not task.done():
        await asyncio.sleep(0.05)
    stop.set()
    await task
    if sink.stats.received < n:
        raise RuntimeError(f"the sink stored {sink.stats.received} of {n} records")
    (first_end, first_count), (last_end, _) = marks[0], marks[-1]
    timed = n - first_count
    return {
        "sink_verdicts_per_s": timed / (last_end - first_end) if timed else 0.0,
        "batches": float(len(marks)),
        "inserted": float(sink.stats.inserted),
    }


def run(events: int, *, batch_max_size: int | None = None) -> dict[str, Any]:
    logging.getLogger("streams.store").setLevel(logging.WARNING)
    records = synthetic_records(events, prefix=f"bench-{int(time.time())}", moderated_at=time.time())
    values = [orjson.dumps(r) for r in records]
    with tempfile.TemporaryDirectory(prefix="gs-store-bench-") as tmp, broker() as kafka:
        server = open_database(f"embedded:{Path(tmp) / 'pg'}", migrate=True)
        try:
            base = Settings.from_env({}).for_embedded_broker().isolated("store-bench")
            store = (
                base.store if batch_max_size is None else replace(base.store, batch_max_size=batch_max_size)
            )
            settings = replace(
                base,
                kafka=replace(base.kafka, bootstrap=kafka.bootstrap, partitions=4),
                store=store,
            )
            asyncio.run(
                ensure_named_topics(settings.kafka, [settings.topics.archive, settings.topics.replay])
            )
            asyncio.run(_produce(kafka.bootstrap, settings.topics.archive, values))
            sink = asyncio.run(_sink(settings, server.conninfo, events))
            rows = [decode_record(_Record(v, i)) for i, v in enumerate(values)]
            baselines = _baselines(server.conninfo, [r for r in rows if isinstance(r, VerdictRow)])
            with psycopg.connect(server.conninfo) as conn:
                stored = conn.execute("SELECT count(*) FROM verdicts").fetchone()
        finally:
            server.close()
    return {
        **machine(),
        "benchmark": "store",
        "events": events,
        "record_bytes_avg": round(sum(map(len, values)) / len(values)),
        "batch_max_size": settings.store.batch_max_size,
        "stored": stored[0] if stored else 0,
        "sink_verdicts_per_s": round(sink["sink_verdicts_per_s"], 1),
        "sink_batches": int(sink["batches"]),
        "copy_rows_per_s": round(baselines["copy_rows_per_s"], 1),
        "executemany_rows_per_s": round(baselines["executemany_rows_per_s"], 1),
        "ratio": round(sink["sink_verdicts_per_s"] / baselines["copy_rows_per_s"], 3),
        "ratio_vs_executemany": round(sink["sink_verdicts_per_s"] / baselines["executemany_rows_per_s"], 3),
    }
