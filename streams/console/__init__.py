"""The review console: ``app`` (aiohttp application) with ``auth`` (login, sessions, CSRF),
``views`` (HTML pages), ``api`` (JSON), ``dashboard`` + ``charts`` (SVG), ``corrections``
(publishing reviews to Kafka) and ``cli`` (``guardstream console``)."""

from __future__ import annotations

__all__: list[str] = []
