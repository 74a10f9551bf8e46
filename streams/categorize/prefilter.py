"""Literal prefilters for lexicon regexes: skip a pattern when its literal text is absent.

Python's ``re`` tries a long alternation at every position of the text, which
costs ~20 µs per pattern group per reasoning step. Most lexicon patterns start
with a literal word (``\\bsarin``) or an alternation of literal words
(``\\b(?:harm|hurt|stab)``). :func:`literal_triggers` finds those literals; a
pattern needs to run only when one of them occurs in the (lower-cased) text,
which a substring test answers in well under a microsecond.

The extraction is conservative: anything it cannot read with certainty
(a class, an optional group, a backreference at the start) gives ``None``,
meaning "always run this pattern". A trigger is only ever a literal that every
match must contain, so the prefilter never loses a match.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

__all__ = ["TriggerIndex", "literal_triggers"]

_LOOKBEHIND = re.compile(r"^\(\?<[!=](?:[^()\\]|\\.)*\)")
_META = set("\\.()[]{}?*+|^$")
_QUANT = set("?*+{")
_MIN_TRIGGER = 3


def _literal_run(text: str) -> str:
    """Leading literal characters of ``text``, dropping a last one that a quantifier makes optional."""
    run: list[str] = []
    for index, char in enumerate(text):
        if char in _META:
            if char in _QUANT and run:
                run.pop()
            return "".join(run)
        run.append(char)
        if index + 1 == len(text):
            break
    return "".join(run)


def _group_body(text: str) -> tuple[str, str] | None:
    """For text starting with ``(?:``, the group's body and what follows it."""
    depth = 0
    index = 0
    while index < len(text):
        char = text[index]
        if char == "\\":
            index += 2
            continue
        if char == "(":
            depth += 1
        elif char == ")":
            depth -= 1
            if depth == 0:
                return text[3:index], text[index + 1 :]
        index += 1
    return None


def _split_top(body: str) -> list[str] | None:
    """Top-level alternatives of a group body; None when it nests groups or classes."""
    if any(c in body for c in "()[]"):
        return None
    parts: list[str] = []
    current: list[str] = []
    index = 0
    while index < len(body):
        char = body[index]
        if char == "\\":
            current.append(body[index : index + 2])
            index += 2
            continue
        if char == "|":
            parts.append("".join(current))
            current = []
        else:
            current.append(char)
        index += 1
    parts.append("".join(current))
    return parts


def _top_level_alternation(pattern: str) -> bool:
    depth = 0
    in_class = False
    index = 0
    while index < len(pattern):
        char = pattern[index]
        if char == "\\":
            index += 2
            continue
        if in_class:
            in_class = char != "]"
        elif char == "[":
            in_class = True
        elif char == "(":
            depth += 1
        elif char == ")":
            depth -= 1
        elif char == "|" and depth == 0:
            return True
        index += 1
    return False


def literal_triggers(pattern: str) -> tuple[str, ...] | None:
    """Lower-case literals, one of which starts a word in every match of ``pattern``; None if unknown.

    Only patterns that begin with ``\\b`` (after any lookbehinds) get triggers.
    """
    if _top_level_alternation(pattern):
        return None
    text = pattern
    anchored = False
    while True:
        if text.startswith("\\b"):
            text, anchored = text[2:], True
        elif match := _LOOKBEHIND.match(text):
            text = text[match.end() :]
        else:
            break
    if not anchored:
        return None  # a trigger must start a word for the index below
    if text.startswith("(?:"):
        group = _group_body(text)
        if group is None:
            return None
        body, after = group
        if after[:1] in _QUANT:
            return None  # an optional group: no literal is certain
        alternatives = _split_top(body)
        if alternatives is None:
            return None
        triggers = tuple(_literal_run(alt).lower() for alt in alternatives)
        return triggers if all(len(t) >= _MIN_TRIGGER for t in triggers) else None
    trigger = _literal_run(text).lower()
    return (trigger,) if len(trigger) >= _MIN_TRIGGER else None


_TOKEN = re.compile(r"[a-z0-9]+")


class TriggerIndex:
    """Which of many patterns can match a text, from the words of the text.

    Every regex word start (``\\b`` before a letter or digit) is also the start of
    a ``[a-z0-9]+`` token of the lower-cased text, so a pattern whose trigger
    begins no token cannot match. A trigger is indexed by its first three
    characters; a token is compared only with the triggers sharing its first
    three. Patterns without triggers are always candidates.
    """

    def __init__(self, triggers: Sequence[tuple[str, ...] | None]):
        self._always = frozenset(i for i, t in enumerate(triggers) if t is None)
        self._by_key: dict[str, list[tuple[str, int]]] = {}
        for index, options in enumerate(triggers):
            for trigger in options or ():
                head = _TOKEN.match(trigger)
                if head is None or len(head.group(0)) < _MIN_TRIGGER:
                    self._always |= {index}
                    continue
                word = head.group(0)
                self._by_key.setdefault(word[:_MIN_TRIGGER], []).append((word, index))

    def candidates(self, lowered: str) -> frozenset[int]:
        """Indexes of the patterns that may match ``lowered`` (a lower-cased text)."""
        found = set(self._always)
        for token in set(_TOKEN.findall(lowered)):
            for word, index in self._by_key.get(token[:_MIN_TRIGGER], ()):
                if token.startswith(word):
                    found.add(index)
        return frozenset(found)
