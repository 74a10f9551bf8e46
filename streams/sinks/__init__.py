"""Sinks: verdicts → block / alert / archive records, bad input → dead-letter records; and publishing."""

from __future__ import annotations

from streams.sinks.publish import OutputRecord, Publisher, RecordProducer, records_for
from streams.sinks.records import alert_record, archive_record, block_record, dlq_record, short_reason
from streams.sinks.schemas import SCHEMA_NAMES, load_schema, validate

__all__ = [
    "SCHEMA_NAMES",
    "OutputRecord",
    "Publisher",
    "RecordProducer",
    "alert_record",
    "archive_record",
    "block_record",
    "dlq_record",
    "load_schema",
    "records_for",
    "short_reason",
    "validate",
]
