"""Publishing output records: hand a whole batch to the producer, then wait for every ack once.

Offsets of the input are acknowledged only after :meth:`Publisher.publish`
returns, so a crash before that re-delivers the events (at-least-once).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import orjson

from streams.config import TopicNames
from streams.errors import PublishError
from streams.sinks.records import alert_record, archive_record, block_record
from streams.verdict import Action, Verdict

__all__ = ["EVENT_ID_HEADER", "OutputRecord", "Publisher", "RecordProducer", "records_for"]

logger = logging.getLogger(__name__)

EVENT_ID_HEADER = "guardstream-event-id"
Headers = list[tuple[str, bytes]]


@dataclass(frozen=True, slots=True)
class OutputRecord:
    topic: str
    key: bytes | None
    value: bytes
    headers: Headers


class RecordProducer(Protocol):
    """The send half of a Kafka producer (faust's ``app.producer`` and aiokafka both fit)."""

    async def send(
        self,
        topic: str,
        key: bytes | None,
        value: bytes | None,
        partition: int | None,
        timestamp: float | None,
        headers: Headers | None,
    ) -> Awaitable[Any]: ...


_BUILDERS = {
    Action.BLOCK: block_record,
    Action.ALERT: alert_record,
    Action.ARCHIVE: archive_record,
}


_ORDER = (Action.BLOCK, Action.ALERT, Action.ARCHIVE)  # block first: it is the one that must be fast


def records_for(verdict: Verdict, topics: TopicNames, headers: Headers | None = None) -> list[OutputRecord]:
    """The records a verdict produces, one per action (archive last)."""
    key = verdict.conversation_id.encode()
    hdrs = [(EVENT_ID_HEADER, verdict.event_id.encode()), *(headers or [])]
    names = {Action.BLOCK: topics.block, Action.ALERT: topics.alerts, Action.ARCHIVE: topics.archive}
    return [
        OutputRecord(names[action], key, orjson.dumps(_BUILDERS[action](verdict)), hdrs)
        for action in _ORDER
        if action in verdict.actions
    ]


class Publisher:
    """Sends records and waits until the broker acknowledged every one of them."""

    def __init__(self, producer: RecordProducer) -> None:
        self._producer = producer

    async def publish(self, records: Sequence[OutputRecord]) -> None:
        try:
            pending = [
                await self._producer.send(r.topic, r.key, r.value, None, None, r.headers) for r in records
            ]
            await asyncio.gather(*pending)
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            raise PublishError(f"publishing {len(records)} record(s) failed: {exc!r}") from exc
