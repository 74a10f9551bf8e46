"""Generated canaries: unique marker strings planted in chat text, and the ways a model may quote them.

Used by the privacy unit tests and the findings integration test. Every canary
is drawn from a seeded RNG, so a failure names a reproducible case; none is a
fixed list the redaction rule could be tuned to.
"""

from __future__ import annotations

import random
import string
import unicodedata

from streams.privacy import display_form, key_form, packaged_vocabulary, tokens

__all__ = ["Published", "leaks", "make_canary", "plant", "quoted_forms"]

_CONSONANTS = "bcdfghjklmnpqrstvwxz"
_CYRILLIC = "абвгдежзийклмнопрстуфхцчшщыэюя"
_GREEK = "αβγδεζηθικλμνξοπρστυφχψω"
_CJK = "秘密合言葉暗号鍵山川花鳥風月"
_EMOJI = "🦄🔑🐙🌵🎲🧩🚀🍄"
_VOWELS = "aeiouy"


def _pseudo_word(rng: random.Random) -> str:
    """A pronounceable non-word (``vorquelin``), never in the vocabulary."""
    vocabulary = packaged_vocabulary()
    while True:
        word = "".join(rng.choice(_CONSONANTS) + rng.choice(_VOWELS) for _ in range(rng.randint(2, 4)))
        word += rng.choice(_CONSONANTS)
        if not vocabulary.is_known(word):
            return word


def _common_words(rng: random.Random, n: int) -> list[str]:
    vocabulary = packaged_vocabulary()
    pool = sorted(w for w in vocabulary.common if not vocabulary.is_guard(w) and not vocabulary.is_stop(w))
    return rng.sample(pool, n)


def make_canary(rng: random.Random) -> str:
    """One unique marker: a code-like token, an id, an e-mail, a URL, a number, a made-up
    name, or a phrase of 2–4 words (pseudo-words and common English words mixed)."""
    kind = rng.randrange(10)
    letters = string.ascii_lowercase + string.digits
    if kind == 0:  # zq7-CANARY-19f3
        return "-".join(
            [
                "".join(rng.choices(letters, k=rng.randint(2, 5))),
                "".join(rng.choices(string.ascii_uppercase, k=rng.randint(4, 8))),
                "".join(rng.choices("0123456789abcdef", k=4)),
            ]
        )
    if kind == 1:  # an opaque id
        return "".join(rng.choices("0123456789abcdef", k=rng.choice([12, 16, 32])))
    if kind == 2:
        return f"{_pseudo_word(rng)}.{_pseudo_word(rng)}@{_pseudo_word(rng)}.example.org"
    if kind == 3:
        return f"https://{_pseudo_word(rng)}.example.net/{_pseudo_word(rng)}?id={rng.randint(1000, 99999)}"
    if kind == 4:  # a phone-like number
        return (
            f"+{rng.randint(1, 99)} {rng.randint(100, 999)} {rng.randint(100, 999)} {rng.randint(1000, 9999)}"
        )
    if kind == 5:  # a made-up name
        return f"{_pseudo_word(rng).title()} {_pseudo_word(rng).title()}"
    if kind == 6:  # a single made-up word
        return _pseudo_word(rng) + str(rng.randint(0, 9)) * rng.randint(0, 1)
    if kind == 7:  # a phrase of common English words only
        return " ".join(_common_words(rng, rng.randint(2, 4)))
    if kind == 8:  # another script, or pictographs
        alphabet = rng.choice([_CYRILLIC, _GREEK, _CJK, _EMOJI])
        return "".join(rng.choices(alphabet, k=rng.randint(3, 7))) + rng.choice(
            ["", "-" + str(rng.randint(10, 99))]
        )
    words = _common_words(rng, rng.randint(1, 2)) + [_pseudo_word(rng) for _ in range(rng.randint(1, 2))]
    rng.shuffle(words)
    return " ".join(words)


def plant(text: str, canary: str, rng: random.Random) -> str:
    """``text`` with ``canary`` inserted at a random word boundary (sometimes bracketed,
    sometimes followed by punctuation, sometimes in another case)."""
    marker = rng.choice(
        [canary, canary, canary.upper(), canary.lower(), f"({canary})", f"{canary}.", f"{canary},"]
    )
    words = text.split(" ")
    at = rng.randint(0, len(words))
    return " ".join([*words[:at], marker, *words[at:]])


def _fullwidth(text: str) -> str:
    return "".join(chr(ord(c) + 0xFEE0) if "!" <= c <= "~" else c for c in text)


def _zero_width(text: str, rng: random.Random) -> str:
    return "".join(
        c + (rng.choice(["\u200b", "\u200d", "\u00ad", "\u2060"]) if c.isalnum() else "") for c in text
    )


def _accented(text: str) -> str:
    return "".join(unicodedata.normalize("NFC", c + "\u0301") if c in "aeiou" else c for c in text)


def quoted_forms(canary: str, rng: random.Random) -> list[str]:
    """Ways a model's reasoning may repeat ``canary``."""
    separators_changed = canary
    for old in ("-", ".", " "):
        separators_changed = separators_changed.replace(old, rng.choice([" ", "_", "\u2013", "\u2010", "-"]))
    return [
        canary,
        f'"{canary}"',
        f"“{canary}”",
        f"'{canary}'",
        f"«{canary}»",
        canary.upper(),
        canary.lower(),
        canary.title(),
        f"({canary})",
        f"{canary}'s",
        f"{canary}s",
        f"{canary}.",
        f"{canary}:",
        _fullwidth(canary),
        _zero_width(canary, rng),
        _accented(canary),
        separators_changed,
    ]


class Published:
    """What a published text shows, normalised once, to test many canaries against it."""

    def __init__(self, text: str) -> None:
        self._folded = text.casefold()
        self._tokens = tokens(key_form(display_form(text)))
        self._index: dict[str, list[int]] = {}
        for i, token in enumerate(self._tokens):
            self._index.setdefault(token, []).append(i)

    def shows(self, canary: str) -> bool:
        """Whether ``canary`` is visible: its exact text (any case), or its word sequence once
        both are Unicode-normalised (width, accents, invisible characters, separators)."""
        if canary.casefold() in self._folded:
            return True
        wanted = tokens(key_form(display_form(canary)))
        n = len(wanted)
        return any(self._tokens[i : i + n] == wanted for i in self._index.get(wanted[0], ()))


def leaks(canary: str, published: str) -> bool:
    """Whether ``published`` still shows ``canary`` (see :meth:`Published.shows`)."""
    return Published(published).shows(canary)
