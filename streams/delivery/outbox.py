"""Publish the outputs of finished events, wait for the broker, then acknowledge the events.

Events finish in any order. Each hands its output records (verdict records or
a dead-letter record) to the :class:`Outbox`, which sends whatever has
accumulated as one batch, waits until the broker acknowledged every record,
and only then reports the events as published (so their offsets can be
committed, in order, by :class:`~streams.delivery.offsets.OffsetTracker`).

Failures are handled per record:

* a record the broker refuses *because of the record* (too large, invalid,
  against a policy) is replaced by the small record ``on_rejected`` builds (a
  dead-letter record that names the problem) and sent again: one bad record
  never stops the worker;
* when that replacement is refused too, the topology is misconfigured (the dead-letter
  topic takes no small record): :class:`PublishFailed` at once, nothing acknowledged;
* anything else (broker unreachable, leader elections, timeouts) is retried
  with backoff for ``publish_timeout_s``; after that :class:`PublishFailed` is
  raised without acknowledging anything, so a restart re-delivers the events.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

from aiokafka.errors import (
    CorruptRecordException,
    InvalidTimestampError,
    MessageSizeTooLargeError,
    PolicyViolationError,
    RecordListTooLargeError,
    RecordTooLargeError,
    UnsupportedForMessageFormatError,
)

from streams import metrics
from streams.delivery.offsets import Ticket
from streams.errors import PublishError
from streams.sinks.publish import OutputRecord, RecordProducer

__all__ = ["RECORD_ERRORS", "Outbox", "PublishFailed"]

logger = logging.getLogger(__name__)

# The broker (or the producer) refuses the record itself: retrying it cannot help.
RECORD_ERRORS: tuple[type[BaseException], ...] = (
    MessageSizeTooLargeError,
    RecordTooLargeError,
    RecordListTooLargeError,
    CorruptRecordException,
    InvalidTimestampError,
    UnsupportedForMessageFormatError,
    PolicyViolationError,
)

_SLOW_PUBLISH_S = 30.0  # a publish slower than this is logged (the producer times out by itself)

Rejected = Callable[[OutputRecord, Ticket, BaseException], OutputRecord]
Published = Callable[[list[Ticket]], Awaitable[None]]


class PublishFailed(PublishError):
    """The broker did not take the outputs within ``publish_timeout_s``, or refused a dead letter
    that stands for a refused record: stop without acking."""


def _cause(exc: BaseException) -> BaseException:
    """The Kafka error behind Faust's ``ProducerSendError`` wrapper."""
    return exc.__cause__ if exc.__cause__ is not None and not isinstance(exc, RECORD_ERRORS) else exc


class _Item:
    __slots__ = ("records", "ticket")

    def __init__(self, ticket: Ticket, records: Sequence[OutputRecord]) -> None:
        self.ticket = ticket
        self.records = records


class Outbox:
    """Batches the outputs of finished events; one publish in flight at a time."""

    def __init__(
        self,
        producer: RecordProducer,
        *,
        on_published: Published,
        on_rejected: Rejected,
        publish_timeout_s: float = 60.0,
        backoff_initial_s: float = 0.2,
        backoff_max_s: float = 5.0,
    ) -> None:
        self._producer = producer
        self._on_published = on_published
        self._on_rejected = on_rejected
        self._timeout_s = publish_timeout_s
        self._backoff = (backoff_initial_s, backoff_max_s)
        self._items: list[_Item] = []
        self._wakeup = asyncio.Event()
        self._idle = asyncio.Event()
        self._idle.set()

    def put(self, ticket: Ticket, records: Sequence[OutputRecord]) -> None:
        """Queue one finished event's outputs (an event with no outputs is queued too: it gets acked)."""
        self._items.append(_Item(ticket, records))
        self._idle.clear()
        self._wakeup.set()

    @property
    def queued(self) -> int:
        return len(self._items)

    async def run(self) -> None:
        """Publish until cancelled. Raises :class:`PublishFailed` when the broker stays unreachable."""
        while True:
            await self._wakeup.wait()
            self._wakeup.clear()
            while self._items:
                items, self._items = self._items, []
                await self._publish(items)
                await self._on_published([item.ticket for item in items])
            self._idle.set()

    async def wait_idle(self) -> None:
        """Until everything queued so far is published (or the run loop stopped)."""
        await self._idle.wait()

    async def _publish(self, items: list[_Item]) -> None:
        pending: list[tuple[OutputRecord, Ticket]] = [
            (record, item.ticket) for item in items if not item.ticket.dropped for record in item.records
        ]
        deadline = time.monotonic() + self._timeout_s
        delay = self._backoff[0]
        while pending:
            failures = await self._send_all(pending)
            pending = []
            transient: BaseException | None = None
            for record, ticket, exc in failures:
                if isinstance(exc, RECORD_ERRORS) and record.fallback:
                    # the small dead letter standing for a refused record is refused too: sending
                    # it again cannot help, and nothing may be acked without it (a config error)
                    raise PublishFailed(
                        f"the broker refuses the {record.size}-byte dead-letter record that stands for a "
                        f"refused output, on {record.topic}: {exc!r}; check that topic's "
                        "max.message.bytes and policies"
                    ) from exc
                if isinstance(exc, RECORD_ERRORS):
                    logger.warning(
                        'output record rejected, dead-lettering it topic="%s" bytes=%d error="%r"',
                        record.topic,
                        record.size,
                        exc,
                    )
                    metrics.OUTPUTS_REJECTED.labels(type(exc).__name__).inc()
                    pending.append((self._on_rejected(record, ticket, exc), ticket))
                else:
                    transient = exc
                    pending.append((record, ticket))
            if transient is None:
                continue
            if time.monotonic() + delay > deadline:
                raise PublishFailed(
                    f"publishing {len(pending)} record(s) failed for {self._timeout_s:g}s: {transient!r}"
                ) from transient
            logger.warning(
                'publish failed, retrying records=%d backoff_s=%.1f error="%r"',
                len(pending),
                delay,
                transient,
            )
            await asyncio.sleep(delay)
            delay = min(delay * 2, self._backoff[1])

    async def _send_all(
        self, pending: list[tuple[OutputRecord, Ticket]]
    ) -> list[tuple[OutputRecord, Ticket, BaseException]]:
        """Send every record, wait for every acknowledgement; the ones that failed, with why."""
        sent: list[tuple[OutputRecord, Ticket, Any]] = []
        failures: list[tuple[OutputRecord, Ticket, BaseException]] = []
        for record, ticket in pending:
            try:
                future = await self._producer.send(
                    record.topic, record.key, record.value, None, None, record.headers
                )
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # refused before it left (too large for the producer, not started)
                failures.append((record, ticket, _cause(exc)))
                continue
            sent.append((record, ticket, future))
        if sent:
            acks = asyncio.gather(*(future for _, _, future in sent), return_exceptions=True)
            done, _ = await asyncio.wait([acks], timeout=_SLOW_PUBLISH_S)
            if not done:
                logger.warning("waiting for the broker to acknowledge records=%d", len(sent))
            results = await acks
            for (record, ticket, _), result in zip(sent, results, strict=True):
                if isinstance(result, asyncio.CancelledError):
                    raise result
                if isinstance(result, BaseException):
                    failures.append((record, ticket, _cause(result)))
        return failures
