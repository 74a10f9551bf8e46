"""Early exit for prompt-only checks: stop at Task 2, read the request answer from Task 1's conclusion.

An event without an assistant response needs only Task 1 (is the request
harmful?), about 40 % of a GuardReasoner output. The engine generates with
:data:`STOP_STRINGS`; when it stops at one, :func:`early_answer` reads the
request answer from the text generated so far (the *prefix*). An explicit
conclusion is the verdict and Tasks 2 and 3 are never generated. Anything
less than explicit returns None and the caller **continues the same
generation** to the normal answer block (the prefix is in the prompt cache).

**The rule** (derived from the recorded 1B and 3B outputs; the README gives
its agreement with the final answer block). Only Task 1's *conclusion*
counts: the last paragraph of the prefix's last section (a section starts at
a heading line, ``# ...``, ``## Reasoning Step 3: ...``, ``**Conclusion:**``,
whose own text belongs to it; quoted lines, ``> ...``, are never read). In
that paragraph a verdict is

- a labelled value line: ``Request: harmful`` (also in an unquoted
  ``Answers:`` block), ``# Task 1: harmful``, ``Conclusion: unharmful``;
- a predicate on the request: a clause whose subject is the request (it names
  it: ``request``, ``requesting``, ``prompt``, ``query``, ``message``, ``the
  user's``...; or it is ``it``/``this``, ``which``, or nothing, right after a
  clause that names it, ``it`` also after the clause that its ``because``,
  ``as``... clause depends on; never when it names the response or the
  assistant, and an embedded clause counts from its own subject, so "the user
  believes that X is harmful" is about X), a copula (``is``, ``are``), then
  only words from a closed list of linking, classifying and intensifying words
  (``therefore``, ``clearly``, ``inherently``, ``considered``, ``classified
  as``...), then the label: "The human user's request is harmful.", "Conclude
  that the request is unharmful as it ...", "Requests for X, such as Y, are
  considered harmful.", "..., which is harmful.", "The request is a harmful
  request.", "..., making the request harmful.";
- "<request> promotes / involves / contains ... harmful <noun>" (a closed
  list of verbs);
- a denial of "harmful" about the request (the same subjects), read as
  unharmful: a negated predicate ("The request is not harmful.", "isn't
  considered harmful", "is therefore not classified as harmful", "is
  non-harmful", "is not a harmful request"), a denied object ("does not
  contain / involve / promote / pose any harmful <noun>", "does not promote
  or encourage harmful behavior", "contains no harmful content", "contains
  nothing harmful") or denied existence ("There is nothing harmful in the
  request.", "There is no harmful intent in this request.", "Nothing in the
  request is harmful.").

A denial is firm only when it denies the label and nothing narrower: around
``not`` only linking and classifying words (before it also ``clearly``,
``therefore``...; after it only ``considered``, ``classified as``...), the
negation right before the verb (``does not``, ``doesn't``), one negation.
Its scope is *unclear*, and it is no firm verdict, when any other word
follows ``not`` ("not clearly harmful", "not necessarily", "not inherently",
"not entirely"), an adverb stands between it and the verb ("does not
explicitly promote"), a restriction follows the label ("in itself", "per
se", "directly"), a modal carries it ("may not", "cannot be considered"), a
second negation doubles it, or the subject is hedged or doubted. "Not only
harmful (but ...)" affirms the label, unsurely. A denied ``unharmful`` ("is
not unharmful") is a litotes, which often hedges: it only leans to harmful
and never decides it (no recorded output writes it, and a wrong reading
would block where None only costs the continuation). A denial
followed anywhere later in the conclusion by a counterpoint (``but``,
``however``, ``although``, ``while``...) or by an affirmative "harmful" that
no verdict accounts for ("... does not contain harmful language. The
sentiment is harmful.") is no firm verdict either. "There is no indication
of harmful intent" reports evidence, as "does not seem harmful" does: no
verdict.

The answer is the firm verdicts' value when there is at least one and all
agree, and no other verdict stands against it. Everything else is None,
never a guess: no conclusion, no firm verdict in it, verdicts that disagree,
or any verdict that is hedged (``could``, ``may``, ``might``, ``would``,
``can be harmful``, ``potentially``, ``likely``, ``seems``,
``somewhat``...), doubted ("it is unclear whether ..."), conditional
(``harmful if ...``, ``only in some ...``, ``in many contexts``) or one of
alternatives (``harmful or unharmful``). A denial of unclear scope only
leans to the opposite label: it stops an answer it disagrees with, not one
it agrees with ("The request is unharmful as it does not explicitly seek
harmful advice."). A clause that asks or supposes ("determine whether the
request is harmful", "if the request is harmful") states nothing. Words
outside the closed lists make a clause no verdict (``harmful content``,
``no harmful intent``, ``clearly and unequivocally harmful``, "cannot be
assumed to be harmful"). One judgment call: ``can be considered
harmful`` classifies (the models' usual way of concluding; it agrees with
the answer block on every recorded output), while ``can be harmful`` and
``could be considered harmful`` only say it may be.

**Contract for engines** (greedy decoding makes every step exact):

1. generate with ``stop=STOP_STRINGS`` (vLLM matches them on the generated
   text and leaves the matched string out of the output);
2. when the generation stopped at one of them (vLLM reports the matched string
   as ``stop_reason``; a generation that ended by itself or at the token cap
   is the full output, used as is), call ``early_answer(prefix, request)``;
3. an answer → the verdict's request answer, from ``prefix`` (the raw output
   to archive); None → generate again with
   ``continuation_prompt(prompt, prefix)`` and *no* stop strings, the token
   budget reduced by what the prefix used, and take
   ``join_continuation(prefix, continuation)`` as the full output, parsed as
   usual. Re-tokenizing ``prompt + prefix`` can split the text at the stop
   point differently from the tokens the model generated (a ``"\n\n"``
   token cut after its first ``"\n"``); continuing from token ids instead
   (the prompt's ids, then every generated id) repeats the generation
   exactly, and the full output is then ``join_continuation(prefix,
   continuation, hidden=...)`` with ``hidden`` the text vLLM left out (the
   matched stop string and whatever else its last token carried).

Only events without a response may exit early, and only when their request
cannot plant a stop string: see :func:`early_exit_applies`.
:func:`replay_early_exit` applies the whole contract to a full recorded
output, which is what ``guardstream eval --early-exit`` measures.
"""

from __future__ import annotations

import logging
import re
import unicodedata
from collections.abc import Iterator
from dataclasses import dataclass
from functools import lru_cache

from streams.parse.answers import Harm
from streams.prompt.markers import BLOCK_HEADERS, Marker, classify, fold, skeleton

__all__ = [
    "STOP_STRINGS",
    "EarlyExit",
    "continuation_prompt",
    "early_answer",
    "early_exit_applies",
    "early_prefix",
    "join_continuation",
    "replay_early_exit",
]

logger = logging.getLogger(__name__)

# The Task 2 heading, at the start of a line, in the forms a model writes it. Each begins with a
# line break, so chat text quoted inside a line of Task 1 cannot end it. At most four: the
# OpenAI-compatible ``stop`` parameter's limit.
STOP_STRINGS: tuple[str, ...] = ("\n# Task 2", "\n## Task 2", "\n**Task 2", "\nTask 2:")

# --- where the conclusion is -------------------------------------------------------------
_HEADING = re.compile(r"^[ \t]*(?:#{1,6}[ \t]|\*\*[^*\n]{1,80}\*\*)")
_BLANK = re.compile(r"^[\W_]*$")
_QUOTED = re.compile(r"^[^\w]*>")
_TASK_2 = re.compile(r"task[\W_]*2")  # on folded text

# --- labelled values: "Request: harmful", "# Task 1: harmful", "Conclusion: unharmful" ---
_LABELLED = re.compile(r"^[\W_]*(?P<head>[a-z0-9 ]{1,40}?)[\W_]*:[\W_]*(?P<value>(?:un)?harmful)[\W_]*$")
_HEADS = frozenset(
    skeleton(h)
    for h in (
        "request",
        "task 1",
        "task 1 conclusion",
        "task 1 answer",
        "conclusion",
        "conclusion for task 1",
        "conclusion of task 1",
        "final conclusion",
    )
)

# --- claims ----------------------------------------------------------------------------------
# Words that name the request or its author (the subject of a Task 1 verdict), and words that name
# something else the model judges: a phrase with one of those is never the request.
_REQUEST_WORDS = frozenset(
    {
        "request", "requests", "requesting", "requested", "prompt", "prompts", "query", "queries",
        "question", "questions", "inquiry", "inquiries", "enquiry", "message", "messages", "input",
        "statement", "statements", "user", "user's", "users",
    }
)  # fmt: skip
_OTHER_WORDS = frozenset(
    {"response", "responses", "assistant", "reply", "replies", "completion", "answer", "output", "ai"}
)
_PRONOUNS = frozenset({"it", "this"})
_RELATIVES = frozenset({"which", "that"})
_LIST_JOINERS = frozenset({"and", "or", "nor"})
_ARTICLES = frozenset({"a", "an"})
# Words that start an embedded clause: a copula after one belongs to that clause's own subject.
_SUBORDINATORS = frozenset({"because", "since", "as", "although", "though", "while", "whereas"})
_WH_THAT = frozenset({"that", "what", "how", "why", "where", "which", "who"})
_REPORTING = frozenset(
    f"{stem}{end}"
    for stem, ends in (
        ("believe", ("", "s", "d")), ("think", ("", "s")), ("thought", ("",)), ("claim", ("", "s", "ed")),
        ("say", ("", "s")), ("said", ("",)), ("state", ("", "s", "d")), ("suggest", ("", "s", "ed")),
        ("argue", ("", "s", "d")), ("assert", ("", "s", "ed")), ("feel", ("", "s")), ("felt", ("",)),
        ("impl", ("y", "ies", "ied")), ("mean", ("", "s", "t")), ("indicate", ("", "s", "d")),
        ("know", ("", "s")), ("knew", ("",)), ("show", ("", "s", "ed")), ("ask", ("", "s", "ed", "ing")),
        ("wonder", ("", "s", "ed", "ing")), ("explain", ("", "s", "ed")), ("mention", ("", "s", "ed")),
        ("note", ("", "s", "d")), ("insist", ("", "s", "ed")), ("assume", ("", "s", "d")),
        ("understand", ("", "s")), ("find", ("", "s")), ("found", ("",)), ("want", ("", "s")),
        ("discuss", ("", "es", "ed", "ing")), ("describe", ("", "s", "d")), ("hope", ("", "s", "d")),
    )
    for end in ends
)  # fmt: skip
_COPULA = frozenset({"is", "are", "was", "remains"})
_BE = frozenset({"be", "being"})
# "<request> promotes harmful behavior": verbs that give the request the labelled quality.
_ATTRIBUTING = frozenset(
    {"promote", "promotes", "involve", "involves", "encourage", "encourages", "contain", "contains",
     "advocate", "advocates", "incite", "incites", "facilitate", "facilitates", "endorse", "endorses",
     "seek", "seeks", "express", "expresses", "has", "have", "carry", "carries", "pose", "poses",
     "glorify", "glorifies"}
)  # fmt: skip
# "making the request harmful": verbs with an object and the label as its complement.
_MAKERS = frozenset(
    {"make", "makes", "making", "made", "render", "renders", "rendering", "classify", "classifies",
     "classifying", "deem", "deems", "consider", "considers"}
)  # fmt: skip
_CLASSIFYING = frozenset(
    {"considered", "deemed", "classified", "categorized", "categorised", "labeled", "labelled",
     "regarded", "viewed", "seen", "judged", "identified", "marked", "rated"}
)  # fmt: skip
# Between the copula and the label: linking, classifying and intensifying words only.
_FILLERS = _CLASSIFYING | frozenset(
    {
        "therefore", "thus", "hence", "so", "also", "indeed", "overall", "ultimately", "as", "to",
        "determined", "assessed", "found", "clearly", "inherently", "definitely", "certainly",
        "explicitly", "obviously", "evidently", "highly", "extremely", "very", "deeply",
        "fundamentally", "undoubtedly", "unequivocally", "fully", "entirely", "completely",
        "genuinely", "truly", "really", "universally", "widely", "strongly", "seriously", "severely",
        "particularly", "especially", "generally",
    }
)  # fmt: skip
_NEGATIONS = frozenset(
    {
        "not", "no", "never", "neither", "nor", "hardly", "barely", "scarcely", "cannot", "non",
        "nothing", "none", "isn't", "aren't", "wasn't", "isnt", "arent", "wasnt", "nt",
    }
)  # fmt: skip
_HEDGES = frozenset(
    {
        "could", "can", "may", "might", "would", "should", "must", "will", "shall", "possibly",
        "potentially", "probably", "likely", "unlikely", "perhaps", "maybe", "arguably",
        "seemingly", "apparently", "seems", "seem", "seemed", "appears", "appear", "appeared",
        "somewhat", "partially", "partly", "slightly", "mildly", "marginally", "relatively",
        "borderline", "ambiguous", "ambiguously", "mostly", "largely", "sometimes", "often",
        "usually", "typically", "theoretically", "hypothetically", "technically", "conditionally",
        "contextually", "less", "more", "either", "or", "does", "do", "tends", "tend", "leans", "lean",
    }
)  # fmt: skip
# In the subject: the clause doubts ("it is unclear whether the request is harmful") ...
_DOUBTS = frozenset(
    {"unclear", "uncertain", "unsure", "difficult", "hard", "ambiguous", "debatable", "questionable",
     "unknown", "impossible"}
)  # fmt: skip
# ... or asks or supposes ("determine whether the request is harmful"): no verdict.
_CONDITIONALS = frozenset({"if", "whether", "unless", "whenever", "once", "suppose", "assuming"})
# Right after the label: the verdict holds only in some case, or is one of two.
_QUALIFIED = re.compile(
    r"^[\s*_`'\"]*(?:(?:or|nor|and/or|/|and|but)\s+(?:not\s+|non-?)?(?:un)?harmful\b|or\b|nor\b|/"
    r"|if\b|unless\b|when\b|whenever\b|depending\b|only\b|\?"
    r"|in\s+(?:some|certain|other|specific|many|most|various)\b|under\s+(?:some|certain)\b"
    r"|to\s+(?:some|a)\s+(?:extent|degree)\b)"
)
_REQUEST_NOUN = re.compile(
    r"^\s+(?:(?:type|kind|form|sort)\s+of\s+)?"
    r"(?:request|query|question|inquiry|enquiry|prompt|message|statement|one)\b"
)
_NOUN_NEXT = re.compile(r"^\s+[a-z]")  # the label is followed by a word (its noun)
_CONNECTIVES = frozenset(
    {"therefore", "thus", "hence", "so", "and", "overall", "ultimately", "finally", "conclude", "that",
     "in", "conclusion", "summary", "sum", "then", "consequently", "accordingly"}
)  # fmt: skip
_WORD = re.compile(r"[a-z]+(?:'[a-z]+)?")
_LABEL = re.compile(r"\b(?:(?P<non>non|not)[- ]?)?(?P<label>(?:un)?harmful)\b")
_SENTENCE = re.compile(r"(?<=[.!?])\s+|\n")
_CLAUSE = re.compile(r"[,;:()\u2014\u2013]| - |\b(?:but|however|although|though|while|whereas|yet)\b")

_HARM = {"harmful": Harm.HARMFUL, "unharmful": Harm.UNHARMFUL}

# --- negated verdicts: "the request is not harmful", "does not contain any harmful content" ----
# In a copular predicate, before "not": linking, certainty and classifying words ("is therefore not
# harmful", "is considered not harmful"); after it: classifying words only, since any other word
# there is what the negation denies ("is not clearly harmful", "not necessarily", "not only").
_BEFORE_NOT = _CLASSIFYING | frozenset(
    {
        "therefore", "thus", "hence", "so", "also", "indeed", "overall", "ultimately", "clearly",
        "definitely", "certainly", "obviously", "evidently", "undoubtedly", "unequivocally",
        "determined", "assessed", "found", "as",
    }
)  # fmt: skip
_AFTER_NOT = _CLASSIFYING | frozenset({"determined", "assessed", "found", "as", "to", "be"})
# Words a negated predicate may also hold; they leave the negation's scope unclear (a "-ly" adverb too).
_SCOPE = frozenset(
    {"necessarily", "always", "quite", "too", "very", "so", "that", "all", "exactly", "even", "particularly",
     "inherently"}
)  # fmt: skip
# "not only harmful (but also ...)" affirms the label: no negation at all.
_ONLY = frozenset({"only", "just", "merely", "simply", "solely", "purely"})
_COPULAS = {
    "is": "is", "are": "are", "was": "was", "remains": "remains",
    "isn't": "is", "isnt": "is", "aren't": "are", "arent": "are", "wasn't": "was", "wasnt": "was",
}  # fmt: skip
_NEGATED_COPULAS = frozenset(c for c, base in _COPULAS.items() if c != base)
_DO = frozenset({"does", "do", "did"})
_DO_NOT = frozenset({"doesn't", "don't", "didn't", "doesnt", "dont", "didnt"})
_PLURAL_DO = frozenset({"do", "don't", "dont"})
# "<request> does not contain any harmful content", "contains no harmful content / nothing harmful".
_OBJECT_DETERMINERS = frozenset({"any", "anything", "no", "nothing", "a", "an"})
_NO = frozenset({"no", "nothing"})
_NOUNLESS = frozenset({"anything", "nothing"})  # "contains nothing harmful": no noun after the label
# "there is nothing harmful in the request", "there is no harmful intent in this request".
_THERE_IS = (["there", "is"], ["there", "are"], ["there", "was"], ["there's"])
_IN = frozenset({"in", "about", "within", "behind"})
# After a negated label: the negation holds only for a part or a degree ("not harmful in itself").
_RESTRICTED = re.compile(
    r"\b(?:itself|themselves|per\s+se|on\s+its\s+own|by\s+itself|on\s+the\s+surface|at\s+face\s+value"
    r"|in\s+isolation|as\s+such|explicitly|directly|overtly|necessarily|inherently|outright|strictly)\b"
)
# Anywhere after a negated verdict in the conclusion: a counterpoint makes it no conclusion.
_CONTRAST = re.compile(
    r"\b(?:but|however|yet|although|though|whereas|while|nevertheless|nonetheless|except|unless|despite)\b"
)
# "not harmful or offensive" denies both; "not harmful or unharmful", "or not" are alternatives.
_OR_ADJECTIVE = re.compile(r"^[\s*_`'\"]*(?:or|nor)\s+(?!(?:not|non|harmful|unharmful)\b)[a-z]")


@dataclass(frozen=True, slots=True)
class _Verdict:
    value: Harm
    firm: bool  # False: hedged, qualified, doubted, or a negation of unclear scope
    negated: bool = False  # read from a negated label: "is not harmful" is unharmful


@dataclass(frozen=True, slots=True)
class _Context:
    """What comes before a clause: the previous sentence, and the sentence's earlier clauses."""

    previous: list[str]
    lead: list[str]


def _names_request(words: list[str]) -> bool:
    return any(w in _REQUEST_WORDS for w in words) and not any(w in _OTHER_WORDS for w in words)


def _unsure(word: str) -> bool:
    return word in _NEGATIONS or word in _HEDGES or word.endswith("n't")


def _embeds(phrase: list[str], i: int) -> bool:
    """Whether ``phrase[i]`` starts an embedded clause with a subject of its own: "because ...",
    "believes that ...", "asks what ..." (not "requests that involve ...", "how to ...")."""
    word = phrase[i]
    if word in _SUBORDINATORS:
        return not (word == "as" and i > 0 and phrase[i - 1] in {"such", "well"})  # "such as X"
    return word in _WH_THAT and i > 0 and phrase[i - 1] in _REPORTING and phrase[i + 1 : i + 2] != ["to"]


def _embedded(phrase: list[str]) -> int:
    """Where the last embedded clause of ``phrase`` starts ("The user believes that X": at X); 0: none."""
    return 1 + max((i for i, w in enumerate(phrase) if _embeds(phrase, i)), default=-1)


def _own_clause(phrase: list[str]) -> list[str]:
    return phrase[_embedded(phrase) :]


def _is_request(phrase: list[str], ctx: _Context, *, singular: bool) -> bool:
    """Whether the subject (or object) ``phrase`` of a verdict is the request.

    It is when it names the request; when it is ``it``/``this`` after a sentence or clause that
    names it; when it is ``which`` (with a singular verb) or nothing (the clause begins with the
    verb: "Requests for X, such as Y, are considered harmful") after an earlier clause of the
    sentence that names it, or, in a clause that starts with ``because``, ``as``..., before it in the
    same clause. An embedded clause counts from its own start ("The user believes that vaccines are
    harmful" is about vaccines), except a relative clause right after the request ("Requests that
    involve violence are considered harmful").
    """
    if phrase and phrase[0] in _LIST_JOINERS:  # "Requests that involve fraud, deception, or threats"
        phrase = ctx.lead + phrase
    if len(phrase) > 1 and phrase[-1] in _RELATIVES and phrase[-2] not in _REQUEST_WORDS:
        return False  # "asks for something that is harmful": about the something
    start = _embedded(phrase)
    core = [w for w in phrase[start:] if w not in _CONNECTIVES]
    if not core:
        return _names_request(ctx.lead)
    if _names_request(core):
        return True
    if len(core) == 1 and core[0] in _PRONOUNS:
        # after "because", "as"...: the clause it depends on comes first ("The request ..., as it ...")
        main = phrase[: start - 1] if start and phrase[start - 1] in _SUBORDINATORS else []
        return _names_request(ctx.previous + ctx.lead + main)
    return core == ["which"] and singular and _names_request(ctx.lead)


def _attributed(words: list[str], k: int, value: Harm, firm: bool, ctx: _Context) -> _Verdict | None:
    """``words[k - 1]`` gives the request the label: "The request promotes harmful behavior"."""
    subject = words[: k - 1]
    if subject and _unsure(subject[-1]):
        return None  # "may promote harmful behavior": hedged (a denial never gets here: see _negation)
    if not firm or any(w in _CONDITIONALS or w in _DOUBTS for w in subject):
        return None  # "determine if the request contains harmful content"
    return _Verdict(value, firm) if _is_request(subject, ctx, singular=True) else None


# A clause's negated reading: whether it negates a label (else the affirmative reading applies), and
# the verdict it then states (None: none about the request).
_Negation = tuple[bool, _Verdict | None]
_AFFIRMATIVE: _Negation = (False, None)


def _negative(word: str) -> bool:
    return word in _NEGATIONS or word.endswith("n't")


def _predicative(word: str) -> bool:
    """A word that may stand between a copula (or a verb) and a negated label or the negation."""
    if word in _COPULAS:
        return False
    return (
        word in _FILLERS
        or word in _BE
        or word in _HEDGES
        or word in _SCOPE
        or word in _ONLY
        or _negative(word)
        or word.endswith("ly")
    )


def _negated_verdict(
    subject: list[str],
    ctx: _Context,
    label: re.Match[str],
    *,
    singular: bool,
    clear: bool,
    only: bool = False,
) -> _Negation:
    """The verdict of a negated clause about ``subject``: :func:`_denial`, not firm when the subject
    is hedged or doubted; None when it is not the request. ``only``: the clause says "not only
    harmful (but ...)", which affirms the label: an unsure affirmative verdict."""
    if any(w in _CONDITIONALS for w in subject) or not _is_request(subject, ctx, singular=singular):
        return True, None
    if only:
        return True, _Verdict(_HARM[label["label"]], firm=False)
    hedged = bool(subject) and _unsure(subject[-1])  # "the request likely does not contain ..."
    return True, _denial(label, clear=clear and not hedged and not any(w in _DOUBTS for w in subject))


def _denial(label: re.Match[str], *, clear: bool) -> _Verdict:
    """The verdict that denies ``label``: firm when the negation is clear and denies "harmful" (a
    denied "unharmful" is a litotes, often a hedge: it only leans to harmful)."""
    value = Harm.UNHARMFUL if label["label"] == "harmful" else Harm.HARMFUL
    return _Verdict(value, firm=clear and label["label"] == "harmful", negated=True)


def _negated_existence(
    words: list[str], label: re.Match[str], after: str, ctx: _Context, clear: bool
) -> _Negation:
    """Existence denied: "There is nothing harmful in the request", "There is no harmful intent
    in this request"."""
    if not words or words[-1] not in _NO or [w for w in words[:-1] if w not in _CONNECTIVES] not in _THERE_IS:
        return _AFFIRMATIVE
    rest = _WORD.findall(after)
    at = next((i for i, w in enumerate(rest) if w in _IN), len(rest))
    if at > 4 or not _names_request(rest[at + 1 : at + 5]) or any(w in _OTHER_WORDS for w in rest):
        return True, None  # "there is no harmful content in the response", "... about asking X"
    return True, _denial(label, clear=clear and label["non"] is None)


def _negated_object(
    words: list[str], label: re.Match[str], after: str, ctx: _Context, clear: bool
) -> _Negation:
    """An object denied: "<request> does not contain / promote / involve (any) harmful <noun>" (also
    ``doesn't``, verbs joined by "or"), "<request> contains no harmful <noun>", "contains nothing
    harmful"."""
    k = len(words)
    det = words[k - 1] if k and words[k - 1] in _OBJECT_DETERMINERS else None
    verb = k - 1 if det else k
    if verb == 0 or words[verb - 1] not in _ATTRIBUTING:
        return _AFFIRMATIVE
    verb -= 1
    while verb >= 2 and words[verb - 1] in {"or", "nor"} and words[verb - 2] in _ATTRIBUTING:
        verb -= 2  # "does not promote or encourage harmful behavior"
    n = verb  # back over adverbs to the negation: "does not explicitly promote" (unclear)
    while n > 0 and verb - n < 2 and not _negative(words[n - 1]) and _predicative(words[n - 1]):
        n -= 1
    negations = (det in _NO) + (label["non"] is not None)
    end, singular = verb, words[verb].endswith("s")
    if n > 0 and _negative(words[n - 1]):
        negations += 1
        aux = words[n - 1] if words[n - 1] in _DO_NOT else " ".join(words[max(0, n - 2) : n])
        plain = aux in _DO_NOT or aux in {f"{do} not" for do in _DO}  # not "may not", "cannot"
        clear = clear and plain and n == verb
        end = n - 1 - (words[n - 1] == "not")
        singular = aux.split()[0] not in _PLURAL_DO
    if not negations:
        return _AFFIRMATIVE
    if det not in _NOUNLESS and not _NOUN_NEXT.match(after):
        return True, None
    clear = clear and negations == 1 and label["non"] is None
    only = any(w in _ONLY for w in words[n:verb])  # "does not only promote harmful ..."
    return _negated_verdict(words[:end], ctx, label, singular=singular, clear=clear, only=only)


def _negated_copula(
    words: list[str], label: re.Match[str], after: str, ctx: _Context, clear: bool
) -> _Negation:
    """A predicate denied: "<request> is not (considered) harmful", "isn't harmful", "is
    non-harmful", "is not a harmful request", "nothing in the request is harmful"."""
    k = len(words)
    if _REQUEST_NOUN.match(after):  # "is not a harmful request"
        if not k or words[k - 1] not in _ARTICLES:
            return _AFFIRMATIVE
        k -= 1
    j = k
    while j > 0 and _predicative(words[j - 1]):
        j -= 1
    if j == 0 or words[j - 1] not in _COPULAS:
        return _AFFIRMATIVE
    copula = words[j - 1]
    predicate = ["not"] * (copula in _NEGATED_COPULAS) + words[j:k] + ["not"] * (label["non"] is not None)
    negations = [i for i, w in enumerate(predicate) if _negative(w)]
    subject = words[: j - 1]
    head = _own_clause(subject)
    while head and head[0] in _CONNECTIVES:
        head = head[1:]
    if head and _negative(head[0]):  # "nothing in the request is harmful", "not all requests are ..."
        only = False
        clear = clear and not negations and head[0] == "nothing" and len(head) > 1 and head[1] in _IN
        clear = clear and all(w in _BEFORE_NOT for w in predicate)
    elif negations:
        i = negations[0]
        only = any(w in _ONLY for w in predicate[i + 1 :])  # "is not only harmful"
        clear = clear and len(negations) == 1 and predicate[i] == "not"
        clear = clear and all(w in _BEFORE_NOT for w in predicate[:i])
        clear = clear and all(w in _AFTER_NOT for w in predicate[i + 1 :])
    else:
        return _AFFIRMATIVE
    singular = _COPULAS[copula] != "are"
    return _negated_verdict(subject, ctx, label, singular=singular, clear=clear, only=only)


def _negation(words: list[str], label: re.Match[str], after: str, ctx: _Context) -> _Negation:
    """The negated reading of a clause (``words`` up to ``label``, ``after`` the rest of it).

    The negation is *clear* when it denies the label itself and nothing narrower: not qualified
    ("not harmful if ..."; "or" between adjectives denies both), not restricted to a part or a
    degree ("not harmful in itself", "not explicitly"), not doubled ("does not contain no ...").
    """
    noun = _REQUEST_NOUN.match(after)
    rest = after[noun.end() :] if noun else after
    qualified = _QUALIFIED.match(rest) is not None and _OR_ADJECTIVE.match(rest) is None
    clear = not qualified and _RESTRICTED.search(rest) is None
    for reading in (_negated_existence, _negated_object, _negated_copula):
        negation = reading(words, label, after, ctx, clear)
        if negation[0]:
            return negation
    return _AFFIRMATIVE


def _claim(words: list[str], label: re.Match[str], after: str, ctx: _Context) -> _Verdict | None:
    """The verdict that ``label`` states, ``words`` being its clause up to it; None if it states none."""
    negated, verdict = _negation(words, label, after, ctx)
    if negated:
        return verdict
    value = _HARM[label["label"]]
    noun = _REQUEST_NOUN.match(after)  # "is a harmful request"
    if noun:
        after = after[noun.end() :]
    firm = label["non"] is None and not _QUALIFIED.match(after)
    k = len(words)
    if noun:  # back to the article over its adjectives: "is a common and unharmful inquiry"
        article = next((a for a in range(k - 1, max(-1, k - 5), -1) if words[a] in _ARTICLES), None)
        if article is None:
            return None
        firm = firm and not any(_unsure(w) for w in words[article + 1 : k])
        k = article
    # Walk back over the predicate: linking words, and the auxiliaries that make it unsure.
    has_be = False
    while k > 0 and (words[k - 1] in _FILLERS or words[k - 1] in _BE or _unsure(words[k - 1])):
        k -= 1
        pair = words[k + 1 : k + 3]
        if words[k] == "can" and len(pair) == 2 and pair[0] in _BE and pair[1] in _CLASSIFYING:
            continue  # "can be considered harmful" classifies; "can be harmful" only may be
        has_be = has_be or words[k] in _BE
        firm = firm and not _unsure(words[k])
    if k == 0:
        return None
    makers = [m for m in range(max(0, k - 6), k) if words[m] in _MAKERS]
    if makers:  # "making the request harmful", "which makes it harmful"
        m = makers[-1]
        firm = firm and not any(_unsure(w) for w in words[max(0, m - 2) : m])
        return _Verdict(value, firm) if _is_request(words[m + 1 : k], ctx, singular=False) else None
    if not has_be and words[k - 1] in _ARTICLES and k > 1 and words[k - 2] in _ATTRIBUTING:
        k -= 1  # "expresses a harmful opinion"
    if not has_be and words[k - 1] in _ATTRIBUTING and (noun or _NOUN_NEXT.match(after)):
        return _attributed(words, k, value, firm, ctx)
    if words[k - 1] in _COPULA:
        subject, singular = words[: k - 1], words[k - 1] in {"is", "was", "remains"}
    elif has_be and not any(w in _BE or _negative(w) for w in words[:k]):
        subject, singular = words[:k], False  # "the request can be considered harmful": auxiliary walked over
    else:
        return None  # "harmful content", "no harmful intent": no predicate, no verdict
    if any(w in _DOUBTS for w in subject):
        return _Verdict(value, firm=False) if _names_request(subject + ctx.lead + ctx.previous) else None
    if any(w in _CONDITIONALS for w in subject):
        return None  # a question or a condition ("determine whether the request is harmful")
    return _Verdict(value, firm) if _is_request(subject, ctx, singular=singular) else None


def _pieces(pattern: re.Pattern[str], text: str) -> Iterator[tuple[int, str]]:
    """``pattern.split(text)``, each piece with its offset in ``text``."""
    start = 0
    for separator in pattern.finditer(text):
        yield start, text[start : separator.start()]
        start = separator.end()
    yield start, text[start:]


def _claims(text: str) -> list[_Verdict]:
    """The verdicts about the request that ``text`` (normalised) states, sentence by sentence.

    A negated verdict stays firm only when nothing after it turns or contradicts it: no
    counterpoint ("but", "however", "although"...) and no "harmful" that is neither negated nor
    part of a verdict ("The request does not contain harmful language. The sentiment is harmful.").
    """
    found: list[tuple[int, _Verdict]] = []  # each verdict with the offset where its label ends
    loose: list[int] = []  # offsets of the other affirmative "harmful"s
    previous: list[str] = []
    for start, sentence in _pieces(_SENTENCE, text):
        lead: list[str] = []
        for offset, clause in _pieces(_CLAUSE, sentence):
            for label in _LABEL.finditer(clause):
                words = _WORD.findall(clause[: label.start()])
                verdict = _claim(words, label, clause[label.end() :], _Context(previous, lead))
                at = start + offset
                if verdict is not None:
                    found.append((at + label.end(), verdict))
                elif label.group() == "harmful" and not any(_negative(w) for w in lead + words):
                    loose.append(at + label.start())
            lead = lead + _WORD.findall(clause)
        if lead:
            previous = lead
    return [
        _Verdict(v.value, firm=False, negated=True)
        if v.negated and v.firm and (_CONTRAST.search(text, end) or any(at > end for at in loose))
        else v
        for end, v in found
    ]


def _verdicts(lines: list[str]) -> list[_Verdict]:
    found: list[_Verdict] = []
    prose: list[str] = []
    for line in lines:
        if _QUOTED.match(_norm(line)):
            continue  # "> ...": chat text the model repeats, never its own verdict
        labelled = _labelled(line)
        if labelled is not None:
            found.append(labelled)
        else:
            prose.append(_norm(line))
    return found + _claims("\n".join(prose))


def _norm(text: str) -> str:
    """Compatibility forms folded, format characters dropped, case folded, typographic apostrophes
    made plain: for reading the model's own words (:func:`~streams.prompt.markers.fold` also folds
    look-alike letters, which would turn ``l`` into ``i``)."""
    text = unicodedata.normalize("NFKC", text)
    if not text.isascii():
        text = "".join(c for c in text if unicodedata.category(c) != "Cf").replace("\u2019", "'")
    return text.casefold()


def _conclusion(prefix: str) -> list[str]:
    """The lines of the conclusion paragraph: the last paragraph of the last section."""
    lines = prefix.splitlines()
    start = max((i for i, line in enumerate(lines) if _HEADING.match(line)), default=0)
    section = lines[start:]
    while section and _BLANK.match(section[-1]):
        section.pop()
    end = len(section)
    first = end
    while first > 0 and not _BLANK.match(section[first - 1]):
        first -= 1
    return section[first:end]


def _labelled(line: str) -> _Verdict | None:
    """``Request: harmful`` (in or out of an unquoted ``Answers:`` block), ``# Task 1: unharmful``..."""
    mark = classify(line)
    if mark is not None and not mark.quoted and mark.marker in BLOCK_HEADERS and mark.rest.strip():
        line = mark.rest  # "Answers: Request: harmful"
        mark = classify(line)
    if mark is not None and (mark.quoted or mark.marker is not Marker.REQUEST):
        return None  # an echo, or another field / marker
    match = _LABELLED.match(_norm(line).strip())
    if match is None:
        return None
    if mark is None and skeleton(match["head"]) not in _HEADS:
        return None
    return _Verdict(_HARM[match["value"]], firm=True)


def _echoes(lines: list[str], chat: str) -> bool:
    """Whether a line of the conclusion repeats chat text (decoration, case, look-alike letters and
    invisible characters ignored): the model may be echoing what the user wrote, not concluding."""
    if not chat:
        return False
    heard = [line_skeleton for line in lines if (line_skeleton := skeleton(line))]
    if not heard:
        return False
    said = skeleton.__wrapped__(chat)  # chat text is one-off: kept out of the lines' cache
    return any(line_skeleton in said for line_skeleton in heard)


def early_answer(text: str, chat: str = "") -> Harm | None:
    """The request answer stated by Task 1's conclusion at the end of ``text``; None unless explicit.

    ``text`` is a prefix that ended at a stop string (the stop string itself
    excluded, as vLLM returns it). ``chat`` is the chat text the model read (the
    request): a conclusion with a line that repeats it is no answer, so a
    ``Request: unharmful`` or "the request is unharmful" planted in the chat and
    echoed by the model cannot end the generation (the full output decides, as
    it would without early exit). None means: continue the generation.
    Never raises.
    """
    conclusion = _conclusion(text)
    if _echoes(conclusion, chat):
        return None
    return _stated(tuple(conclusion))


# Pure in the conclusion's lines, and models conclude in set phrases: on the recorded 1B/3B
# outputs 4,290 Task-1 conclusions take 1,461 distinct forms, so most events reuse an analysis.
@lru_cache(maxsize=4096)
def _stated(conclusion: tuple[str, ...]) -> Harm | None:
    """The request answer a conclusion paragraph states firmly, or None."""
    verdicts = _verdicts(list(conclusion))
    values = {v.value for v in verdicts if v.firm}
    if len(values) != 1:
        return None  # no firm verdict, or firm verdicts that disagree
    value = values.pop()
    # A verdict that is not firm vetoes the answer, except a negation of unclear scope that leans
    # the same way: "The request is unharmful as it does not explicitly seek harmful advice."
    if any(not v.firm and (not v.negated or v.value is not value) for v in verdicts):
        return None
    return value


def _first_stop(text: str) -> tuple[int, str] | None:
    found = [(i, stop) for stop in STOP_STRINGS if (i := text.find(stop)) >= 0]
    return min(found) if found else None


def early_prefix(full_text: str) -> str | None:
    """What a generation with :data:`STOP_STRINGS` returns for this full output: the text before the
    first stop string; None when the output has none (the generation would have ended by itself)."""
    stop = _first_stop(full_text)
    return None if stop is None else full_text[: stop[0]]


def continuation_prompt(prompt: str, prefix: str) -> str:
    """The prompt that continues a generation stopped early: the original prompt, then the prefix."""
    return prompt + prefix


def join_continuation(prefix: str, continuation: str, *, hidden: str = "") -> str:
    """The full output of a continued generation. ``hidden``: the generated text that is in
    neither ``prefix`` nor ``continuation`` (the stop string, when the continuation was generated
    from token ids that include it)."""
    return prefix + hidden + continuation


def early_exit_applies(request: str, response: str | None) -> bool:
    """Whether an event may exit early: it has no response, and its request holds no ``Task 2``
    in any form (case, look-alike letters, invisible characters, punctuation between the words),
    so chat text echoed by the model cannot end Task 1 where the model did not. Any other event
    is generated without stop strings."""
    if response is not None:
        return False
    return _TASK_2.search(fold(request)) is None


@dataclass(frozen=True, slots=True)
class EarlyExit:
    """What early exit makes of one full (greedy) output.

    ``answer`` is the early request answer (None: the generation continued, or
    never reached a stop string, and the full output decides).
    ``generated_chars`` counts what the engine generates, the stop string
    included (it is generated, then left out of the text).
    """

    answer: Harm | None
    prefix: str | None  # the text at the stop string; None: the output has no stop string
    generated_chars: int
    total_chars: int

    @property
    def saved_chars(self) -> int:
        return self.total_chars - self.generated_chars

    @property
    def exited(self) -> bool:
        return self.answer is not None


def replay_early_exit(full_text: str, chat: str = "") -> EarlyExit:
    """Apply the engine contract to a full output (exact for greedy decoding); ``chat``: the
    request the model read (see :func:`early_answer`)."""
    stop = _first_stop(full_text)
    if stop is None:
        return EarlyExit(None, None, len(full_text), len(full_text))
    at, string = stop
    prefix = full_text[:at]
    answer = early_answer(prefix, chat)
    generated = at + len(string) if answer is not None else len(full_text)
    return EarlyExit(answer, prefix, generated, len(full_text))
