"""Redact the user's words from text the model wrote about them.

A :class:`Redactor` is built from one event's chat texts (request and
response) and applied to what the model wrote about them (the reasoning
summary, harm phrases, evidence words). All comparisons use the key form of
:mod:`streams.privacy.text` (Unicode-normalised, case-folded, no accents,
invisible characters removed), so case, width, accent, dash and quote variants
of a chat word are the same word. A token of the model's text is **redacted**
when:

1. **Word.** It is not in the :class:`~streams.privacy.vocabulary.Vocabulary`
   and it occurs in the chat text — as a token, as a token with an inflection
   (``-s``, ``-ed``, ``-ing``...), inside a chat token or across tokens written
   together (``zq7canary`` for ``zq7-canary``; 3+ characters with a digit or
   symbol, else 4+), or it contains a chat token of that length (up to 64
   characters) that is not in the vocabulary. Names, numbers, codes, URLs,
   e-mail addresses and rare words the user wrote are therefore never repeated.
2. **Run.** It is part of a run of consecutive tokens that also stand
   consecutively in the chat (separators and inflections ignored) and that
   holds two or more words outside the stop and guard vocabularies: the span
   from the first to the last of those words goes, so a phrase made of common
   words (``correct horse battery staple``) is not repeated either.
3. **Quote.** It is inside a quotation (``"..."``, ``'...'``, any Unicode quotes)
   that contains a non-stop word of the chat.

Each run of redacted tokens becomes one :data:`REDACTED` marker; everything else
is kept in display form. The rule never looks at what the chat *means*: a
single common English word from the vocabulary is kept even when the user
wrote it.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence

from streams.privacy.text import TOKEN, display_form, key_form, tokens
from streams.privacy.vocabulary import Vocabulary, packaged_vocabulary

__all__ = ["REDACTED", "Redactor"]

REDACTED = "[redacted]"
_QUOTED = re.compile(r"\"[^\"\n]{1,300}\"|(?<!\w)'[^'\n]{1,300}?'(?!\w)")
_MIN_INNER = 3  # chat tokens searched for inside a longer token of the model's text ...
_LONG = 64  # ... up to this length
_INFLECTIONS = ("s", "es", "ed", "d", "ing", "ly")
_INFLECTION_ENDS = frozenset(s[-1] for s in _INFLECTIONS)


def _long_enough(token: str) -> bool:
    """Long enough to be matched inside other text: 3+ characters with a digit or symbol,
    4+ when all letters (shorter pieces occur by chance)."""
    return len(token) >= (4 if token.isalpha() else 3)


class Redactor:
    """Redacts one chat's words from model-written text (see the module docstring)."""

    __slots__ = ("_joined", "_longest", "_spaced", "_tokens", "_vocabulary")

    def __init__(self, texts: Iterable[str | None], vocabulary: Vocabulary | None = None) -> None:
        vocab = vocabulary or packaged_vocabulary()
        self._vocabulary = vocab
        parts = [tokens(key_form(display_form(text))) for text in texts if text]
        keys = [k for part in parts for k in part]
        # " a b c | d e ": consecutive chat tokens are found as " a b " (a run never spans two texts)
        self._spaced = " " + " | ".join(" ".join(part) for part in parts) + " "
        self._tokens = frozenset(keys)
        self._longest = min(_LONG, max(map(len, self._tokens), default=0))
        self._joined = "".join(keys)

    @property
    def empty(self) -> bool:
        return not self._tokens

    def redact(self, text: str) -> str:
        """``text`` in display form with the chat's words replaced by :data:`REDACTED`."""
        if not self._tokens or not text:
            return text
        shown = display_form(text)
        spans = [(m.start(), m.end()) for m in TOKEN.finditer(shown)]
        if not spans:
            return shown
        keys = [key_form(shown[a:b]) for a, b in spans]
        hidden = [self._private(k) for k in keys]
        self._runs(keys, hidden)
        self._quotes(shown, spans, keys, hidden)
        return _render(shown, spans, hidden)

    def redact_all(self, texts: Sequence[str]) -> list[str]:
        return [self.redact(t) for t in texts]

    # -- the three rules --------------------------------------------------------------

    def _private(self, key: str) -> bool:
        vocab = self._vocabulary
        if vocab.is_known(key):
            return False
        if key in self._tokens:
            return True
        for suffix in _INFLECTIONS:  # the user's word, inflected (codes-s, 42s, qqs)
            stem = key[: -len(suffix)]
            if key.endswith(suffix) and stem in self._tokens and not vocab.is_known(stem):
                return True
        if _long_enough(key) and key in self._joined:
            return True
        return self._contains_chat_token(key)

    def _contains_chat_token(self, key: str) -> bool:
        """Whether a chat token of 3–64 characters (4+ when all letters) that is not in the
        vocabulary stands inside ``key``."""
        for size in range(_MIN_INNER, min(len(key) - 1, self._longest) + 1):
            for start in range(len(key) - size + 1):
                part = key[start : start + size]
                if part in self._tokens and _long_enough(part) and not self._vocabulary.is_known(part):
                    return True
        return False

    def _runs(self, keys: Sequence[str], hidden: list[bool]) -> None:
        vocab = self._vocabulary
        forms = [self._chat_forms(k) for k in keys]
        start = 0
        while start < len(keys):
            end = start
            while end + 1 < len(keys) and any(
                f" {a} {b} " in self._spaced for a in forms[end] for b in forms[end + 1]
            ):
                end += 1
            if end > start:
                words = [
                    i
                    for i in range(start, end + 1)
                    if not vocab.is_stop(keys[i]) and not vocab.is_guard(keys[i])
                ]
                if len(words) >= 2:
                    for i in range(words[0], words[-1] + 1):
                        hidden[i] = True
            start = end + 1

    def _chat_forms(self, key: str) -> list[str]:
        """``key`` and its uninflected stems that are chat tokens (``writes`` → ``write``)."""
        forms = [key] if key in self._tokens else []
        if key[-1] in _INFLECTION_ENDS:
            forms += [
                key[: -len(s)] for s in _INFLECTIONS if key.endswith(s) and key[: -len(s)] in self._tokens
            ]
        return forms

    def _quotes(
        self, shown: str, spans: Sequence[tuple[int, int]], keys: Sequence[str], hidden: list[bool]
    ) -> None:
        for match in _QUOTED.finditer(shown):
            inside = [i for i, (a, b) in enumerate(spans) if a >= match.start() and b <= match.end()]
            if any(keys[i] in self._tokens and not self._vocabulary.is_stop(keys[i]) for i in inside):
                for i in inside:
                    hidden[i] = True


def _render(shown: str, spans: Sequence[tuple[int, int]], hidden: Sequence[bool]) -> str:
    out: list[str] = []
    position = 0
    i = 0
    while i < len(spans):
        if not hidden[i]:
            i += 1
            continue
        first = i
        while i + 1 < len(spans) and hidden[i + 1]:
            i += 1
        out.append(shown[position : spans[first][0]])
        out.append(REDACTED)
        position = spans[i][1]
        i += 1
    out.append(shown[position:])
    return "".join(out)
