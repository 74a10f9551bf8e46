"""The GuardReasoner prompt: the one template, built byte-for-byte as the model was evaluated."""

from __future__ import annotations

from streams.prompt.template import (
    INSTRUCTION,
    NO_RESPONSE,
    build_prompt,
    build_prompts,
    neutralise,
    split_input,
)

__all__ = ["INSTRUCTION", "NO_RESPONSE", "build_prompt", "build_prompts", "neutralise", "split_input"]
