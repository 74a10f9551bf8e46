"""Open-ended harm phrases, taken from the model's own reasoning.

GuardReasoner names the harm in plain words ("The human user is requesting
instructions for making a bomb, which ..."). The rule, over the deciding
task's steps in order:

1. find a *cue* that introduces what the request or response is about
   (``involves``, ``promotes``, ``requesting``, ``asking for``, ``instructions
   for``, ``such as``, ``specifically``, ``a form of`` ...);
2. take the words after it up to a clause boundary: punctuation, or a word that
   starts a new clause (``which``, ``that``, ``because``, ``as``, ``and is``,
   a modal or a form of *to be*), at most ``max_words`` words;
3. drop leading articles and hedges (``a``, ``the``, ``potentially``,
   ``information on how to``); keep the phrase only if it names something:
   not only generic words (``harmful``, ``illegal activities``, ``content``).

Phrases are deduplicated case-insensitively (one that contains, or is contained
in, an earlier one is dropped), cut to ``max_chars`` at a word boundary, and at most ``limit`` are
kept, in order of appearance.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

__all__ = ["extract_harms"]

_CUE = re.compile(
    r"\b(?:involv(?:es|ing|e)|promot(?:es|ing|e)|facilitat(?:es|ing|e)|encourag(?:es|ing|e)|"
    r"enabl(?:es|ing|e)|glorif(?:ies|ying|y)|condon(?:es|ing|e)|"
    r"request(?:ing|ed)|requests? (?:for|to)|asking (?:for|about|how to)|asks (?:for|about|how to)|"
    r"seek(?:s|ing)?(?: to)?|instructions (?:for|on)|guidance on|advice on|"
    r"pertains? to|related to|a form of|such as|specifically|"
    r"provides?|providing|contains?|containing|includes?|including|describ(?:es|ing))\s+",
    re.IGNORECASE,
)
# A word that begins a new clause ends the phrase.
_STOP = re.compile(
    r"\b(?:which|that|because|since|as|while|whereas|although|so|but|thus|therefore|"
    r"is|are|was|were|be|been|could|can|may|might|would|will|should|must|"
    r"and (?:is|are|could|can|may|might|would|poses?|promotes?|involves?))\b",
    re.IGNORECASE,
)
_BOUNDARY = re.compile(r"[.,;:!?()\[\]\"“”\n#*]|\s-\s|\s—\s")
_LEAD = re.compile(
    r"^(?:(?:a|an|the|some|any|potentially|possibly|explicitly|specifically|directly|detailed|"
    r"step-by-step|specific|certain|other|information|guidance|advice|details|ways?|methods?|"
    r"on|about|regarding|for|how|to|of)\s+)+",
    re.IGNORECASE,
)
_WORD = re.compile(r"[A-Za-z][A-Za-z'-]*")
_GENERIC = frozenset(
    "harm harmful harms harmfulness illegal unlawful unethical immoral activity activities behavior "
    "behaviour behaviors behaviours content actions action act acts dangerous danger risk risks "
    "potential potentially negative inappropriate offensive sensitive topic topics information the a "
    "an and or of to for in on with about consequences nature request response user assistant ai "
    "human something someone others other people person way ways practices practice serious "
    "intent intention purposes purpose its their it this that".split()
)


def _phrases(step: str, max_words: int) -> Iterable[str]:
    for cue in _CUE.finditer(step):
        rest = step[cue.end() : cue.end() + 200]
        if (cut := _BOUNDARY.search(rest)) is not None:
            rest = rest[: cut.start()]
        if (stop := _STOP.search(rest)) is not None:
            rest = rest[: stop.start()]
        words = rest.split()[:max_words]
        phrase = _LEAD.sub("", " ".join(words)).strip(" '-")
        content = [w.lower() for w in _WORD.findall(phrase)]
        if content and any(w not in _GENERIC for w in content):
            yield phrase


def _clip(phrase: str, max_chars: int) -> str:
    if len(phrase) <= max_chars:
        return phrase
    cut = phrase[: max_chars + 1].rsplit(" ", 1)[0]
    return cut if cut else phrase[:max_chars]


def extract_harms(
    steps: Iterable[str], *, limit: int = 5, max_chars: int = 80, max_words: int = 10
) -> tuple[str, ...]:
    """Harm phrases from reasoning steps (the deciding tasks' steps, in order)."""
    found: list[str] = []
    seen: list[str] = []
    for step in steps:
        for phrase in _phrases(step, max_words):
            phrase = _clip(phrase, max_chars)
            key = phrase.lower()
            if any(key in earlier or earlier in key for earlier in seen):
                continue
            seen.append(key)
            found.append(phrase)
            if len(found) >= limit:
                return tuple(found)
    return tuple(found)
