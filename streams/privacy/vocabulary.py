"""The words the redaction rule may keep even when the chat contains them (``words.txt``)."""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cache
from importlib import resources

__all__ = ["Vocabulary", "packaged_vocabulary"]

_MIN_STEM = 5
_CACHE_WORDS = 200_000
_SUFFIXES = ("s", "es", "ed", "d", "ing", "ly")


@dataclass(frozen=True, slots=True)
class Vocabulary:
    """Three word classes, in key form (lower case, no accents).

    ``stop``: function words; ``guard``: the guard's moderation and harm words;
    ``common``: other common English words. A word belongs to a class when it, or
    it without one simple inflection (``-s``, ``-es``, ``-ed``, ``-d``, ``-ing``,
    ``-ly``, ``-ies`` → ``-y``, ``hiding`` → ``hide``, ``stopped`` → ``stop``), is
    listed. A word of 5+ letters that begins a guard word is a guard word too: the
    categoriser's evidence can be a pattern's stem (``smuggl`` for ``smuggling``).
    """

    stop: frozenset[str]
    guard: frozenset[str]
    common: frozenset[str]
    guard_stems: frozenset[str] = frozenset()
    # word -> (known, guard), filled as words are looked up (the rule asks about few words, often)
    _seen: dict[str, tuple[bool, bool]] = field(default_factory=dict, compare=False, repr=False)

    def __post_init__(self) -> None:
        stems = {w[:n] for w in self.guard for n in range(_MIN_STEM, len(w))}
        object.__setattr__(self, "guard_stems", frozenset(stems))

    @classmethod
    def parse(cls, text: str) -> Vocabulary:
        sections: dict[str, set[str]] = {"stop": set(), "guard": set(), "common": set()}
        current: set[str] | None = None
        for line in text.splitlines():
            line = line.strip()
            if not line or line.startswith("#"):
                continue
            if line.startswith("["):
                current = sections[line.strip("[]")]
                continue
            if current is None:
                raise ValueError(f"word before any section: {line[:40]!r}")
            current.update(line.split())
        return cls(
            stop=frozenset(sections["stop"]),
            guard=frozenset(sections["guard"]),
            common=frozenset(sections["common"]),
        )

    def is_stop(self, word: str) -> bool:
        return word in self.stop

    def is_guard(self, word: str) -> bool:
        return self._classes(word)[1]

    def is_known(self, word: str) -> bool:
        """Listed in any class (such a word alone never counts as the user's own)."""
        return self._classes(word)[0]

    def _classes(self, word: str) -> tuple[bool, bool]:
        found = self._seen.get(word)
        if found is None:
            guard = word in self.guard_stems or _listed(word, self.guard)
            found = (word in self.stop or guard or _listed(word, self.common), guard)
            if len(self._seen) < _CACHE_WORDS:
                self._seen[word] = found
        return found


def _listed(word: str, words: frozenset[str]) -> bool:
    if word in words:
        return True
    if not word.isalpha():
        return False
    if word.endswith("ies") and word[:-3] + "y" in words:
        return True
    for suffix in _SUFFIXES:
        if word.endswith(suffix) and len(word) > len(suffix) + 2:
            stem = word[: -len(suffix)]
            if stem in words:
                return True
            if suffix in ("ing", "ed", "es") and (
                stem + "e" in words or (stem[-1] == stem[-2] and stem[:-1] in words)
            ):
                return True  # hiding -> hide, stopped -> stop
    return False


@cache
def packaged_vocabulary() -> Vocabulary:
    return Vocabulary.parse(resources.files(__package__).joinpath("words.txt").read_text("utf-8"))
