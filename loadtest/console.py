"""Review console queue latency with N stored verdicts: first page vs a page 90 % deep, keyset paging.

The store (embedded PostgreSQL) is filled server-side with ``rows`` live verdicts
(30 % harmful, 2 % undecided, see ``_FILL``), 5 % more as a replay run, category
tags and reviews, then ANALYZEd. A real ``guardstream console`` process serves
it; one logged-in HTTP client times ``requests`` sequential requests per kind:
the JSON API and the HTML queue, first page and a page whose cursor sits 90 %
of the way down, unfiltered and filtered. Baseline, same database, same depth:
the same page fetched with ``OFFSET`` in SQL directly (what paging without a
keyset costs), against the keyset query in SQL directly.
"""

from __future__ import annotations

import asyncio
import statistics
import tempfile
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import aiohttp
import psycopg

from loadtest.common import machine
from streams.broker import free_port, wait_for_port
from streams.config import Settings
from streams.process import WorkerProcess
from streams.secret import Secret
from streams.store.database import open_database
from streams.store.queue import Cursor, QueueFilter, queue_query
from streams.store.roles import Role
from streams.store.users import add_user

__all__ = ["run"]

_PASSWORD = "bench-password-1"  # noqa: S105 - a throwaway database
_DEPTH = 0.9

# Live verdicts, 10 per second of history: 30 % harmful, 1 % unparsed, 1 % engine_error; a tag on
# every 7th; every 20th reviewed; two models. Records are small: the queue does not read them.
_FILL = """
INSERT INTO verdicts (event_id, run_id, source, conversation_id, user_id, event_time, moderated_at,
    outcome, status, answer_request, answer_completion, answer_response, has_response, model, engine,
    tags, record, engine_ms, reviewed_at, flipped)
SELECT 'bench-' || g, '', 'archive', 'conv-' || (g %% 9973), 'user-' || (g %% 101),
       t.at - interval '1 second', t.at, o.outcome, 'ok',
       CASE WHEN o.outcome = 'harmful' THEN 'harmful' ELSE 'unharmful' END, 'refusal', 'unharmful', true,
       CASE WHEN g %% 2 = 0 THEN 'GuardReasoner-1B' ELSE 'GuardReasoner-3B' END, 'bench',
       CASE WHEN g %% 7 = 0 THEN ARRAY['S' || (g %% 14 + 1)] ELSE '{}' END,
       jsonb_build_object('event_id', 'bench-' || g, 'raw', 'Answers: ...', 'reasoning', '[]'::jsonb),
       50 + g %% 400, CASE WHEN g %% 20 = 0 THEN t.at + interval '1 minute' END, false
FROM generate_series(1, %(rows)s) AS g,
     LATERAL (SELECT now() - (%(rows)s - g) * interval '100 milliseconds' AS at) AS t,
     LATERAL (SELECT CASE WHEN g %% 10 < 3 THEN 'harmful' WHEN g %% 100 = 97 THEN 'unparsed'
                          WHEN g %% 100 = 98 THEN 'engine_error' ELSE 'unharmful' END AS outcome) AS o
"""
_REPLAYS = """
INSERT INTO verdicts (event_id, run_id, source, conversation_id, user_id, event_time, moderated_at, outcome,
    status, has_response, model, engine, record, flipped)
SELECT event_id, 'bench-run', 'replay', conversation_id, user_id, event_time,
       moderated_at + interval '1 hour', outcome, status, has_response, 'GuardReasoner-8B', 'bench', record,
       id % 10 = 0
FROM verdicts WHERE run_id = '' AND id % 20 = 0
"""
_TAGS = """
INSERT INTO verdict_tags (verdict_id, tag, live, moderated_at)
SELECT id, tag, run_id = '', moderated_at FROM verdicts, unnest(tags) AS tag
"""


def _fill(conninfo: str, rows: int) -> float:
    started = time.perf_counter()
    with psycopg.connect(conninfo) as conn:
        conn.execute(_FILL, {"rows": rows})
        conn.execute(_REPLAYS)
        conn.execute(_TAGS)
        add_user(conn, "bench", Role.VIEWER, _PASSWORD)
        conn.commit()
        conn.autocommit = True
        conn.execute("VACUUM ANALYZE verdicts")
        conn.execute("VACUUM ANALYZE verdict_tags")
    return time.perf_counter() - started


def _deep_cursor(conninfo: str, rows: int) -> Cursor:
    with psycopg.connect(conninfo) as conn:
        row = conn.execute(
            "SELECT moderated_at, id FROM verdicts WHERE run_id = '' ORDER BY moderated_at DESC, id DESC "
            "OFFSET %s LIMIT 1",
            (int(rows * _DEPTH),),
        ).fetchone()
    assert row is not None  # noqa: S101 - the table was just filled
    return Cursor(row[0], row[1])


def _summary(samples_ms: list[float]) -> dict[str, float]:
    ordered = sorted(samples_ms)
    p99 = ordered[min(len(ordered) - 1, round(0.99 * (len(ordered) - 1)))]
    return {"p50_ms": round(statistics.median(ordered), 2), "p99_ms": round(p99, 2)}


async def _time_http(session: aiohttp.ClientSession, url: str, n: int) -> dict[str, float]:
    samples = []
    for _ in range(n):
        started = time.perf_counter()
        async with session.get(url) as response:
            await response.read()
            if response.status != 200:
                raise RuntimeError(f"{url}: HTTP {response.status}")
        samples.append((time.perf_counter() - started) * 1000)
    return _summary(samples)


def _time_sql(conninfo: str, query: Any, params: Any, n: int) -> dict[str, float]:
    samples = []
    with psycopg.connect(conninfo) as conn:
        for _ in range(n):
            started = time.perf_counter()
            conn.execute(query, params).fetchall()
            samples.append((time.perf_counter() - started) * 1000)
    return _summary(samples)


async def _measure(base: str, cursor: Cursor, requests: int) -> dict[str, dict[str, float]]:
    deep = cursor.encode()
    pages = {
        "api_first": "/api/verdicts?limit=50",
        "api_deep": f"/api/verdicts?limit=50&cursor={deep}",
        "html_first": "/",
        "html_deep": f"/?cursor={deep}",
        "api_harmful_deep": f"/api/verdicts?outcome=harmful&limit=50&cursor={deep}",
        "api_undecided_deep": f"/api/verdicts?outcome=undecided&limit=50&cursor={deep}",
        "api_category_deep": f"/api/verdicts?category=S3&limit=50&cursor={deep}",
        "api_unreviewed_deep": f"/api/verdicts?reviewed=false&limit=50&cursor={deep}",
        "api_flips_first": "/api/verdicts?flips=true&limit=50",
    }
    # unsafe: accept the session cookie from an IP-address host (127.0.0.1)
    async with aiohttp.ClientSession(base, cookie_jar=aiohttp.CookieJar(unsafe=True)) as session:
        async with session.post("/api/login", json={"username": "bench", "password": _PASSWORD}) as response:
            if response.status != 200:
                raise RuntimeError(f"login failed: HTTP {response.status}")
        for url in pages.values():  # warm the caches once per kind
            await _time_http(session, url, 2)
        return {name: await _time_http(session, url, requests) for name, url in pages.items()}


def run(rows: int, *, requests: int = 100) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="gs-console-bench-") as tmp:
        database = open_database(f"embedded:{Path(tmp) / 'pg'}")
        try:
            fill_s = _fill(database.conninfo, rows)
            cursor = _deep_cursor(database.conninfo, rows)
            base = Settings.from_env({})
            port = free_port()
            settings = replace(
                base,
                kafka=replace(base.kafka, bootstrap=f"127.0.0.1:{free_port()}"),  # no broker: not measured
                store=replace(base.store, url=Secret(database.conninfo)),
                console=replace(base.console, port=port),
            )
            with WorkerProcess(settings, log_path=Path(tmp) / "console.log", args=("console",)):
                wait_for_port("127.0.0.1", port, 60)
                http = asyncio.run(_measure(f"http://127.0.0.1:{port}", cursor, requests))
            keyset_sql, keyset_params = queue_query(QueueFilter(), cursor, 50)
            sql = {
                "sql_keyset_deep": _time_sql(database.conninfo, keyset_sql, keyset_params, requests),
                "sql_offset_deep": _time_sql(
                    database.conninfo,
                    "SELECT id, event_id FROM verdicts WHERE run_id = '' ORDER BY moderated_at DESC, id DESC "
                    "OFFSET %s LIMIT 50",
                    (int(rows * _DEPTH),),
                    max(5, requests // 10),
                ),
            }
        finally:
            database.close()
    first, deep = http["api_first"]["p50_ms"], http["api_deep"]["p50_ms"]
    return {
        **machine(),
        "benchmark": "console",
        "rows": rows,
        "depth": _DEPTH,
        "fill_s": round(fill_s, 1),
        "requests_per_kind": requests,
        "pages": http,
        "sql": sql,
        "ratio": round(deep / first, 3),  # deep page p50 / first page p50 (1.0: depth costs nothing)
        "offset_vs_keyset": round(sql["sql_offset_deep"]["p50_ms"] / sql["sql_keyset_deep"]["p50_ms"], 1),
    }
