"""Schema migrations with Alembic (plain SQL revisions in ``migrations/versions``).

Every command that opens the store runs :func:`upgrade` first; an advisory
lock taken inside the migration transaction makes concurrent starts wait for
each other instead of racing. PostgreSQL runs DDL in transactions, so a
failed migration leaves the schema as it was.
"""

from __future__ import annotations

from typing import Any

import psycopg

__all__ = ["SCRIPT_LOCATION", "current_revision", "upgrade"]

SCRIPT_LOCATION = "streams.store:migrations"


def _engine(conninfo: str) -> Any:
    from sqlalchemy import create_engine
    from sqlalchemy.pool import NullPool

    return create_engine(
        "postgresql+psycopg://", creator=lambda: psycopg.connect(conninfo), poolclass=NullPool
    )


def _config(connection: Any) -> Any:
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", SCRIPT_LOCATION)
    config.attributes["connection"] = connection
    return config


def upgrade(conninfo: str, revision: str = "head") -> None:
    from alembic import command

    engine = _engine(conninfo)
    try:
        with engine.connect() as connection:
            command.upgrade(_config(connection), revision)
    finally:
        engine.dispose()


def current_revision(conninfo: str) -> str | None:
    from alembic.runtime.migration import MigrationContext

    engine = _engine(conninfo)
    try:
        with engine.connect() as connection:
            rev: str | None = MigrationContext.configure(connection).get_current_revision()
            return rev
    finally:
        engine.dispose()
