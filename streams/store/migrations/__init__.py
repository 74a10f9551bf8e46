"""Alembic migrations of the verdict store (``env.py`` and plain SQL revisions in ``versions/``)."""
