"""OpenTelemetry tracing: context through Kafka headers, messaging and GenAI spans.

Off by default and then free: no SDK provider is installed, every helper
returns at once, and an incoming ``traceparent`` header is copied to the
outputs unchanged so a trace still connects across GuardStream. On
(``OTEL_TRACES_EXPORTER=otlp|console``, or a provider passed to
:func:`setup_tracing` by tests) each event gets:

* ``process <events topic>`` (CONSUMER): child of the producer's context from
  the event's ``traceparent`` header, so the verdict shares the chat
  message's trace id; messaging attributes (system, destination, partition,
  offset, consumer group);
* ``text_completion <model>`` (CLIENT): the engine call, with GenAI attributes
  (operation, request model and sampling, usage tokens, finish reasons);
* ``send <output topic>`` (PRODUCER): one per output record, whose context is
  written into that record's ``traceparent`` header.

Chat text and reasoning are put on spans only with ``capture_content``.
"""

from __future__ import annotations

import contextlib
import logging
import secrets
from collections.abc import Iterator, Sequence
from typing import Any

from opentelemetry import context as otel_context
from opentelemetry import propagate, trace
from opentelemetry.propagators.textmap import Getter, Setter
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import SpanProcessor, TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, ConsoleSpanExporter, SpanExporter
from opentelemetry.trace import Span, SpanKind, Status, StatusCode

from streams.engines.base import Generation

__all__ = [
    "TRACE_HEADERS",
    "engine_span",
    "extract",
    "inject",
    "is_enabled",
    "new_trace_headers",
    "passthrough_headers",
    "process_span",
    "OutputTrace",
    "record_generation",
    "setup_tracing",
    "shutdown_tracing",
]

logger = logging.getLogger(__name__)

TRACE_HEADERS = ("traceparent", "tracestate")
_INSTRUMENTATION = "streams"

_state: dict[str, Any] = {"enabled": False, "capture": False, "provider": None}


class _HeaderGetter(Getter[Sequence[tuple[str, bytes]]]):
    def get(self, carrier: Sequence[tuple[str, bytes]], key: str) -> list[str] | None:
        values = [v.decode("latin-1") for k, v in carrier if k.lower() == key and v is not None]
        return values or None

    def keys(self, carrier: Sequence[tuple[str, bytes]]) -> list[str]:
        return [k for k, _ in carrier]


class _HeaderSetter(Setter[list[tuple[str, bytes]]]):
    def set(self, carrier: list[tuple[str, bytes]], key: str, value: str) -> None:
        carrier.append((key, value.encode("latin-1")))


_GETTER = _HeaderGetter()
_SETTER = _HeaderSetter()


def setup_tracing(
    exporter_name: str = "none",
    *,
    service_name: str = "guardstream",
    capture_content: bool = False,
    processor: SpanProcessor | None = None,
    exporter: SpanExporter | None = None,
) -> bool:
    """Install an SDK tracer provider; returns whether tracing is on.

    ``exporter_name`` is ``OTEL_TRACES_EXPORTER``: ``otlp`` (endpoint and protocol
    from the standard ``OTEL_EXPORTER_OTLP_*`` variables), ``console``, or
    ``none``. Tests pass ``processor`` (e.g. a SimpleSpanProcessor around the
    SDK's InMemorySpanExporter) or ``exporter`` instead.
    """
    _state["capture"] = capture_content
    if processor is None:
        if exporter is None:
            exporter = _named_exporter(exporter_name)
        if exporter is None:
            _state["enabled"] = False
            return False
        processor = BatchSpanProcessor(exporter)
    provider = TracerProvider(resource=Resource.create({"service.name": service_name}))
    provider.add_span_processor(processor)
    _state.update(enabled=True, provider=provider)
    return True


def _named_exporter(name: str) -> SpanExporter | None:
    name = (name or "none").split(",")[0].strip().lower()
    if name == "none":
        return None
    if name == "console":
        return ConsoleSpanExporter()
    if name == "otlp":
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

        return OTLPSpanExporter()
    logger.warning('unknown OTEL_TRACES_EXPORTER="%s": tracing stays off', name)
    return None


def shutdown_tracing() -> None:
    provider = _state.get("provider")
    if provider is not None:
        provider.shutdown()
    _state.update(enabled=False, provider=None)


def is_enabled() -> bool:
    return bool(_state["enabled"])


def _tracer() -> trace.Tracer:
    provider: TracerProvider = _state["provider"]
    return provider.get_tracer(_INSTRUMENTATION)


def extract(headers: Sequence[tuple[str, bytes]] | None) -> otel_context.Context | None:
    return propagate.extract(headers or [], getter=_GETTER) if headers else None


def inject(span: Span) -> list[tuple[str, bytes]]:
    carrier: list[tuple[str, bytes]] = []
    propagate.inject(carrier, context=trace.set_span_in_context(span), setter=_SETTER)
    return carrier


_MAX_TRACE_HEADER_BYTES = 512


def passthrough_headers(headers: Sequence[tuple[str, bytes | None]] | None) -> list[tuple[str, bytes]]:
    """The incoming W3C trace headers, to copy onto the outputs when tracing is off
    (missing or oversized values are dropped: input headers are untrusted)."""
    return [
        (k, v)
        for k, v in headers or ()
        if v is not None and len(v) <= _MAX_TRACE_HEADER_BYTES and k.lower() in TRACE_HEADERS
    ]


_OFF: contextlib.AbstractContextManager[None] = contextlib.nullcontext()


def process_span(
    *,
    topic: str,
    partition: int,
    offset: int,
    group: str,
    event_id: str | None,
    headers: Sequence[tuple[str, bytes]] | None,
) -> contextlib.AbstractContextManager[Span | None]:
    """CONSUMER span for one event, continuing the producer's trace (a no-op yielding None when off)."""
    if not _state["enabled"]:
        return _OFF
    return _process_span(topic, partition, offset, group, event_id, headers)


@contextlib.contextmanager
def _process_span(
    topic: str,
    partition: int,
    offset: int,
    group: str,
    event_id: str | None,
    headers: Sequence[tuple[str, bytes]] | None,
) -> Iterator[Span]:
    attributes: dict[str, Any] = {
        "messaging.system": "kafka",
        "messaging.operation.type": "process",
        "messaging.operation.name": "process",
        "messaging.destination.name": topic,
        "messaging.destination.partition.id": str(partition),
        "messaging.kafka.offset": offset,
        "messaging.consumer.group.name": group,
    }
    if event_id is not None:
        attributes["messaging.message.id"] = event_id
    with _tracer().start_as_current_span(
        f"process {topic}", context=extract(headers), kind=SpanKind.CONSUMER, attributes=attributes
    ) as span:
        yield span


def engine_span(
    *, engine: str, model: str, max_tokens: int, temperature: float, top_p: float, prompt: str
) -> contextlib.AbstractContextManager[Span | None]:
    """CLIENT span around one generation (GenAI semantic conventions); a no-op yielding None when off."""
    if not _state["enabled"]:
        return _OFF
    return _engine_span(engine, model, max_tokens, temperature, top_p, prompt)


@contextlib.contextmanager
def _engine_span(
    engine: str, model: str, max_tokens: int, temperature: float, top_p: float, prompt: str
) -> Iterator[Span]:
    provider_name = engine.split(":", 1)[0]
    attributes: dict[str, Any] = {
        "gen_ai.operation.name": "text_completion",
        "gen_ai.provider.name": provider_name,
        "gen_ai.system": provider_name,
        "gen_ai.request.model": model,
        "gen_ai.request.max_tokens": max_tokens,
        "gen_ai.request.temperature": temperature,
        "gen_ai.request.top_p": top_p,
    }
    if _state["capture"]:
        attributes["gen_ai.prompt"] = prompt
    with _tracer().start_as_current_span(
        f"text_completion {model}", kind=SpanKind.CLIENT, attributes=attributes, record_exception=True
    ) as span:
        yield span


def record_generation(span: Span | None, result: Generation | BaseException, *, model: str) -> None:
    """Usage, finish reason (and the error, if any) of one engine call, on its span."""
    if span is None:
        return
    if isinstance(result, BaseException):
        span.set_attribute("gen_ai.response.model", model)
        span.set_attribute("error.type", type(result).__name__)
        span.set_status(Status(StatusCode.ERROR, str(result)))
        return
    span.set_attribute("gen_ai.response.model", result.model)
    if result.prompt_tokens is not None:
        span.set_attribute("gen_ai.usage.input_tokens", result.prompt_tokens)
    if result.completion_tokens is not None:
        span.set_attribute("gen_ai.usage.output_tokens", result.completion_tokens)
    if result.finish_reason:
        span.set_attribute("gen_ai.response.finish_reasons", [result.finish_reason])
    if _state["capture"] and result.text:
        span.set_attribute("gen_ai.completion", result.text)


def new_trace_headers(topic: str) -> tuple[list[tuple[str, bytes]], Span | None]:
    """Headers that start a trace for a new chat event (``guardstream send``).

    With tracing on: a PRODUCER span (end it once sent) and its context; off: a
    fresh random W3C ``traceparent``, so the verdicts can still be joined to it.
    """
    if _state["enabled"]:
        span = _tracer().start_span(
            f"send {topic}",
            kind=SpanKind.PRODUCER,
            attributes={
                "messaging.system": "kafka",
                "messaging.operation.type": "send",
                "messaging.destination.name": topic,
            },
        )
        return inject(span), span
    trace_id = secrets.randbits(128) or 1
    span_id = secrets.randbits(64) or 1
    return [("traceparent", f"00-{trace_id:032x}-{span_id:016x}-01".encode())], None


class OutputTrace:
    """Trace headers for one event's output records.

    On: a PRODUCER span per output record (``send <topic>``), child of the event's
    process span, its context in that record's ``traceparent``; :meth:`end` ends them
    once the broker acknowledged the records. Off: the incoming trace headers are
    copied unchanged, and nothing else happens.
    """

    __slots__ = ("_event_id", "_incoming", "spans")

    def __init__(self, event_id: str, incoming: Sequence[tuple[str, bytes | None]] | None) -> None:
        self._event_id = event_id
        self._incoming = passthrough_headers(incoming) if not _state["enabled"] else []
        self.spans: list[Span] = []

    def headers(self, topic: str) -> list[tuple[str, bytes]]:
        if not _state["enabled"]:
            return self._incoming
        span = _send_span(topic, self._event_id)
        self.spans.append(span)
        return inject(span)

    def end(self) -> None:
        for span in self.spans:
            span.end()
        self.spans = []


def _send_span(topic: str, event_id: str) -> Span:
    return _tracer().start_span(
        f"send {topic}",
        kind=SpanKind.PRODUCER,
        attributes={
            "messaging.system": "kafka",
            "messaging.operation.type": "send",
            "messaging.operation.name": "send",
            "messaging.destination.name": topic,
            "messaging.message.id": event_id,
        },
    )
