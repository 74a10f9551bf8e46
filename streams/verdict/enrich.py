"""Attach harm categories to a verdict (the wiring point for the worker)."""

from __future__ import annotations

from dataclasses import replace

from streams.categorize import Categorizer
from streams.verdict.model import Outcome, Verdict

__all__ = ["categorize_verdict"]


def categorize_verdict(verdict: Verdict, categorizer: Categorizer) -> Verdict:
    """``verdict`` with ``categories``, ``harms`` and ``severity`` set when it is harmful; else unchanged."""
    if verdict.outcome is not Outcome.HARMFUL:
        return verdict
    result = categorizer.categorize(
        verdict.reasoning, request=verdict.request, completion=verdict.completion, response=verdict.response
    )
    return replace(verdict, categories=result.categories, harms=result.harms, severity=result.severity)
