"""Alembic environment: online migrations only, on the connection :mod:`streams.store.migrate` passes in."""

from __future__ import annotations

from alembic import context
from sqlalchemy import text

# Any fixed number: concurrent upgrades (a sink and a console starting together) queue on it.
_MIGRATION_LOCK = 7_253_013

if context.is_offline_mode():
    raise SystemExit("the verdict store migrates online only (streams.store.migrate.upgrade)")

connection = context.config.attributes["connection"]
context.configure(connection=connection, target_metadata=None, transactional_ddl=True)
with context.begin_transaction():
    connection.execute(text(f"SELECT pg_advisory_xact_lock({_MIGRATION_LOCK})"))
    context.run_migrations()
