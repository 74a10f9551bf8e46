"""Acknowledge consumed events strictly in offset order, per partition.

Faust commits, per partition, the end of the first run of consecutive acked
offsets. When the committed offset is unknown or 0 (a new consumer group, or
right after a rebalance) its guard against a gap *before* that run is skipped
(faust-streaming issue #606): acking a later batch while an earlier one is still
with the engine lets Faust commit past the earlier one, which a crash then loses.

:class:`OffsetTracker` never lets that happen: it hands an event to ``ack`` only
once every earlier event of the same partition (in the order they were taken)
is done too, so the offsets Faust sees acked always form one run that starts at
the oldest unfinished event. Events of a partition that was revoked are never
acked afterwards (the new owner reads them again from the committed offset).
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Hashable, Iterable
from typing import Any

__all__ = ["OffsetTracker", "Ticket"]


class Ticket:
    """One consumed event on its way through the worker."""

    __slots__ = ("done", "dropped", "handle", "offset", "partition")

    def __init__(self, partition: Hashable, offset: int, handle: Any) -> None:
        self.partition = partition
        self.offset = offset
        self.handle = handle
        self.done = False
        self.dropped = False

    def __repr__(self) -> str:
        return f"Ticket({self.partition!r}, {self.offset})"


class OffsetTracker:
    """Tickets per partition in the order taken; releases them for acking in that order.

    ``max_pending`` bounds the tickets held (done or not): a slow event keeps the
    later events of its partition from being acknowledged, and :meth:`wait_for_room`
    makes the consumer wait rather than buffer without limit.
    """

    def __init__(self, *, max_pending: int) -> None:
        self._queues: dict[Hashable, deque[Ticket]] = {}
        self._pending = 0
        self._max_pending = max_pending
        self._room = asyncio.Event()
        self._room.set()

    @property
    def pending(self) -> int:
        return self._pending

    @property
    def full(self) -> bool:
        return self._pending >= self._max_pending

    def track(self, partition: Hashable, offset: int, handle: Any) -> Ticket:
        ticket = Ticket(partition, offset, handle)
        queue = self._queues.get(partition)
        if queue is None:
            queue = self._queues[partition] = deque()
        queue.append(ticket)
        self._pending += 1
        if self._pending >= self._max_pending:
            self._room.clear()
        return ticket

    def complete(self, tickets: Iterable[Ticket]) -> list[Ticket]:
        """Mark tickets done; returns the tickets that may now be acked, in offset order."""
        touched: set[Hashable] = set()
        for ticket in tickets:
            if not ticket.dropped:
                ticket.done = True
                touched.add(ticket.partition)
        ready: list[Ticket] = []
        for partition in touched:
            queue = self._queues.get(partition)
            while queue and queue[0].done:
                ready.append(queue.popleft())
        self._release(len(ready))
        return ready

    def revoke(self, partitions: Iterable[Hashable]) -> list[Ticket]:
        """Forget the tickets of partitions this worker no longer owns; returns the dropped ones."""
        dropped: list[Ticket] = []
        for partition in partitions:
            queue = self._queues.pop(partition, None)
            if queue:
                for ticket in queue:
                    ticket.dropped = True
                dropped.extend(queue)
        self._release(len(dropped))
        return dropped

    def retain(self, partitions: Iterable[Hashable]) -> list[Ticket]:
        """Drop every partition not in ``partitions`` (after a new assignment)."""
        keep = set(partitions)
        return self.revoke([p for p in self._queues if p not in keep])

    async def wait_for_room(self) -> None:
        while self._pending >= self._max_pending:
            self._room.clear()
            await self._room.wait()

    def _release(self, count: int) -> None:
        self._pending -= count
        if self._pending < self._max_pending:
            self._room.set()
