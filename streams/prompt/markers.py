"""The marker contract: what a template marker is, and the one normalisation that finds it.

The prompt builder (:mod:`streams.prompt.template`) and the output parser
(:mod:`streams.parse`) both read lines through this module, so they cannot
disagree about what counts as structure.

**Lines.** Text splits into lines at every Unicode line break: ``\\n``,
``\\r``, ``\\r\\n``, ``\\v``, ``\\f``, ``\\x1c``-``\\x1e``, ``\\x85``,
``\\u2028``, ``\\u2029`` (exactly :meth:`str.splitlines`).

**Normalisation** (:func:`fold`), applied to one character at a time:

1. Unicode compatibility decomposition (NFKD, so everything NFKC folds is
   folded: full-width ``ＡＩ``, ``：``, mathematical and circled letters,
   ligatures...), and accents come apart from their letters;
2. every format character (category ``Cf``: zero-width space and joiners,
   soft hyphen, word joiner, bidi controls, tag characters...), every
   combining mark (``Mn``, ``Me``: accents, variation selectors, the
   grapheme joiner) and the invisible Hangul fillers are dropped;
3. look-alike letters are folded onto the Latin letter they imitate:
   Cyrillic, Greek, Armenian, Cherokee, Lisu and Coptic homoglyphs, Latin
   small capitals, dotless ``ı``, and the same-script confusables ``l`` and
   ``I`` (both ``i``); colon look-alikes (``∶``, ``ː``, ``꞉``, ``׃``...)
   become ``:``;
4. case is folded (:meth:`str.casefold`).

**The skeleton** of a piece of text is its normalised form from its first
letter on, with every character that is not a letter or digit removed (blanks,
punctuation, markdown decoration such as ``#``, ``*``, ``_``, ``~``,
backticks, ``>``, ``|``, ``-``, list numbers, control characters...), the
look-alike digits ``1`` and ``0`` read as ``i`` and ``o`` (or, in a second
reading, digits dropped), and the multi-letter look-alikes ``rn`` → ``m`` and
``vv`` → ``w`` folded. HTML tags (``<b>``, ``</strong>``) count as decoration
too: a line matches with or without them.

**Markers.** A line is a marker line when the skeleton of its *head* (from
its first letter to the next colon, after normalisation, so ``：`` and other
colon look-alikes count) is a marker word:

- the template's turn headers ``Human user`` and ``AI assistant``;
- the answer-block header ``Answers`` (so ``Answers:``, ``# Answers``,
  ``**Answers**:``, ``ANSWERS :`` ...). The singular ``Answer:`` is *not* a
  marker: real chat uses it (HarmBench and ToxicChat samples have
  ``Answer: ...`` lines, so quoting it would change recorded prompts) and the
  model never writes it (0 of 4,390 recorded outputs), so the parser does not
  accept it either;
- the field names ``Request``, ``Completion``, ``Response`` (field lines).

A turn header or block header also counts without a colon when the whole
line's skeleton is the marker word (``# Answers``, ``**AI assistant**``).
A field line needs its colon; its value is the original text after it.

**Quoted lines.** A marker line is *quoted* when a ``>`` (after
normalisation, so ``＞`` too) occurs before its first letter. The
prompt builder quotes (prefixes ``"> "``) every line of chat text that is a
turn header or a block header; the parser never reads a quoted line as
structure. Field lines in chat text are left as they are: they occur in
real chat (benchmark samples have ``Response: ...`` lines), and the parser
reads a field line only inside an unquoted answer block that the model
itself opened, so they cannot start a block (see the README's threat model).
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass
from enum import StrEnum
from functools import lru_cache

__all__ = [
    "BLOCK_HEADERS",
    "FIELD_MARKERS",
    "LINE_BREAKS",
    "QUOTE",
    "TURN_MARKERS",
    "Marker",
    "MarkerLine",
    "classify",
    "classify_lines",
    "fold",
    "quote_markers",
    "skeleton",
    "split_lines",
]

LINE_BREAKS = "\n\r\v\f\x1c\x1d\x1e\x85\u2028\u2029"
QUOTE = "> "


class Marker(StrEnum):
    """The template's markers, by role. Values are the marker words."""

    HUMAN = "human user"
    ASSISTANT = "ai assistant"
    ANSWERS = "answers"
    REQUEST = "request"
    COMPLETION = "completion"
    RESPONSE = "response"


TURN_MARKERS = frozenset({Marker.HUMAN, Marker.ASSISTANT})
BLOCK_HEADERS = frozenset({Marker.ANSWERS})
FIELD_MARKERS = (Marker.REQUEST, Marker.COMPLETION, Marker.RESPONSE)

# Letters that render like a Latin letter (lower-case targets), by script.
_LOOKALIKES = {
    # Cyrillic
    "А": "a", "а": "a", "В": "b", "в": "b", "С": "c", "с": "c", "Ԁ": "d", "ԁ": "d",
    "Е": "e", "е": "e", "Ё": "e", "ё": "e", "Һ": "h", "һ": "h", "Н": "h", "н": "h",
    "І": "i", "і": "i", "Ї": "i", "ї": "i", "Ӏ": "i", "ӏ": "i", "Ј": "j", "ј": "j",
    "К": "k", "к": "k", "М": "m", "м": "m", "П": "n", "п": "n", "О": "o", "о": "o",
    "Р": "p", "р": "p", "Ԛ": "q", "ԛ": "q", "Г": "r", "г": "r", "Ѕ": "s", "ѕ": "s",
    "Т": "t", "т": "t", "Џ": "u", "џ": "u", "Ԝ": "w", "ԝ": "w", "Ш": "w", "ш": "w",
    "Х": "x", "х": "x", "У": "y", "у": "y", "Ү": "y", "ү": "y",
    # Greek
    "Α": "a", "α": "a", "Β": "b", "β": "b", "Ε": "e", "ε": "e", "Ζ": "z", "Η": "h",
    "η": "n", "Ι": "i", "ι": "i", "Κ": "k", "κ": "k", "Μ": "m", "μ": "u", "Ν": "n",
    "ν": "v", "Ο": "o", "ο": "o", "Ρ": "p", "ρ": "p", "Τ": "t", "τ": "t", "Υ": "y",
    "υ": "u", "Χ": "x", "χ": "x", "ω": "w", "Ϲ": "c", "ϲ": "c", "Ϳ": "j", "ϳ": "j",
    "Ϝ": "f", "ς": "s",
    # Armenian
    "Օ": "o", "օ": "o", "Ս": "u", "ս": "u", "ո": "n", "հ": "h", "ա": "w", "ց": "g",
    "ք": "p", "Լ": "l", "զ": "q",
    # Cherokee (upper case only; NFKD leaves them alone)
    "Ꭺ": "a", "Ᏼ": "b", "Ꮯ": "c", "Ꭼ": "e", "Ꮋ": "h", "Ꭵ": "i", "Ꮶ": "k", "Ꮮ": "l",
    "Ꮇ": "m", "Ꮃ": "w", "Ꮲ": "p", "Ꭱ": "r", "Ꮪ": "s", "Ꭲ": "t", "Ꮩ": "v",
    # Latin small capitals and other Latin look-alikes
    "ᴀ": "a", "ʙ": "b", "ᴄ": "c", "ᴅ": "d", "ᴇ": "e", "ɢ": "g", "ʜ": "h", "ɪ": "i",
    "ᴊ": "j", "ᴋ": "k", "ʟ": "l", "ᴍ": "m", "ɴ": "n", "ᴏ": "o", "ᴘ": "p", "ʀ": "r",
    "ꜱ": "s", "ᴛ": "t", "ᴜ": "u", "ᴠ": "v", "ᴡ": "w", "ʏ": "y", "ᴢ": "z",
    "ı": "i", "ȷ": "j", "ɑ": "a", "ɡ": "g", "ǀ": "i", "ꞯ": "q", "Ɩ": "i", "ɩ": "i",
    # Lisu (capital forms of Latin letters)
    "ꓮ": "a", "ꓐ": "b", "ꓚ": "c", "ꓓ": "d", "ꓰ": "e", "ꓝ": "f", "ꓖ": "g", "ꓧ": "h",
    "ꓲ": "i", "ꓙ": "j", "ꓗ": "k", "ꓡ": "l", "ꓟ": "m", "ꓠ": "n", "ꓳ": "o", "ꓑ": "p",
    "ꓣ": "r", "ꓢ": "s", "ꓔ": "t", "ꓴ": "u", "ꓦ": "v", "ꓪ": "w", "ꓫ": "x", "ꓬ": "y",
    "ꓜ": "z",
    # Coptic
    "Ⲁ": "a", "ⲁ": "a", "Ⲃ": "b", "Ⲅ": "r", "ⲅ": "r", "Ⲉ": "e", "ⲉ": "e", "Ⲏ": "h",
    "Ⲓ": "i", "ⲓ": "i", "Ⲕ": "k", "ⲕ": "k", "Ⲙ": "m", "ⲙ": "m", "Ⲛ": "n", "ⲛ": "n",
    "Ⲟ": "o", "ⲟ": "o", "Ⲣ": "p", "ⲣ": "p", "Ⲥ": "c", "ⲥ": "c", "Ⲧ": "t", "ⲧ": "t",
    "Ⲩ": "y", "Ⲭ": "x", "ⲭ": "x", "Ⲱ": "w", "ⲱ": "w",
    # the same-script classic: l and I read alike (digits: see _DIGITS)
    "l": "i", "L": "i", "I": "i",
    # colon look-alikes
    "∶": ":", "ː": ":", "˸": ":", "꞉": ":", "׃": ":", "܃": ":", "܄": ":", "⁚": ":",
}  # fmt: skip
_INVISIBLE_LETTERS = frozenset("\u115f\u1160\u3164\uffa0")  # Hangul fillers: letters that render as nothing
_DROPPED_CATEGORIES = frozenset({"Cf", "Mn", "Me"})
_MULTI_LETTER = (("rn", "m"), ("vv", "w"))
_HTML_TAG = re.compile(r"</?[a-z][a-z0-9]*(?:\s[^<>]*)?/?>")
_ASCII_FOLD = str.maketrans(
    "ABCDEFGHIJKLMNOPQRSTUVWXYZ",
    "abcdefghijklmnopqrstuvwxyz",
) | str.maketrans({k: v for k, v in _LOOKALIKES.items() if k.isascii()})


@lru_cache(maxsize=8192)
def _fold_char(char: str) -> str:
    out: list[str] = []
    for part in unicodedata.normalize("NFKD", char):
        if part in _INVISIBLE_LETTERS or unicodedata.category(part) in _DROPPED_CATEGORIES:
            continue
        part = _LOOKALIKES.get(part, part).casefold()
        out.append("".join(_LOOKALIKES.get(c, c) for c in part))
    return "".join(out)


def fold(text: str) -> str:
    """The one normalisation (see the module docstring); for detection only, never for output."""
    if text.isascii():
        return text.translate(_ASCII_FOLD)
    return "".join(map(_fold_char, text))


_DIGITS = str.maketrans({"0": "o", "1": "i"})  # digits that pass for letters (``A1``, ``0``)
_NOT_ALNUM = re.compile(r"[\W_]+")
_NOT_ALPHA = re.compile(r"[\W\d_]+")
# Fast path: an ASCII line that, before its first colon or tag, has a letter that no marker word is
# spelled with, or more than twice as many letters as the longest one, is no marker.
_ASCII_NON_MARKER = re.compile(r"[^:<]*?[bdfgjkxyzBDFGJKXYZ]|(?:[^A-Za-z:<]*[A-Za-z]){25}")


_ASCII_LETTER = re.compile("[A-Za-z]")


def _first_letter(folded: str) -> int:
    if folded.isascii():
        letter = _ASCII_LETTER.search(folded)
        return letter.start() if letter else len(folded)
    return next((i for i, c in enumerate(folded) if c.isalpha()), len(folded))


def _squash(letters: str) -> str:
    for pair, letter in _MULTI_LETTER:
        letters = letters.replace(pair, letter)
    return letters


def _words(head: str) -> set[str]:
    """Skeletons of a folded head: its letters and digits. Two readings, both kept: look-alike
    digits read as letters (``A1`` → ``ai``), and digits dropped (``Ans1wers`` → ``answers``)."""
    return {_squash(_NOT_ALNUM.sub("", head.translate(_DIGITS))), _squash(_NOT_ALPHA.sub("", head))}


@lru_cache(maxsize=16384)  # pure; model outputs repeat their structural lines and values
def skeleton(text: str) -> str:
    """What is left of ``text`` once decoration is ignored: letters and digits, digits read as letters.

    Empty for a blank or decoration-only line (``---``, ``**``, ``1.``).
    """
    form = _HTML_TAG.sub("", fold(text))
    return _squash(_NOT_ALNUM.sub("", form[_first_letter(form) :].translate(_DIGITS)))


_WORDS: dict[str, Marker] = {skeleton(m.value): m for m in Marker}
_BARE = frozenset(w for w, m in _WORDS.items() if m not in FIELD_MARKERS)  # markers valid without a colon


@dataclass(frozen=True, slots=True)
class MarkerLine:
    """One line that is a marker: which one, whether it is quoted, and the original text after it."""

    marker: Marker
    quoted: bool
    rest: str  # the line after the marker's colon, as written ("" without a colon)


def _forms(folded: str) -> tuple[str, ...]:
    """The folded line, and the same without HTML tags when it has some."""
    return (folded, _HTML_TAG.sub("", folded)) if "<" in folded else (folded,)


def _head_marker(folded: str) -> tuple[Marker, bool] | None:
    """(marker, has a colon) when the line's head is a marker word. The head runs from the
    first letter to the next colon (or the end of the line)."""
    for form in _forms(folded):
        head, colon, _ = form[_first_letter(form) :].partition(":")
        for word in _words(head):
            marker = _WORDS.get(word)
            if marker is not None and (colon or word in _BARE):
                return marker, bool(colon)
    return None


def _quoted(folded: str) -> bool:
    """A ``>`` before the first letter (with or without HTML tags)."""
    return any(">" in form[: _first_letter(form)] for form in _forms(folded))


def _rest(text: str) -> str:
    """The original text after the first colon that follows the first letter."""
    if text.isascii():
        letter = _ASCII_LETTER.search(text)
        colon = text.find(":", letter.start()) if letter else -1
        return text[colon + 1 :] if colon >= 0 else ""
    folds = [_fold_char(c) for c in text]
    first = next((i for i, f in enumerate(folds) if any(c.isalpha() for c in f)), len(text))
    return next((text[i + 1 :] for i in range(first, len(text)) if ":" in folds[i]), "")


@lru_cache(maxsize=16384)  # pure; model outputs repeat their structural lines
def _classify(text: str) -> MarkerLine | None:
    folded = fold(text)
    found = _head_marker(folded)
    if found is None:
        return None
    marker, colon = found
    return MarkerLine(marker, _quoted(folded), _rest(text) if colon else "")


def classify(line: str) -> MarkerLine | None:
    """The marker ``line`` is (its trailing line break ignored), or None for any other line."""
    text = line.rstrip(LINE_BREAKS)
    if text.isascii() and (not text or text.isspace() or _ASCII_NON_MARKER.match(text)):
        return None
    return _classify(text)


def classify_lines(lines: list[str]) -> list[MarkerLine | None]:
    """:func:`classify` of every line (the same answers; the per-line checks inlined)."""
    plain = _ASCII_NON_MARKER.match
    out: list[MarkerLine | None] = []
    for line in lines:
        text = line.rstrip(LINE_BREAKS)
        if text.isascii() and (not text or text.isspace() or plain(text)):
            out.append(None)
        else:
            out.append(_classify(text))
    return out


def split_lines(text: str) -> list[str]:
    """``text`` cut after every Unicode line break (each line keeps its break)."""
    return text.splitlines(keepends=True)


def quote_markers(text: str) -> str:
    """Prefix ``"> "`` to every line of ``text`` that is a turn header or an answer-block header."""
    lines = split_lines(text)
    marked = [(m := classify(line)) is not None and m.marker not in FIELD_MARKERS for line in lines]
    if not any(marked):
        return text
    return "".join(QUOTE + line if hit else line for line, hit in zip(lines, marked, strict=True))
