"""What a verdict's block, alert and findings records may say about the chat.

Privacy default (``GUARDSTREAM_PRIVACY_INCLUDE_TEXT=false``): no chat text and
no model output; instead a SHA-256 and length of each text (:attr:`digests`)
and the model-written parts — reasoning summary, harm phrases, evidence words —
with the user's words redacted (:class:`~streams.privacy.Redactor`). With
``include_text``: the same fields unredacted, plus the texts (:attr:`texts`)
and the model's reasoning. The archive record never goes through this: it is
the full audit record.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from streams.parse import Harm
from streams.privacy import Redactor, text_digest
from streams.verdict import Outcome, Verdict

__all__ = ["REASON_CHARS", "Disclosure", "short_reason"]

REASON_CHARS = 280


def short_reason(verdict: Verdict, redact: Callable[[str], str] | None = None) -> str:
    """One line a moderator or end user can read: the deciding task's last reasoning step
    (≤ ``REASON_CHARS``). ``redact`` (str → str) is applied before the line is shortened,
    so a cut never splits a word it would have hidden."""
    if verdict.outcome is Outcome.ENGINE_ERROR:
        text = f"guard engine unavailable ({verdict.error or 'error'}); blocked by fail-closed policy"
    elif verdict.outcome is Outcome.UNPARSED:
        status = verdict.status.value if verdict.status else "unparsed"
        text = f"guard output unreadable ({status}); blocked by fail-closed policy"
    else:
        task = 3 if verdict.response is Harm.HARMFUL and verdict.request is not Harm.HARMFUL else 1
        steps = next((r.steps for r in verdict.reasoning if r.task == task and r.steps), ())
        text = (
            " ".join(steps[-1].split())
            if steps
            else f"{'response' if task == 3 else 'request'} judged harmful"
        )
    if redact is not None:
        text = redact(text)
    return text if len(text) <= REASON_CHARS else text[: REASON_CHARS - 1] + "…"


class Disclosure:
    """The privacy view of one verdict, shared by every record built from it."""

    __slots__ = ("_categories", "_harms", "_reason", "_redactor", "include_text", "verdict")

    def __init__(self, verdict: Verdict, *, include_text: bool = False) -> None:
        self.verdict = verdict
        self.include_text = include_text
        self._redactor: Redactor | None = None
        self._reason: str | None = None
        self._harms: list[str] | None = None
        self._categories: list[dict[str, Any]] | None = None

    def text(self, model_text: str) -> str:
        """Model-written text as it may be published (redacted unless ``include_text``)."""
        if self.include_text:
            return model_text
        if self._redactor is None:
            self._redactor = Redactor((self.verdict.request_text, self.verdict.response_text))
        return self._redactor.redact(model_text)

    @property
    def reason(self) -> str:
        if self._reason is None:
            self._reason = short_reason(self.verdict, self.text)
        return self._reason

    def harms(self) -> list[str]:
        """The harm phrases through :meth:`text` (computed once; records share the list, read-only)."""
        if self._harms is None:
            self._harms = [self.text(h) for h in self.verdict.harms]
        return self._harms

    def categories(self) -> list[dict[str, Any]]:
        """``HarmCategory.to_dict()`` of each category, evidence words through :meth:`text`
        (computed once; records share the list, read-only)."""
        if self._categories is None:
            out = []
            for category in self.verdict.categories:
                data = category.to_dict()
                data["evidence"] = [
                    {"task": e.task, "step": e.step, "matched": [self.text(m) for m in e.matched]}
                    for e in category.evidence
                ]
                out.append(data)
            self._categories = out
        return self._categories

    def digests(self) -> dict[str, Any]:
        """SHA-256 and length of the request and (when there is one) the response."""
        v = self.verdict
        return {
            "request": text_digest(v.request_text),
            "response": text_digest(v.response_text) if v.response_text is not None else None,
        }

    def texts(self) -> dict[str, Any]:
        """The chat texts when they may be published, else nothing."""
        if not self.include_text:
            return {}
        return {"request_text": self.verdict.request_text, "response_text": self.verdict.response_text}

    def reasoning(self) -> list[dict[str, Any]] | None:
        """The model's reasoning per task when it may be published, else None."""
        return [r.to_dict() for r in self.verdict.reasoning] if self.include_text else None
