"""The verdict store: PostgreSQL (any, or the embedded one) filled from Kafka by its own sink.

``database`` (where it lives, embedded server) → ``migrate`` (Alembic) →
``records`` (Kafka record → row) → ``verdicts`` (batched idempotent upserts) →
``sink`` (the consumer loop). The console's reads live beside them: ``queue``,
``reviews``, ``stats``; accounts in ``users``. Kept import-light: import the
submodules you need.
"""

from __future__ import annotations

__all__: list[str] = []
