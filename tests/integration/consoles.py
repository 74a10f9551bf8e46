"""Helpers for console tests: a real console app on a real store, seeded with verdict records."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import replace
from typing import Any

import psycopg
from aiohttp.test_utils import TestClient, TestServer

from streams.config import Settings
from streams.console.app import create_app
from streams.secret import Secret
from streams.store.database import open_database
from streams.store.records import VerdictRow, decode_record
from streams.store.roles import Role
from streams.store.users import add_user
from streams.store.verdicts import write_batch

PASSWORD = "s3cret-passphrase"  # noqa: S105 - test accounts in a throwaway database


class FakeKafkaRecord:
    """Stands in for aiokafka's ConsumerRecord when rows are written without a broker (named as a fake)."""

    def __init__(self, value: bytes, offset: int, topic: str = "moderation.archive") -> None:
        self.topic = topic
        self.partition = 0
        self.offset = offset
        self.value = value
        self.headers: list[tuple[str, bytes]] = []


def verdict(event_id: str, *, at: float, outcome: str = "unharmful", **extra: Any) -> dict[str, Any]:
    """A minimal archive record (the fields the store reads), overridable field by field."""
    request = "harmful" if outcome == "harmful" else ("unharmful" if outcome == "unharmful" else None)
    record: dict[str, Any] = {
        "schema_version": 1,
        "event_id": event_id,
        "conversation_id": f"c-{event_id}",
        "user_id": "u",
        "event_timestamp": at - 1,
        "moderated_at": at,
        "outcome": outcome,
        "status": "ok" if request else ("no_answer" if outcome == "unparsed" else None),
        "answers": {"request": request, "completion": None, "response": None},
        "has_response": False,
        "reasoning": [{"task": 1, "steps": ["The user asks something.", f"The request is {request}."]}],
        "raw": (
            "# Task 1\n\n## Reasoning Step 1: ...\n---\n\n"
            f"Answers: \nRequest: {request}\nCompletion: None\nResponse: None\n"
        ),
        "model": "GuardReasoner-1B",
        "engine": "recorded",
        "usage": {"prompt_tokens": 120, "completion_tokens": 80},
        "finish_reason": "stop",
        "error": None if outcome != "engine_error" else "EngineUnavailable: down",
        "attempts": 1,
        "timings": {"queue_ms": 5.0, "engine_ms": 100.0, "total_ms": 110.0},
    }
    record.update(extra)
    return record


def seed(url: str, records: Sequence[dict[str, Any]]) -> None:
    import asyncio

    import orjson

    rows = [decode_record(FakeKafkaRecord(orjson.dumps(r), i)) for i, r in enumerate(records)]
    assert all(isinstance(r, VerdictRow) for r in rows)

    async def run() -> None:
        conn = await psycopg.AsyncConnection.connect(url)
        try:
            await write_batch(conn, rows, [])  # type: ignore[arg-type]
        finally:
            await conn.close()

    asyncio.run(run())


def add_users(url: str) -> None:
    with psycopg.connect(url) as conn:
        for name, role in (("vera", Role.VIEWER), ("rita", Role.REVIEWER), ("adam", Role.ADMIN)):
            add_user(conn, name, role, PASSWORD)


def console_settings(url: str, bootstrap: str, **console: Any) -> Settings:
    base = Settings.from_env({})
    return replace(
        base,
        kafka=replace(base.kafka, bootstrap=bootstrap),
        store=replace(base.store, url=Secret(url)),
        console=replace(
            base.console, corrections_topic=f"moderation.corrections.t{int(time.time() * 1000)}", **console
        ),
    )


@asynccontextmanager
async def console_client(settings: Settings) -> AsyncIterator[TestClient[Any, Any]]:
    database = open_database(settings.store.database_url, migrate=False)
    app = create_app(settings, database)
    async with TestClient(TestServer(app)) as client:
        yield client


async def login(client: TestClient[Any, Any], username: str) -> dict[str, Any]:
    response = await client.post("/api/login", json={"username": username, "password": PASSWORD})
    assert response.status == 200, await response.text()
    body: dict[str, Any] = await response.json()
    return body
