"""Privacy: what of a chat may leave the archive (digests, and reasoning with the user's words redacted)."""

from __future__ import annotations

from streams.privacy.digest import text_digest
from streams.privacy.redact import REDACTED, Redactor
from streams.privacy.text import display_form, key_form, tokens
from streams.privacy.vocabulary import Vocabulary, packaged_vocabulary

__all__ = [
    "REDACTED",
    "Redactor",
    "Vocabulary",
    "display_form",
    "key_form",
    "packaged_vocabulary",
    "text_digest",
    "tokens",
]
