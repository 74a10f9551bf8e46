"""``guardstream export --format sft|dpo [--out FILE] [--skipped FILE]``: training data from reviews.

Writes JSON lines (stdout, or FILE written atomically). A JSON summary goes to
stderr: how many records were written and every reviewed event that was not,
with the reason (or, with ``--skipped FILE``, those as JSON lines in FILE).
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from collections import Counter
from pathlib import Path
from typing import IO, Any

import orjson

from streams.config import Settings

__all__ = ["add_commands", "export_training_data"]


def export_training_data(settings: Settings, fmt: str, out: IO[bytes]) -> dict[str, Any]:
    """Write the records of format ``fmt`` to ``out``; returns the summary (with the skipped list)."""
    from streams.export.source import labelled_events
    from streams.export.training import ExportFormat, Skipped, training_record
    from streams.store.database import open_database

    export_format = ExportFormat(fmt)
    written = 0
    reviewed = 0
    skipped: list[dict[str, str]] = []
    database = open_database(settings.store.database_url)
    try:
        with database.connect() as conn, conn.transaction():  # one snapshot for the whole export
            for event in labelled_events(conn):
                reviewed += 1
                record = training_record(event, export_format)
                if isinstance(record, Skipped):
                    skipped.append(record.to_dict())
                    continue
                out.write(orjson.dumps(record) + b"\n")
                written += 1
    finally:
        database.close()
    return {
        "format": export_format.value,
        "reviewed_events": reviewed,
        "written": written,
        "skipped_by_reason": dict(Counter(s["reason"] for s in skipped)),
        "skipped": skipped,
    }


def cmd_export(args: argparse.Namespace, settings: Settings) -> int:
    if args.out:
        target = Path(args.out)
        fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", dir=target.parent or Path("."))
        try:
            with os.fdopen(fd, "wb") as handle:
                summary = export_training_data(settings, args.format, handle)
            os.replace(tmp, target)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
    else:
        summary = export_training_data(settings, args.format, sys.stdout.buffer)
        sys.stdout.buffer.flush()
    if args.skipped:
        Path(args.skipped).write_bytes(b"".join(orjson.dumps(s) + b"\n" for s in summary.pop("skipped")))
    sys.stderr.write(orjson.dumps(summary).decode() + "\n")
    return 0


def add_commands(sub: Any) -> None:
    p = sub.add_parser("export", help="reviewed verdicts as GuardReasoner training data (JSON lines)")
    p.add_argument("--format", required=True, choices=["sft", "dpo"], help="sft: R-SFT records; dpo: pairs")
    p.add_argument("--out", help="write to FILE (default stdout)")
    p.add_argument("--skipped", help="list the reviewed events not exported in FILE (JSON lines)")
    p.set_defaults(func=cmd_export)
