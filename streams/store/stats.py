"""Dashboard figures over a time window, in fixed buckets (live verdicts only; replays are not traffic).

Three grouped queries, each reading only the window's rows through a time index:
verdict counts by outcome and engine latency percentiles per bucket, category
tags per bucket, and reviews (with agreement with the model) per bucket of
review time. Empty buckets are filled with zeros (rates and latencies: None).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import psycopg

__all__ = ["Dashboard", "dashboard"]


@dataclass(frozen=True, slots=True, kw_only=True)
class Dashboard:
    start: datetime
    bucket: timedelta
    buckets: list[datetime]
    verdicts: list[int]
    harmful: list[int]
    unparsed: list[int]
    engine_error: list[int]
    latency_p50_ms: list[float | None]
    latency_p99_ms: list[float | None]
    categories: dict[str, list[int]] = field(default_factory=dict)
    reviews: list[int] = field(default_factory=list)
    agreeing: list[int] = field(default_factory=list)

    @property
    def per_minute(self) -> list[float]:
        minutes = self.bucket / timedelta(minutes=1)
        return [n / minutes for n in self.verdicts]

    def rate(self, counts: list[int]) -> list[float | None]:
        """``counts`` as a percentage of the verdicts of each bucket (None where there were none)."""
        return [100.0 * c / n if n else None for c, n in zip(counts, self.verdicts, strict=True)]

    @property
    def agreement(self) -> list[float | None]:
        return [100.0 * a / n if n else None for a, n in zip(self.agreeing, self.reviews, strict=True)]

    def totals(self) -> dict[str, Any]:
        reviews = sum(self.reviews)
        return {
            "verdicts": sum(self.verdicts),
            "harmful": sum(self.harmful),
            "unparsed": sum(self.unparsed),
            "engine_error": sum(self.engine_error),
            "reviews": reviews,
            "agreement_pct": 100.0 * sum(self.agreeing) / reviews if reviews else None,
        }

    def to_dict(self) -> dict[str, Any]:
        return {
            "start": self.start.timestamp(),
            "bucket_s": self.bucket.total_seconds(),
            "buckets": [b.timestamp() for b in self.buckets],
            "verdicts_per_minute": self.per_minute,
            "harmful_rate_pct": self.rate(self.harmful),
            "unparsed_rate_pct": self.rate(self.unparsed),
            "engine_error_rate_pct": self.rate(self.engine_error),
            "engine_latency_ms": {"p50": self.latency_p50_ms, "p99": self.latency_p99_ms},
            "categories": self.categories,
            "reviewer_agreement_pct": self.agreement,
            "reviews": self.reviews,
            "totals": self.totals(),
        }


_VERDICTS = """
SELECT date_bin(%(bucket)s, moderated_at, %(start)s) AS b,
       count(*),
       count(*) FILTER (WHERE outcome = 'harmful'),
       count(*) FILTER (WHERE outcome = 'unparsed'),
       count(*) FILTER (WHERE outcome = 'engine_error'),
       percentile_cont(0.5) WITHIN GROUP (ORDER BY engine_ms) FILTER (WHERE cached IS NOT TRUE),
       percentile_cont(0.99) WITHIN GROUP (ORDER BY engine_ms) FILTER (WHERE cached IS NOT TRUE)
FROM verdicts
WHERE run_id = '' AND moderated_at >= %(start)s AND moderated_at < %(end)s
GROUP BY b
"""
_TAGS = """
SELECT date_bin(%(bucket)s, moderated_at, %(start)s) AS b, tag, count(*)
FROM verdict_tags
WHERE live AND moderated_at >= %(start)s AND moderated_at < %(end)s
GROUP BY b, tag
"""
_REVIEWS = """
SELECT date_bin(%(bucket)s, created_at, %(start)s) AS b, count(*), count(*) FILTER (WHERE agrees)
FROM reviews
WHERE created_at >= %(start)s AND created_at < %(end)s
GROUP BY b
"""


async def dashboard(
    conn: psycopg.AsyncConnection[Any], *, end: datetime, window: timedelta, bucket: timedelta
) -> Dashboard:
    """Figures for ``[end - window, end)`` in buckets of ``bucket`` (aligned on the window's start)."""
    n = max(1, int(window / bucket))
    start = end - bucket * n
    buckets = [start + bucket * i for i in range(n)]
    index = {b: i for i, b in enumerate(buckets)}
    params = {"bucket": bucket, "start": start, "end": end}
    counts = {k: [0] * n for k in ("verdicts", "harmful", "unparsed", "engine_error", "reviews", "agreeing")}
    p50: list[float | None] = [None] * n
    p99: list[float | None] = [None] * n
    for row in await (await conn.execute(_VERDICTS, params)).fetchall():
        i = index.get(row[0])
        if i is None:
            continue
        for key, value in zip(("verdicts", "harmful", "unparsed", "engine_error"), row[1:5], strict=True):
            counts[key][i] = int(value)
        p50[i], p99[i] = row[5], row[6]
    categories: dict[str, list[int]] = {}
    for b, tag, count in await (await conn.execute(_TAGS, params)).fetchall():
        if b in index:
            categories.setdefault(tag, [0] * n)[index[b]] = int(count)
    for b, total, agreeing in await (await conn.execute(_REVIEWS, params)).fetchall():
        if b in index:
            counts["reviews"][index[b]] = int(total)
            counts["agreeing"][index[b]] = int(agreeing)
    return Dashboard(
        start=start,
        bucket=bucket,
        buckets=buckets,
        verdicts=counts["verdicts"],
        harmful=counts["harmful"],
        unparsed=counts["unparsed"],
        engine_error=counts["engine_error"],
        latency_p50_ms=p50,
        latency_p99_ms=p99,
        categories=dict(sorted(categories.items(), key=lambda kv: -sum(kv[1]))),
        reviews=counts["reviews"],
        agreeing=counts["agreeing"],
    )
