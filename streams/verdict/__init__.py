"""Verdicts: what GuardStream decided about one chat event, why, and where it goes."""

from __future__ import annotations

from streams.verdict.enrich import categorize_verdict
from streams.verdict.model import SCHEMA_VERSION, Action, Outcome, Timings, Verdict
from streams.verdict.route import route

__all__ = ["SCHEMA_VERSION", "Action", "Outcome", "Timings", "Verdict", "categorize_verdict", "route"]
