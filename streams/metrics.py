"""Prometheus metrics of a worker (served on ``/metrics`` by :mod:`streams.health`)."""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

__all__ = [
    "BATCH_SIZE",
    "CACHE_BYTES",
    "CACHE_ENTRIES",
    "CACHE_HIT_RATIO",
    "CACHE_LOOKUPS",
    "CONSUMER_COMMITTED",
    "CONSUMER_FETCH_LAG",
    "CONSUMER_HIGHWATER",
    "CONSUMER_LAG",
    "DEAD_LETTERS",
    "EARLY_EXITS",
    "END_TO_END",
    "ENGINE_ERRORS",
    "ENGINE_LATENCY",
    "ENGINE_OUTAGES",
    "ENGINE_UP",
    "EVENTS",
    "IN_FLIGHT",
    "OUTPUTS_REJECTED",
    "TOKENS",
    "VERDICTS",
    "WINDOWS",
]

_LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120)

EVENTS = Counter("guardstream_events", "Chat event records consumed (valid or not)")
VERDICTS = Counter("guardstream_verdicts", "Verdicts published, by outcome", ["outcome"])
DEAD_LETTERS = Counter("guardstream_dead_letters", "Input records sent to the DLQ, by reason", ["reason"])
ENGINE_LATENCY = Histogram(
    "guardstream_engine_latency_seconds",
    "Engine time per verdict, retries included",
    buckets=_LATENCY_BUCKETS,
)
ENGINE_ERRORS = Counter("guardstream_engine_errors", "Verdicts without model output, by error", ["error"])
TOKENS = Histogram(
    "guardstream_tokens",
    "Tokens per verdict",
    ["kind"],
    buckets=(16, 64, 128, 256, 512, 768, 1024, 2048, 4096),
)
BATCH_SIZE = Histogram(
    "guardstream_batch_size",
    "Events per batch taken from Kafka",
    buckets=(1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024),
)
END_TO_END = Histogram(
    "guardstream_end_to_end_seconds", "Event timestamp to verdict published", buckets=_LATENCY_BUCKETS
)
IN_FLIGHT = Gauge("guardstream_in_flight_events", "Events being moderated (taken, outputs not yet published)")
ENGINE_UP = Gauge(
    "guardstream_engine_up", "1 while the engine serves, 0 during an outage (the worker pauses)"
)
ENGINE_OUTAGES = Counter("guardstream_engine_outages", "Engine outages detected (each pauses the worker)")
OUTPUTS_REJECTED = Counter(
    "guardstream_outputs_rejected",
    "Output records the broker refused (replaced by a dead-letter record), by error",
    ["error"],
)
CACHE_LOOKUPS = Counter("guardstream_cache_lookups", "Verdict cache lookups, by result", ["result"])
CACHE_HIT_RATIO = Gauge("guardstream_cache_hit_ratio", "Share of verdict cache lookups that hit, since start")
CACHE_ENTRIES = Gauge("guardstream_cache_entries", "Outputs held by the verdict cache")
CACHE_BYTES = Gauge("guardstream_cache_bytes", "Bytes held by the verdict cache (estimate)")
CONSUMER_LAG = Gauge(
    "guardstream_consumer_lag",
    "Events not yet committed: high watermark (from fetch responses) - committed offset",
    ["topic", "partition"],
)
CONSUMER_FETCH_LAG = Gauge(
    "guardstream_consumer_fetch_lag", "High watermark - next offset to read", ["topic", "partition"]
)
CONSUMER_HIGHWATER = Gauge(
    "guardstream_consumer_highwater", "High watermark of the last fetch response", ["topic", "partition"]
)
CONSUMER_COMMITTED = Gauge(
    "guardstream_consumer_committed_offset", "The group's committed offset", ["topic", "partition"]
)
EARLY_EXITS = Counter(
    "guardstream_early_exits",
    "Prompt-only generations stopped at Task 2: answered from Task 1, or continued",
    ["result"],
)
WINDOWS = Histogram(
    "guardstream_windows",
    "Windows per long input moderated in pieces",
    buckets=(2, 3, 4, 6, 8, 12, 16, 32),
)
