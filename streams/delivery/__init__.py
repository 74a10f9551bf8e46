"""At-least-once delivery: offsets acknowledged strictly in order, outputs published before acks."""

from __future__ import annotations

from streams.delivery.offsets import OffsetTracker, Ticket
from streams.delivery.outbox import Outbox, PublishFailed

__all__ = ["OffsetTracker", "Outbox", "PublishFailed", "Ticket"]
