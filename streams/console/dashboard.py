"""The dashboard: a time window (``?window=15m|1h|6h|24h|7d``), its figures, and their charts."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from aiohttp import web
from markupsafe import Markup

from streams.console.charts import PALETTE, Series, line_chart, stacked_bar_chart
from streams.console.forms import FilterError
from streams.console.state import POOL
from streams.store.stats import Dashboard, dashboard

__all__ = ["DEFAULT_WINDOW", "WINDOWS", "build_dashboard", "charts", "window_of"]

# window name -> (length, bucket)
WINDOWS: dict[str, tuple[timedelta, timedelta]] = {
    "15m": (timedelta(minutes=15), timedelta(minutes=1)),
    "1h": (timedelta(hours=1), timedelta(minutes=1)),
    "6h": (timedelta(hours=6), timedelta(minutes=5)),
    "24h": (timedelta(hours=24), timedelta(minutes=15)),
    "7d": (timedelta(days=7), timedelta(hours=2)),
}
DEFAULT_WINDOW = "1h"
_MAX_CATEGORIES = len(PALETTE) - 1  # the rest are drawn as "other"


def window_of(request: web.Request) -> str:
    name = request.query.get("window", DEFAULT_WINDOW)
    if name not in WINDOWS:
        raise FilterError(f"window: one of {', '.join(WINDOWS)}")
    return name


async def build_dashboard(request: web.Request, *, now: datetime | None = None) -> Dashboard:
    length, bucket = WINDOWS[window_of(request)]
    now = now or datetime.now(UTC)
    epoch = datetime(1970, 1, 1, tzinfo=UTC)
    end = epoch + ((now - epoch) // bucket + 1) * bucket  # the current bucket is the last one
    async with request.app[POOL].connection() as conn:
        return await dashboard(conn, end=end, window=length, bucket=bucket)


def charts(d: Dashboard) -> dict[str, Markup]:
    xs = d.buckets
    tags = list(d.categories)
    shown = tags[:_MAX_CATEGORIES]
    category_series = [Series(tag, d.categories[tag], PALETTE[i]) for i, tag in enumerate(shown)]
    if len(tags) > len(shown):
        other = [sum(d.categories[t][i] for t in tags[len(shown) :]) for i in range(len(xs))]
        category_series.append(Series("other", other, PALETTE[-1]))
    return {
        "verdicts": line_chart("Verdicts per minute", xs, [Series("verdicts/min", d.per_minute, PALETTE[0])]),
        "harmful": line_chart(
            "Harmful rate", xs, [Series("harmful %", d.rate(d.harmful), PALETTE[1])], unit="%", y_max=100
        ),
        "categories": stacked_bar_chart("Harm categories over time", xs, category_series),
        "failures": line_chart(
            "Unparsed and engine-error rates",
            xs,
            [
                Series("unparsed %", d.rate(d.unparsed), PALETTE[3]),
                Series("engine_error %", d.rate(d.engine_error), PALETTE[1]),
            ],
            unit="%",
        ),
        "latency": line_chart(
            "Engine latency",
            xs,
            [
                Series("p50 ms", d.latency_p50_ms, PALETTE[0]),
                Series("p99 ms", d.latency_p99_ms, PALETTE[4]),
            ],
            unit="ms",
        ),
        "agreement": line_chart(
            "Reviewer agreement with the model",
            xs,
            [Series("agreeing %", d.agreement, PALETTE[2])],
            unit="%",
            y_max=100,
        ),
    }
