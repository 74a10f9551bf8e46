"""Sinks: verdicts → block / alert / findings / archive records, bad input → dead-letter records;
and publishing."""

from __future__ import annotations

from streams.sinks.disclosure import Disclosure
from streams.sinks.findings import Replay, ecs_finding, ocsf_finding
from streams.sinks.fit import fit_json
from streams.sinks.publish import (
    EVENT_ID_HEADER,
    SOURCE_HEADER,
    OutputRecord,
    Outputs,
    Publisher,
    RecordProducer,
    records_for,
)
from streams.sinks.records import (
    alert_record,
    archive_record,
    block_record,
    dlq_record,
    replay_record,
    short_reason,
)
from streams.sinks.schemas import SCHEMA_NAMES, load_schema, validate

__all__ = [
    "EVENT_ID_HEADER",
    "SCHEMA_NAMES",
    "SOURCE_HEADER",
    "Disclosure",
    "OutputRecord",
    "Outputs",
    "Publisher",
    "RecordProducer",
    "Replay",
    "alert_record",
    "archive_record",
    "block_record",
    "dlq_record",
    "ecs_finding",
    "fit_json",
    "load_schema",
    "ocsf_finding",
    "records_for",
    "replay_record",
    "short_reason",
    "validate",
]
