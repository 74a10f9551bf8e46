"""Harm categories for a harmful verdict, from the model's reasoning.

Method: a transparent pattern lexicon per tag (``taxonomy.json``), matched
against each reasoning step of the *deciding* tasks: Task 1 when the request is
harmful, Task 3 when the response is harmful (both when both are).

1. A tag is given when one of its ``patterns`` matches a step, or both regexes
   of one of its ``pairs`` match the same step. A match whose clause has a
   negation before it ("does not involve violence") is ignored.
2. If the deciding tasks give no tag (some outputs leave Task 1 empty or write
   only ``Request: harmful``), the other tasks are searched the same way
   (Task 2's refusal reasoning usually names what was refused).
3. If still nothing, ``weak_patterns`` (e.g. S2's "illegal", "crime") decide.
4. Otherwise the verdict gets no tag: ``harms`` still says what the model saw,
   and the severity is the taxonomy's ``default_severity``.

Every tag carries its evidence: task, 1-based step and the words that matched.
Pure and fast (precompiled regexes; ~0.1 ms per verdict, see README), safe to
run in the worker for every harmful verdict. Never raises on any reasoning.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

from streams.categorize.harms import extract_harms
from streams.categorize.model import Categorization, Evidence, HarmCategory, Severity
from streams.categorize.prefilter import TriggerIndex, literal_triggers
from streams.categorize.severity import adjustment, exposure
from streams.categorize.taxonomy import Hazard, Taxonomy, load_taxonomy
from streams.parse import Completion, Harm, TaskReasoning

__all__ = ["Categorizer", "deciding_tasks"]

logger = logging.getLogger(__name__)

_NEGATION = re.compile(
    r"\b(?:not|no|never|without|nor|neither|cannot|isn't|doesn't|don't|aren't|wasn't)\b|n't\b",
    re.IGNORECASE,
)
_CLAUSE_ENDS = ".;:!?,\n"
_NEGATION_WINDOW = 48  # characters before a match searched for a negation
_MAX_MATCHED = 5  # words kept per evidence item


def deciding_tasks(request: Harm | None, response: Harm | None) -> tuple[int, ...]:
    """Task 1 for a harmful request, Task 3 for a harmful response; () when neither."""
    return tuple(task for task, harm in ((1, request), (3, response)) if harm is Harm.HARMFUL)


@dataclass(frozen=True, slots=True)
class _Rule:
    """A hazard's regexes, by their index in the categoriser's :class:`TriggerIndex`."""

    hazard: Hazard
    strong: tuple[int, ...]
    pairs: tuple[tuple[int, int], ...]
    weak: tuple[int, ...]


class _Lexicon:
    """Every hazard's regexes, and the index that says which can match a step."""

    def __init__(self, hazards: Sequence[Hazard]):
        self.patterns: list[re.Pattern[str]] = []
        self.owner: list[int] = []  # pattern index -> rule index
        rules = []
        for number, hazard in enumerate(hazards):

            def add(pattern: re.Pattern[str], number: int = number) -> int:
                self.patterns.append(pattern)
                self.owner.append(number)
                return len(self.patterns) - 1

            rules.append(
                _Rule(
                    hazard,
                    tuple(add(p) for p in hazard.patterns),
                    tuple((add(x), add(y)) for x, y in hazard.pairs),
                    tuple(add(p) for p in hazard.weak_patterns),
                )
            )
        self.rules = tuple(rules)
        self.index = TriggerIndex([literal_triggers(p.pattern) for p in self.patterns])

    def match(self, text: str, *, weak: bool) -> Iterator[tuple[_Rule, tuple[str, ...]]]:
        """(rule, matched words in text order) for each hazard that matches one step."""
        candidates = self.index.candidates(text.lower())
        for number in sorted({self.owner[i] for i in candidates}):
            rule = self.rules[number]
            hits: list[tuple[int, str]] = []
            if weak:
                hits.extend(self._hits(rule.weak, candidates, text))
            else:
                hits.extend(self._hits(rule.strong, candidates, text))
                for first, second in rule.pairs:
                    if first in candidates and second in candidates:
                        a = list(self._hits((first,), candidates, text))
                        b = list(self._hits((second,), candidates, text)) if a else []
                        if a and b:
                            hits.extend(a + b)
            if hits:
                words = dict.fromkeys(word for _, word in sorted(hits))
                yield rule, tuple(words)[:_MAX_MATCHED]

    def _hits(
        self, indexes: Sequence[int], candidates: frozenset[int], text: str
    ) -> Iterator[tuple[int, str]]:
        for i in indexes:
            if i not in candidates:
                continue
            for match in self.patterns[i].finditer(text):
                word = match.group(0).strip()
                if word and not _negated(text, match.start()):
                    yield match.start(), word


def _negated(text: str, start: int) -> bool:
    """A negation word between the start of the match's clause and the match."""
    floor = max(0, start - _NEGATION_WINDOW)
    clause_start = max(text.rfind(c, floor, start) for c in _CLAUSE_ENDS) + 1
    return _NEGATION.search(text, max(floor, clause_start), start) is not None


class Categorizer:
    """Gives harmful verdicts taxonomy tags with evidence, harm phrases and a severity.

    ``max_harms`` / ``max_harm_chars`` bound the harm phrases.
    """

    def __init__(self, taxonomy: Taxonomy | None = None, *, max_harms: int = 5, max_harm_chars: int = 80):
        self.taxonomy = taxonomy if taxonomy is not None else load_taxonomy()
        self.max_harms = max_harms
        self.max_harm_chars = max_harm_chars
        self._lexicon = _Lexicon(self.taxonomy.hazards)

    def categorize(
        self,
        reasoning: Sequence[TaskReasoning],
        *,
        request: Harm | None,
        completion: Completion | None = None,
        response: Harm | None = None,
    ) -> Categorization:
        """Categorise one verdict's reasoning; a verdict that is not harmful gets an empty result."""
        kind = exposure(request, completion, response)
        deciding = deciding_tasks(request, response)
        if kind is None or not deciding:
            return Categorization()
        steps = _steps_by_task(reasoning)
        others = tuple(t for t in sorted(steps, key=lambda t: (t == 0, t)) if t not in deciding)
        found = self._search(steps, deciding, weak=False) or self._search(steps, others, weak=False)
        if not found:
            found = self._search(steps, deciding + others, weak=True)
        given = {rule.hazard.tag for rule, _ in found}
        dropped = {tag for rule, _ in found for tag in rule.hazard.supersedes}
        found = [
            (rule, ev) for rule, ev in found if rule.hazard.tag not in dropped or rule.hazard.tag not in given
        ]
        shift = adjustment(kind, self.taxonomy.adjust)
        categories = sorted(
            (
                HarmCategory(
                    tag=rule.hazard.tag,
                    name=rule.hazard.name,
                    severity=rule.hazard.severity.shifted(shift),
                    evidence=tuple(evidence),
                )
                for rule, evidence in found
            ),
            key=lambda c: -c.severity,
        )
        severity = (
            max(c.severity for c in categories)
            if categories
            else self.taxonomy.default_severity.shifted(shift)
        )
        harm_steps = [s for task in deciding for s in steps.get(task, ())]
        harms = extract_harms(harm_steps, limit=self.max_harms, max_chars=self.max_harm_chars)
        return Categorization(categories=tuple(categories), harms=harms, severity=Severity(severity))

    def _search(
        self, steps: dict[int, tuple[str, ...]], tasks: Sequence[int], *, weak: bool
    ) -> list[tuple[_Rule, list[Evidence]]]:
        found: dict[str, tuple[_Rule, list[Evidence]]] = {}
        for task in tasks:
            for number, text in enumerate(steps.get(task, ()), start=1):
                for rule, words in self._lexicon.match(text, weak=weak):
                    entry = found.setdefault(rule.hazard.tag, (rule, []))
                    entry[1].append(Evidence(task=task, step=number, matched=words))
        order = {r.hazard.tag: i for i, r in enumerate(self._lexicon.rules)}
        return sorted(found.values(), key=lambda entry: order[entry[0].hazard.tag])


def _steps_by_task(reasoning: Sequence[TaskReasoning]) -> dict[int, tuple[str, ...]]:
    """Steps per task number; a task written twice (looping outputs) keeps its first steps."""
    steps: dict[int, tuple[str, ...]] = {}
    for part in reasoning:
        steps.setdefault(part.task, part.steps)
    return steps
