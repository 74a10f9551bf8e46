"""A text's fingerprint: what privacy-default records carry instead of the text."""

from __future__ import annotations

import hashlib

__all__ = ["text_digest"]


def text_digest(text: str) -> dict[str, str | int]:
    """``{"sha256": hex of the UTF-8 bytes, "length": Unicode code points}``.

    Lone surrogates (valid in a JSON string, not in UTF-8) are hashed as their
    surrogate-pass bytes, so every text has a digest.
    """
    data = text.encode("utf-8", "surrogatepass")
    return {"sha256": hashlib.sha256(data).hexdigest(), "length": len(text)}
