"""Output records: what a verdict or a bad input turns into, kept below the broker's size limit.

:class:`Outputs` builds every record the worker publishes; :class:`Publisher`
sends a list of records and waits for every acknowledgement (the CLI, replay and
tests use it; the worker's own publishing with per-record error handling is
:class:`streams.delivery.Outbox`).
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from streams.config import DLQ_KEY_BYTES, FindingFormat, Settings, TopicNames
from streams.errors import ContractError, PublishError
from streams.sinks.disclosure import Disclosure
from streams.sinks.findings import Replay, ecs_finding, ocsf_finding, trace_id_from
from streams.sinks.findings.ecs import mark_ecs_truncated
from streams.sinks.findings.ocsf import mark_ocsf_truncated
from streams.sinks.fit import Marker, fit_json
from streams.sinks.records import alert_record, archive_record, block_record, dlq_record
from streams.telemetry import passthrough_headers
from streams.verdict import Action, Outcome, Verdict

__all__ = [
    "EVENT_ID_HEADER",
    "SOURCE_HEADER",
    "OutputRecord",
    "Outputs",
    "Publisher",
    "RecordProducer",
    "records_for",
]

logger = logging.getLogger(__name__)

EVENT_ID_HEADER = "guardstream-event-id"
SOURCE_HEADER = "guardstream-source"  # on DLQ records: "<topic>:<partition>:<offset>" of the input
Headers = list[tuple[str, bytes]]


@dataclass(frozen=True, slots=True)
class OutputRecord:
    topic: str
    key: bytes | None
    value: bytes
    headers: Headers
    fallback: bool = False  # a replacement for a record the broker refused: never replaced again

    @property
    def size(self) -> int:
        """Bytes of key, value and headers (what counts against the broker's record limit)."""
        return (
            len(self.value)
            + (len(self.key) if self.key else 0)
            + sum(len(k) + len(v) for k, v in self.headers)
        )


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


Build = Callable[[Headers], dict[str, Any]]  # a record's JSON, given its headers


def records_for(
    verdict: Verdict,
    topics: TopicNames,
    headers: Headers | Callable[[str], Headers] | None = None,
    *,
    max_record_bytes: int = 1_000_000,
    findings: Sequence[FindingFormat] = (),
    include_text: bool = False,
    replay: Replay | None = None,
) -> list[OutputRecord]:
    """The records a verdict produces, each below ``max_record_bytes``: block, alert, one SIEM
    finding per format in ``findings`` (harmful verdicts only), archive last.

    ``headers``: extra headers for every record, or a function of the topic giving
    them (trace context differs per record when tracing is on); a finding's
    ``trace.id`` comes from its own ``traceparent``. ``include_text``: block, alert
    and findings records carry the chat text and unredacted reasoning (privacy
    default: digests and redacted reasoning). ``replay``: the verdict comes from a
    re-moderation run; its findings are marked as such and link to the original.
    """
    shown = Disclosure(verdict, include_text=include_text)
    plan: list[tuple[str, Build, Marker | None]] = []
    if Action.BLOCK in verdict.actions:  # block first: it is the one that must be fast
        plan.append((topics.block, lambda _: block_record(verdict, shown), None))
    if Action.ALERT in verdict.actions:
        plan.append((topics.alerts, lambda _: alert_record(verdict, shown), None))
    if verdict.outcome is Outcome.HARMFUL:
        if FindingFormat.ECS in findings:
            plan.append(
                (
                    topics.findings_ecs,
                    lambda h: ecs_finding(verdict, shown, trace_id=trace_id_from(h), replay=replay),
                    mark_ecs_truncated,
                )
            )
        if FindingFormat.OCSF in findings:
            plan.append(
                (
                    topics.findings_ocsf,
                    lambda h: ocsf_finding(
                        verdict, shown, trace_id=trace_id_from(h), replay=replay, source=topics.events
                    ),
                    mark_ocsf_truncated,
                )
            )
    if Action.ARCHIVE in verdict.actions:
        plan.append((topics.archive, lambda _: archive_record(verdict), None))
    key = verdict.conversation_id.encode()
    event_header = (EVENT_ID_HEADER, verdict.event_id.encode())
    records = []
    for topic, build, mark in plan:
        extra = headers(topic) if callable(headers) else headers or []
        hdrs = [event_header, *extra]
        limit = max_record_bytes - len(key) - sum(len(k) + len(v) for k, v in hdrs)
        records.append(OutputRecord(topic, key, fit_json(build(hdrs), limit, mark=mark), hdrs))
    return records


class Outputs:
    """Builds the worker's output records: verdict records, dead letters, and replacements for
    records the broker refused. Every record it makes fits ``max_record_bytes``."""

    def __init__(
        self,
        topics: TopicNames,
        *,
        max_record_bytes: int,
        dlq_max_value_bytes: int,
        findings: Sequence[FindingFormat] = (),
        include_text: bool = False,
    ) -> None:
        self.topics = topics
        self._max_record_bytes = max_record_bytes
        self._dlq_max_value_bytes = dlq_max_value_bytes
        self._findings = tuple(findings)
        self._include_text = include_text

    @classmethod
    def from_settings(cls, settings: Settings) -> Outputs:
        """The live worker's outputs: its topics, record bounds, findings and privacy settings."""
        return cls(
            settings.topics,
            max_record_bytes=settings.kafka.max_record_bytes,
            dlq_max_value_bytes=settings.policy.dlq_max_value_bytes,
            findings=settings.findings.enabled(),
            include_text=settings.privacy.include_text,
        )

    def for_verdict(
        self,
        verdict: Verdict,
        headers: Headers | Callable[[str], Headers] | None = None,
        *,
        replay: Replay | None = None,
    ) -> list[OutputRecord]:
        return records_for(
            verdict,
            self.topics,
            headers,
            max_record_bytes=self._max_record_bytes,
            findings=self._findings,
            include_text=self._include_text,
            replay=replay,
        )

    def dead_letter(
        self,
        error: ContractError,
        *,
        key: bytes | None,
        value: bytes | None,
        topic: str,
        partition: int,
        offset: int,
        timestamp: float | None,
        headers: Headers | None = None,
        event_id: str | None = None,
    ) -> OutputRecord:
        """A DLQ record for an input that cannot be moderated (keyed like the input)."""
        record = dlq_record(
            error,
            key=key,
            value=value,
            topic=topic,
            partition=partition,
            offset=offset,
            timestamp=timestamp,
            max_value_bytes=self._dlq_max_value_bytes,
            event_id=event_id,
        )
        hdrs = self._dlq_headers(topic, partition, offset, event_id, headers)
        dlq_key = key[:DLQ_KEY_BYTES] if key is not None else None
        limit = self._max_record_bytes - len(dlq_key or b"") - sum(len(k) + len(v) for k, v in hdrs)
        return OutputRecord(self.topics.dlq, dlq_key, fit_json(record, limit), hdrs)

    def rejected(
        self, output: OutputRecord, *, topic: str, partition: int, offset: int, error: BaseException
    ) -> OutputRecord:
        """A small DLQ record standing for an output record the broker refused."""
        event_id = next((v.decode(errors="replace") for k, v in output.headers if k == EVENT_ID_HEADER), None)
        record = dlq_record(
            ContractError("output_rejected", f"the broker refused the {output.topic} record: {error!r}"),
            key=output.key,
            value=None,
            topic=topic,
            partition=partition,
            offset=offset,
            timestamp=None,
            event_id=event_id,
        )
        record["output"] = {
            "topic": output.topic,
            "size": output.size,
            "sha256": hashlib.sha256(output.value).hexdigest(),
            "error": repr(error)[:1000],
        }
        hdrs = self._dlq_headers(topic, partition, offset, event_id, output.headers)
        key = output.key[:DLQ_KEY_BYTES] if output.key is not None else None
        return OutputRecord(self.topics.dlq, key, fit_json(record, 64 * 1024), hdrs, fallback=True)

    @staticmethod
    def _dlq_headers(
        topic: str, partition: int, offset: int, event_id: str | None, headers: Headers | None
    ) -> Headers:
        hdrs: Headers = [(SOURCE_HEADER, f"{topic}:{partition}:{offset}".encode())]
        if event_id is not None:
            hdrs.append((EVENT_ID_HEADER, event_id.encode()))
        hdrs.extend(passthrough_headers(headers))
        return hdrs


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
