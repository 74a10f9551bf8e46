"""The review console against a real PostgreSQL (embedded) and a real broker: login, queue, reviews."""

from __future__ import annotations

import asyncio
import re
import statistics
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import quote

import orjson
import psycopg
import pytest
from jsonschema import Draft202012Validator

from streams.broker import EmbeddedBroker, free_port
from streams.client import read_topic
from streams.store.queue import QueueFilter, queue_query

from .consoles import PASSWORD, add_users, console_client, console_settings, login, seed, verdict
from .pg import postgres, store_url, wait_until

pytestmark = pytest.mark.integration
__all__ = ["postgres", "store_url"]  # fixtures used here

SCHEMA = orjson.loads(
    (Path(__file__).resolve().parents[2] / "streams/console/schemas/correction.schema.json").read_bytes()
)
PROTECTED = [
    ("GET", "/"),
    ("GET", "/dashboard"),
    ("GET", "/verdicts/e-1"),
    ("GET", "/api/verdicts"),
    ("GET", "/api/verdicts/e-1"),
    ("GET", "/api/dashboard"),
    ("GET", "/api/me"),
    ("POST", "/api/verdicts/e-1/review"),
    ("POST", "/verdicts/e-1/review"),
]


def test_every_page_and_api_needs_a_valid_session(store_url: str, broker: EmbeddedBroker) -> None:
    seed(store_url, [verdict("e-1", at=time.time())])
    add_users(store_url)

    async def run() -> None:
        async with console_client(console_settings(store_url, broker.bootstrap)) as client:
            for cookie in ("", "gs_session=forged-token-value"):
                headers = {"Cookie": cookie} if cookie else {}
                for method, path in PROTECTED:
                    kwargs: dict[str, Any] = {"headers": headers}
                    if path.startswith("/api/") and method == "POST":
                        kwargs["json"] = {"action": "confirm"}
                    response = await client.request(method, path, **kwargs)
                    assert response.status == 401, (method, path, cookie)
                    if path.startswith("/api/"):
                        assert await response.json() == {"error": "login required"}
                    else:
                        assert 'action="/login"' in await response.text()  # the login form
            bad = await client.post("/api/login", json={"username": "rita", "password": "wrong-password"})
            assert bad.status == 401
            unknown = await client.post("/api/login", json={"username": "nobody", "password": PASSWORD})
            assert unknown.status == 401
            assert (await client.get("/static/console.css")).status == 200  # the login page's style

    asyncio.run(run())


def test_login_cookie_is_hardened_and_logout_ends_the_session(store_url: str, broker: EmbeddedBroker) -> None:
    add_users(store_url)

    async def run() -> None:
        async with console_client(console_settings(store_url, broker.bootstrap)) as client:
            response = await client.post("/api/login", json={"username": "rita", "password": PASSWORD})
            cookie = response.headers["Set-Cookie"]
            assert cookie.startswith("gs_session=")
            assert "HttpOnly" in cookie and "SameSite=Strict" in cookie and "Path=/" in cookie
            assert "Secure" not in cookie  # plain HTTP on 127.0.0.1 in this test
            assert response.headers["Content-Security-Policy"].startswith("default-src 'none'")
            assert response.headers["X-Frame-Options"] == "DENY"
            me = await client.get("/api/me")
            assert (await me.json())["role"] == "reviewer"
            assert (await client.post("/api/logout", json={})).status == 200
            assert (await client.get("/api/me", headers={"Cookie": cookie.split(";")[0]})).status == 401

        secure = console_settings(store_url, broker.bootstrap, cookie_secure="true")
        async with console_client(secure) as client:
            response = await client.post("/api/login", json={"username": "rita", "password": PASSWORD})
            cookie = response.headers["Set-Cookie"]
            assert cookie.startswith("__Host-gs_session=") and "Secure" in cookie

    asyncio.run(run())


def _population(now: float) -> list[dict[str, Any]]:
    """Verdicts with ties on moderated_at, every outcome, tags, two models, replays with and without flips."""
    outcomes = ("harmful", "unharmful", "unharmful", "unparsed", "harmful", "engine_error")
    records = []
    for i in range(240):
        at = now - 3600 + (i // 3) * 7.0  # three verdicts share each timestamp
        outcome = outcomes[i % len(outcomes)]
        tags = [{"tag": t} for t in (["S1"] if i % 4 == 0 else []) + (["S10"] if i % 5 == 0 else [])]
        records.append(
            verdict(f"e-{i}", at=at, outcome=outcome, model="GR-1B" if i % 2 else "GR-3B", categories=tags)
        )
    for i in range(0, 60, 2):
        live = records[i]
        flipped = i % 4 == 0
        answers = {"request": "unharmful" if live["answers"]["request"] == "harmful" else "harmful"}
        replay = verdict(
            live["event_id"],
            at=live["moderated_at"] + 500,
            outcome="harmful" if answers["request"] == "harmful" else "unharmful",
            model="GR-8B",
            run_id="run-8b",
            original={"model": live["model"], "outcome": live["outcome"], "answers": live["answers"]},
        )
        if not flipped:
            replay["answers"] = live["answers"]
            replay["outcome"] = live["outcome"]
        records.append(replay)
    return records


def _matches(r: dict[str, Any], f: QueueFilter, reviewed: set[str]) -> bool:
    """The filter semantics written out independently of the SQL."""
    run = r.get("run_id") or ""
    if f.flips:
        original = r.get("original") or {}
        if not run or (original.get("answers") == r["answers"] and original.get("outcome") == r["outcome"]):
            return False
    elif f.run_id:
        if run != f.run_id:
            return False
    elif run:
        return False
    tags = {c["tag"] for c in r.get("categories") or []}
    at = datetime.fromtimestamp(r["moderated_at"], UTC)
    return (
        (not f.outcomes or r["outcome"] in f.outcomes)
        and (f.category is None or f.category in tags)
        and (f.model is None or r["model"] == f.model)
        and (f.since is None or at >= f.since)
        and (f.until is None or at < f.until)
        and (f.reviewed is None or (r["event_id"] in reviewed) == f.reviewed)
    )


def test_queue_pages_and_filters_agree_with_an_independent_filter(
    store_url: str, broker: EmbeddedBroker
) -> None:
    now = time.time()
    records = _population(now)
    seed(store_url, records)
    add_users(store_url)
    reviewed = {"e-0", "e-6", "e-12", "e-30"}
    mid = datetime.fromtimestamp(now - 3300, UTC)  # inside the population's span
    cases: list[tuple[str, QueueFilter]] = [
        ("", QueueFilter()),
        ("outcome=harmful", QueueFilter(outcomes=("harmful",))),
        ("outcome=undecided", QueueFilter(outcomes=("unparsed", "engine_error"))),
        ("category=S1", QueueFilter(category="S1")),
        (
            "category=S10&outcome=harmful,unharmful",
            QueueFilter(category="S10", outcomes=("harmful", "unharmful")),
        ),
        ("model=GR-3B&reviewed=false", QueueFilter(model="GR-3B", reviewed=False)),
        ("reviewed=true", QueueFilter(reviewed=True)),
        (f"since={quote(mid.isoformat())}", QueueFilter(since=mid)),
        (
            f"until={int(mid.timestamp())}",
            QueueFilter(until=datetime.fromtimestamp(int(mid.timestamp()), UTC)),
        ),
        ("flips=true", QueueFilter(flips=True)),
        ("run=run-8b", QueueFilter(run_id="run-8b")),
    ]

    async def run() -> None:
        async with console_client(console_settings(store_url, broker.bootstrap)) as client:
            await login(client, "rita")
            for event_id in reviewed:
                response = await client.post(f"/api/verdicts/{event_id}/review", json={"action": "confirm"})
                assert response.status == 201, await response.text()
            for query, expected_filter in cases:
                seen: list[tuple[float, str, str]] = []
                cursor = None
                for _ in range(100):
                    url = f"/api/verdicts?{query}&limit=17" + (f"&cursor={cursor}" if cursor else "")
                    response = await client.get(url)
                    assert response.status == 200, (query, await response.text())
                    page = await response.json()
                    assert len(page["items"]) <= 17
                    seen += [(i["moderated_at"], i["event_id"], i["run_id"] or "") for i in page["items"]]
                    cursor = page["next"]
                    if cursor is None:
                        break
                expected = [r for r in records if _matches(r, expected_filter, reviewed)]
                assert expected, f"{query}: the population has no match, nothing was tested"
                keys = [(e, r) for _, e, r in seen]
                assert len(keys) == len(set(keys)), f"{query}: a row came twice"
                assert set(keys) == {(r["event_id"], r.get("run_id") or "") for r in expected}, query
                times = [t for t, _, _ in seen]
                assert times == sorted(times, reverse=True), f"{query}: not newest first"
            bad = await client.get("/api/verdicts?cursor=not-a-cursor")
            assert bad.status == 400
            assert (await client.get("/api/verdicts?outcome=maybe")).status == 400

    asyncio.run(run())


@pytest.mark.parametrize(
    "queue_filter",
    [
        QueueFilter(),
        QueueFilter(outcomes=("harmful",)),
        QueueFilter(outcomes=("unparsed", "engine_error")),
        QueueFilter(category="S1"),
        QueueFilter(model="GR-1B"),
        QueueFilter(reviewed=False),
        QueueFilter(outcomes=("harmful",), reviewed=False),
        QueueFilter(flips=True),
        QueueFilter(run_id="run-8b"),
    ],
    ids=[
        "all",
        "harmful",
        "undecided",
        "category",
        "model",
        "unreviewed",
        "harmful-unreviewed",
        "flips",
        "run",
    ],
)
def test_every_queue_filter_has_an_ordered_index_path(store_url: str, queue_filter: QueueFilter) -> None:
    """Deep pages cost what the first costs only if no filter sorts: each must read an index in order."""
    seed(store_url, _population(time.time()))
    from streams.store.queue import Cursor

    query, params = queue_query(queue_filter, Cursor(datetime.now(UTC), 10**9), 50)
    with psycopg.connect(store_url) as conn:
        conn.execute("SET enable_seqscan = off")
        conn.execute("SET enable_sort = off")
        conn.execute("SET enable_bitmapscan = off")
        plan = "\n".join(r[0] for r in conn.execute(psycopg.sql.SQL("EXPLAIN ") + query, params).fetchall())
    assert not re.search(r"(^|->)\s*(Incremental )?Sort\s+\(", plan, re.MULTILINE), plan  # no sort node
    assert "Index" in plan, plan


def test_review_actions_are_audited_append_only_and_published(store_url: str, broker: EmbeddedBroker) -> None:
    now = time.time()
    seed(
        store_url,
        [
            verdict("r-1", at=now, outcome="harmful", categories=[{"tag": "S1"}]),
            verdict("r-2", at=now - 1, outcome="unharmful"),
        ],
    )
    add_users(store_url)
    settings = console_settings(store_url, broker.bootstrap)

    async def run() -> list[dict[str, Any]]:
        async with console_client(settings) as client:
            await login(client, "vera")
            viewer = await client.post("/api/verdicts/r-1/review", json={"action": "confirm"})
            assert viewer.status == 403
            assert (await client.get("/api/verdicts?outcome=harmful")).status == 200  # viewers read
            await client.post("/api/logout", json={})

            session = await login(client, "rita")
            correction = await client.post(
                "/api/verdicts/r-1/review",
                json={
                    "action": "correct",
                    "answers": {"request": "unharmful"},
                    "categories": [],
                    "note": "a joke",
                },
            )
            assert correction.status == 201, await correction.text()
            review = (await correction.json())["review"]
            assert review["answers"] == {"request": "unharmful", "completion": None, "response": None}
            assert review["model_answers"]["request"] == "harmful" and review["agrees"] is False
            for body, status in (
                ({"action": "correct", "answers": {"request": "maybe"}}, 400),
                ({"action": "correct", "answers": {"response": "harmful"}}, 400),  # prompt-only event
                ({"action": "approve"}, 400),
            ):
                assert (await client.post("/api/verdicts/r-1/review", json=body)).status == status
            assert (await client.post("/api/verdicts/nope/review", json={"action": "confirm"})).status == 404
            text_plain = await client.post(
                "/api/verdicts/r-1/review",
                data='{"action": "confirm"}',
                headers={"Content-Type": "text/plain"},
            )
            assert text_plain.status == 415
            cross_site = await client.post(
                "/api/verdicts/r-1/review",
                json={"action": "confirm"},
                headers={"Origin": "https://evil.example"},
            )
            assert cross_site.status == 403

            # the HTML form: refused without the session's CSRF token, accepted with it
            form = {"action": "confirm", "note": "looks right", "run": ""}
            no_token = await client.post("/verdicts/r-2/review", data=form, allow_redirects=False)
            assert no_token.status == 403
            ok = await client.post(
                "/verdicts/r-2/review",
                data={**form, "csrf_token": session["csrf_token"]},
                allow_redirects=False,
            )
            assert ok.status == 303 and ok.headers["Location"].endswith("/verdicts/r-2#audit")
            page = await (await client.get("/verdicts/r-1")).text()
            assert page.count('class="audit-entry"') == 1 and "a joke" in page and "rita" in page

            detail = await (await client.get("/api/verdicts/r-1")).json()
            assert [r["action"] for r in detail["reviews"]] == ["correct"]
            reviewed = await (await client.get("/api/verdicts?reviewed=false")).json()
            assert reviewed["items"] == []

            wait_until(lambda: _outbox(store_url) == 0, timeout_s=20, what="corrections published")
            published: list[dict[str, Any]] = []
            async for record in read_topic(
                broker.bootstrap, settings.console.corrections_topic, max_records=2, idle_timeout_s=10
            ):
                value = orjson.loads(record.value)
                assert dict(record.headers)["guardstream-review-id"] == value["review_id"].encode()
                published.append(value)
            return published

    published = asyncio.run(run())
    assert {(p["event_id"], p["action"]) for p in published} == {("r-1", "correct"), ("r-2", "confirm")}
    validator = Draft202012Validator(SCHEMA)
    for record in published:
        validator.validate(record)

    with psycopg.connect(store_url, autocommit=True) as conn:
        for statement in (
            "UPDATE reviews SET note = 'rewritten'",
            "DELETE FROM reviews",
            "TRUNCATE reviews CASCADE",
        ):
            with pytest.raises(psycopg.errors.InsufficientPrivilege, match="append-only"):
                conn.execute(statement)
        assert conn.execute("SELECT count(*) FROM reviews").fetchone() == (2,)


def _outbox(url: str) -> int:
    with psycopg.connect(url) as conn:
        row = conn.execute("SELECT count(*) FROM corrections_outbox").fetchone()
        return int(row[0]) if row else -1


def test_corrections_wait_in_the_outbox_while_kafka_is_down(store_url: str, tmp_path: Path) -> None:
    seed(store_url, [verdict("w-1", at=time.time(), outcome="harmful")])
    add_users(store_url)
    port = free_port()
    settings = console_settings(store_url, f"127.0.0.1:{port}")

    async def run() -> None:
        async with console_client(settings) as client:
            await login(client, "adam")
            response = await client.post("/api/verdicts/w-1/review", json={"action": "confirm"})
            assert response.status == 201  # the review is stored although no broker runs
            assert (await response.json())["review"]["published"] is False
            await asyncio.sleep(2.0)
            assert _outbox(store_url) == 1
            with EmbeddedBroker(port=port, log_path=tmp_path / "late-broker.log"):
                deadline = time.monotonic() + 60
                while _outbox(store_url) and time.monotonic() < deadline:
                    await asyncio.sleep(0.5)
                assert _outbox(store_url) == 0
                records = [
                    orjson.loads(r.value)
                    async for r in read_topic(
                        f"127.0.0.1:{port}",
                        settings.console.corrections_topic,
                        max_records=1,
                        idle_timeout_s=10,
                    )
                ]
                assert [r["event_id"] for r in records] == ["w-1"]
                detail = await (await client.get("/api/verdicts/w-1")).json()
                assert detail["reviews"][0]["published"] is True

    asyncio.run(run())


def test_dashboard_counts_what_is_stored(store_url: str, broker: EmbeddedBroker) -> None:
    now = time.time()
    records = [
        verdict(
            f"d-{i}",
            at=now - 60 * (i % 30),
            outcome=("harmful", "unharmful", "unparsed", "engine_error")[i % 4],
            timings={"queue_ms": 1.0, "engine_ms": float(100 + i), "total_ms": 200.0},
            categories=[{"tag": "S9"}] if i % 4 == 0 else [],
        )
        for i in range(120)
    ]
    records.append(verdict("old", at=now - 7200, outcome="harmful"))  # outside the 1h window
    records.append(verdict("d-0", at=now, outcome="harmful", run_id="rr"))  # a replay: not traffic
    seed(store_url, records)
    add_users(store_url)

    async def run() -> dict[str, Any]:
        async with console_client(console_settings(store_url, broker.bootstrap)) as client:
            await login(client, "rita")
            for event_id, body in (
                ("d-0", {"action": "confirm"}),
                ("d-4", {"action": "correct", "answers": {"request": "unharmful"}}),
            ):
                assert (await client.post(f"/api/verdicts/{event_id}/review", json=body)).status == 201
            page = await (await client.get("/dashboard")).text()
            assert page.count("<svg") == 6
            for title in ("Verdicts per minute", "Harmful rate", "Engine latency", "Reviewer agreement"):
                assert title in page
            assert (await client.get("/api/dashboard?window=2y")).status == 400
            body: dict[str, Any] = await (await client.get("/api/dashboard?window=1h")).json()
            return body

    data = asyncio.run(run())
    totals = data["totals"]
    assert totals == {
        "verdicts": 120,
        "harmful": 30,
        "unparsed": 30,
        "engine_error": 30,
        "reviews": 2,
        "agreement_pct": 50.0,
    }
    assert sum(data["categories"]["S9"]) == 30
    per_minute = data["verdicts_per_minute"]
    assert sum(per_minute) == pytest.approx(120)  # one-minute buckets
    busy = [i for i, n in enumerate(per_minute) if n]
    assert len(busy) == 30  # one bucket per minute offset k = i % 30, oldest (k = 29) first
    for bucket, k in zip(busy, range(29, -1, -1), strict=True):
        group = [i for i in range(120) if i % 30 == k]
        harmful = sum(1 for i in group if i % 4 == 0)
        assert data["harmful_rate_pct"][bucket] == pytest.approx(100 * harmful / len(group))
    latencies = [float(100 + i) for i in range(120) if i % 30 == 0]  # the verdicts moderated at `now`
    assert data["engine_latency_ms"]["p50"][busy[-1]] == pytest.approx(statistics.median(latencies))
    assert data["bucket_s"] == 60
