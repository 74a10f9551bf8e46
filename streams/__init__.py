"""GuardStream: streaming chat moderation on Kafka with GuardReasoner, verdicts with their reasoning.

Pipeline, one package per stage: ``event`` → ``prompt`` → ``engines`` → ``parse`` → ``verdict`` → ``sinks``.
"""

from __future__ import annotations

from streams.config import Settings
from streams.event import ChatEvent
from streams.verdict import Verdict

__all__ = ["ChatEvent", "Settings", "Verdict", "__version__"]

__version__ = "0.1.0"
