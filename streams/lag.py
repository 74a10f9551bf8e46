"""Consumer lag per partition, from what the worker's own consumer knows (no extra requests).

* ``guardstream_consumer_lag{topic,partition}``: high watermark − committed offset,
  the events of a partition not yet durably moderated (what Kafka's tools and KEDA's
  Kafka scaler call lag);
* ``guardstream_consumer_fetch_lag``: high watermark − the next offset to read;
* ``guardstream_consumer_highwater`` and ``guardstream_consumer_committed_offset``.

The high watermark is the one the last fetch response carried. It is exact on
Apache Kafka and also on the embedded broker (whose ``ListOffsets`` answer is wrong
after batched produce, but whose fetch responses are not). It is as fresh as the
last fetch: while the worker is paused (an engine outage) fetches go on, so lag
keeps growing with the input.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

from streams import metrics

__all__ = ["PartitionLag", "lag_of", "report_lag"]

PartitionLag = tuple[str, int, int, int | None, int | None]  # topic, partition, highwater, committed, next


def lag_of(
    assignment: Iterable[Any],
    highwater: Callable[[Any], int | None],
    committed: Callable[[Any], int | None],
    position: Callable[[Any], int | None],
) -> list[PartitionLag]:
    """(topic, partition, highwater, committed, next offset) per assigned partition with a known end."""
    out: list[PartitionLag] = []
    for tp in assignment:
        end = highwater(tp)
        if end is None or end < 0:
            continue
        out.append((tp.topic, tp.partition, end, committed(tp), position(tp)))
    return out


def report_lag(consumer: Any) -> list[PartitionLag]:
    """Update the lag gauges from a Faust consumer; returns what it reported."""
    committed = getattr(consumer, "_committed_offset", {})
    read = getattr(consumer, "_read_offset", {})
    rows = lag_of(
        consumer.assignment(),
        consumer.highwater,
        committed.get,
        lambda tp: read[tp] + 1 if read.get(tp) is not None else committed.get(tp),
    )
    for topic, partition, end, done, position in rows:
        labels = (topic, str(partition))
        metrics.CONSUMER_HIGHWATER.labels(*labels).set(end)
        metrics.CONSUMER_LAG.labels(*labels).set(max(0, end - (done or 0)))
        metrics.CONSUMER_FETCH_LAG.labels(*labels).set(max(0, end - (position or done or 0)))
        if done is not None:
            metrics.CONSUMER_COMMITTED.labels(*labels).set(done)
    return rows
