"""Errors of the verdict store (a branch of :class:`streams.errors.StreamsError`)::

StreamsError
└── StoreError             the store's database cannot be reached, set up or used
    └── StoreUnavailable   the database is down or refused the connection (retryable)
"""

from __future__ import annotations

from streams.errors import StreamsError

__all__ = ["StoreError", "StoreUnavailable"]


class StoreError(StreamsError):
    """The verdict store's database cannot be reached, set up or used."""


class StoreUnavailable(StoreError):
    """The database is down or refused the connection; retrying later may succeed."""
