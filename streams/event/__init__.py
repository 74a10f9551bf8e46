"""Chat events: the input contract (topic ``chat.events``) and its strict decoder."""

from __future__ import annotations

from streams.event.model import ChatEvent, EventLimits, decode_event, encode_event, peek_event_id

__all__ = ["ChatEvent", "EventLimits", "decode_event", "encode_event", "peek_event_id"]
