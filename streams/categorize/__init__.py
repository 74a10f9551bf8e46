"""Harm categories: taxonomy tags with evidence, harm phrases and severity for harmful verdicts.

The stage between ``parse`` and ``verdict``: it reads the parsed answers and
reasoning, never the chat text.
"""

from __future__ import annotations

from streams.categorize.categorizer import Categorizer, deciding_tasks
from streams.categorize.harms import extract_harms
from streams.categorize.model import Categorization, Evidence, HarmCategory, Severity
from streams.categorize.severity import Exposure, exposure
from streams.categorize.taxonomy import Hazard, SeverityAdjust, Taxonomy, load_taxonomy

__all__ = [
    "Categorization",
    "Categorizer",
    "Evidence",
    "Exposure",
    "HarmCategory",
    "Hazard",
    "Severity",
    "SeverityAdjust",
    "Taxonomy",
    "deciding_tasks",
    "exposure",
    "extract_harms",
    "load_taxonomy",
]
