"""The hazard taxonomy: tags, names, severities and the patterns that find them.

The packaged default (``taxonomy.json`` beside this module) is the MLCommons
hazard taxonomy as Llama Guard 3 uses it (S1 … S14). A deployment can supply
its own file of the same shape (``load_taxonomy(path)``)::

    {
      "name": "...", "version": "1",
      "default_severity": "medium",            # a harmful verdict no tag matched
      "severity_adjust": {"response_given": 1, "request_refused": -1},
      "hazards": [
        {"tag": "S9", "name": "...", "description": "...", "severity": "critical",
         "patterns": ["\\\\bsarin\\\\b", ...],         # any match gives the tag
         "pairs": [["<regex A>", "<regex B>"]],  # optional: A and B in one step
         "weak_patterns": ["\\\\billegal\\\\b"],    # optional: only if no tag matched at all
         "supersedes": ["S12"]}                  # optional: tags dropped when this one is given
      ]
    }

Patterns are Python regular expressions, matched case-insensitively against
each reasoning step. Anything malformed raises :class:`ConfigError` naming the
file and the entry.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

from streams.categorize.model import Severity
from streams.errors import ConfigError

__all__ = ["DEFAULT_TAXONOMY", "Hazard", "SeverityAdjust", "Taxonomy", "load_taxonomy"]

DEFAULT_TAXONOMY = "taxonomy.json"  # packaged beside this module
_TAG = re.compile(r"^[A-Za-z0-9_.:-]{1,32}$")


@dataclass(frozen=True, slots=True)
class Hazard:
    tag: str
    name: str
    description: str
    severity: Severity
    patterns: tuple[re.Pattern[str], ...] = ()
    pairs: tuple[tuple[re.Pattern[str], re.Pattern[str]], ...] = ()
    weak_patterns: tuple[re.Pattern[str], ...] = ()
    supersedes: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class SeverityAdjust:
    """Levels added to a tag's severity by what the assistant did (see ``streams.categorize.severity``)."""

    response_given: int = 1
    request_refused: int = -1


@dataclass(frozen=True, slots=True)
class Taxonomy:
    name: str
    version: str
    hazards: tuple[Hazard, ...]
    default_severity: Severity = Severity.MEDIUM
    adjust: SeverityAdjust = SeverityAdjust()
    source: str = ""

    def hazard(self, tag: str) -> Hazard:
        for hazard in self.hazards:
            if hazard.tag == tag:
                return hazard
        raise KeyError(tag)

    @property
    def tags(self) -> tuple[str, ...]:
        return tuple(h.tag for h in self.hazards)


def load_taxonomy(path: str | Path | None = None) -> Taxonomy:
    """Load a taxonomy file; ``None`` loads the packaged MLCommons / Llama Guard 3 one."""
    if path is None:
        source = f"streams.categorize/{DEFAULT_TAXONOMY}"
        text = resources.files("streams.categorize").joinpath(DEFAULT_TAXONOMY).read_text("utf-8")
    else:
        source = str(path)
        try:
            text = Path(path).read_text("utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            raise ConfigError(f"taxonomy file {source}: cannot read it ({exc})") from exc
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ConfigError(f"taxonomy file {source}: not valid JSON ({exc})") from exc
    return _build(data, source)


def _build(data: Any, source: str) -> Taxonomy:
    where = f"taxonomy file {source}"
    if not isinstance(data, dict):
        raise ConfigError(f"{where}: the top level must be an object")
    raw_hazards = data.get("hazards")
    if not isinstance(raw_hazards, list) or not raw_hazards:
        raise ConfigError(f"{where}: 'hazards' must be a non-empty list")
    hazards = tuple(_hazard(h, f"{where}, hazards[{i}]") for i, h in enumerate(raw_hazards))
    tags = [h.tag for h in hazards]
    if len(set(tags)) != len(tags):
        raise ConfigError(f"{where}: duplicate tags in {tags}")
    for hazard in hazards:
        unknown = set(hazard.supersedes) - set(tags) | ({hazard.tag} & set(hazard.supersedes))
        if unknown:
            raise ConfigError(f"{where}: {hazard.tag} supersedes unknown or own tags {sorted(unknown)}")
    adjust = data.get("severity_adjust", {})
    if not isinstance(adjust, dict) or set(adjust) - {"response_given", "request_refused"}:
        raise ConfigError(f"{where}: 'severity_adjust' takes only response_given and request_refused")
    for key, value in adjust.items():
        if not isinstance(value, int) or isinstance(value, bool) or not -3 <= value <= 3:
            raise ConfigError(f"{where}: severity_adjust.{key} must be an integer from -3 to 3")
    default = data.get("default_severity", "medium")
    try:
        default_severity = Severity.parse(default)
    except ConfigError as exc:
        raise ConfigError(f"{where}: default_severity: {exc}") from exc
    return Taxonomy(
        name=str(data.get("name", "custom")),
        version=str(data.get("version", "")),
        hazards=hazards,
        default_severity=default_severity,
        adjust=SeverityAdjust(**adjust),
        source=source,
    )


def _hazard(raw: Any, where: str) -> Hazard:
    if not isinstance(raw, dict):
        raise ConfigError(f"{where}: must be an object")
    tag = raw.get("tag")
    if not isinstance(tag, str) or not _TAG.match(tag):
        raise ConfigError(f"{where}: 'tag' must be a short string of letters, digits or _.:- (got {tag!r})")
    where = f"{where} ({tag})"
    name = raw.get("name")
    if not isinstance(name, str) or not name.strip():
        raise ConfigError(f"{where}: 'name' must be a non-empty string")
    try:
        severity = Severity.parse(raw.get("severity"))
    except ConfigError as exc:
        raise ConfigError(f"{where}: {exc}") from exc
    patterns = _patterns(raw.get("patterns", []), f"{where}.patterns")
    weak = _patterns(raw.get("weak_patterns", []), f"{where}.weak_patterns")
    raw_pairs = raw.get("pairs", [])
    if not isinstance(raw_pairs, list) or not all(isinstance(p, list) and len(p) == 2 for p in raw_pairs):
        raise ConfigError(f"{where}.pairs: must be a list of [regex, regex] pairs")
    pairs = tuple((a, b) for a, b in (_patterns(p, f"{where}.pairs[{i}]") for i, p in enumerate(raw_pairs)))
    if not patterns and not pairs and not weak:
        raise ConfigError(f"{where}: needs at least one of patterns, pairs, weak_patterns")
    supersedes = raw.get("supersedes", [])
    if not isinstance(supersedes, list) or not all(isinstance(s, str) for s in supersedes):
        raise ConfigError(f"{where}.supersedes: must be a list of tags")
    description = raw.get("description", "")
    return Hazard(
        tag=tag,
        name=name.strip(),
        description=description if isinstance(description, str) else "",
        severity=severity,
        patterns=patterns,
        pairs=pairs,
        weak_patterns=weak,
        supersedes=tuple(supersedes),
    )


def _patterns(raw: Any, where: str) -> tuple[re.Pattern[str], ...]:
    if not isinstance(raw, list) or not all(isinstance(p, str) and p for p in raw):
        raise ConfigError(f"{where}: must be a list of non-empty regular expressions")
    compiled = []
    for pattern in raw:
        try:
            compiled.append(re.compile(pattern, re.IGNORECASE))
        except re.error as exc:
            raise ConfigError(f"{where}: bad regular expression {pattern!r} ({exc})") from exc
    return tuple(compiled)
