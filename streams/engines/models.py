"""Where model weights come from: a local folder, the Hugging Face cache, or a download.

GuardReasoner weights live on the Hugging Face hub (``yueliu1999/GuardReasoner-1B``,
``-3B``, ``-8B``). A hub id is fetched on first use where a network exists and
cached (``HF_HOME``); offline, without a cached copy, :func:`resolve_model`
raises :class:`~streams.errors.ModelNotFound` with what to do — it never falls
back to anything else.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

from streams.errors import ModelNotFound

__all__ = ["context_limit", "resolve_model"]

_CONTEXT_KEYS = ("max_position_embeddings", "n_positions", "max_sequence_length", "seq_length")

logger = logging.getLogger(__name__)


def _looks_like_path(name: str) -> bool:
    return name.startswith(("/", ".", "~")) or name.count("/") != 1


def resolve_model(name: str, *, engine_kind: str = "vllm") -> str:
    """A local folder holding the model ``name`` (a folder or a hub id)."""
    path = Path(name).expanduser()
    if path.is_dir():
        if not (path / "config.json").is_file():
            raise ModelNotFound(f"{path} has no config.json: not a Hugging Face model folder")
        return str(path)
    if _looks_like_path(name):
        raise ModelNotFound(f"model folder {path} does not exist")
    from huggingface_hub import snapshot_download

    try:
        return str(snapshot_download(name, local_files_only=True))
    except Exception:  # noqa: S110 - not cached: try the hub below
        pass
    logger.info('downloading model model="%s" (first use; cached afterwards)', name)
    try:
        return str(snapshot_download(name))
    except Exception as exc:
        short = name.rsplit("/", 1)[-1]
        raise ModelNotFound(
            f"model {name!r} is not in the local Hugging Face cache and cannot be downloaded here "
            f"({type(exc).__name__}). Fetch it where a network exists "
            f"(`hf download {name} --local-dir models/{short}`) and pass "
            f"--engine {engine_kind}:models/{short}, or choose another engine with "
            f"--engine openai:URL (a vLLM server) or --engine recorded:DIR."
        ) from exc


def context_limit(model_dir: str, wanted: int) -> int:
    """``wanted`` (``GUARDSTREAM_ENGINE_MAX_MODEL_LEN``), capped at what the model was built for.

    A model folder whose ``config.json`` says it handles fewer positions than asked
    gets its own limit (logged), instead of vLLM refusing to start with a traceback.
    """
    try:
        config = json.loads((Path(model_dir) / "config.json").read_text())
    except (OSError, ValueError):
        return wanted
    for key in _CONTEXT_KEYS:
        value = config.get(key) if isinstance(config, dict) else None
        if isinstance(value, int) and value > 0:
            if value < wanted:
                logger.warning(
                    'model handles fewer positions than asked, using its limit model="%s" %s=%d '
                    "max_model_len=%d",
                    model_dir,
                    key,
                    value,
                    wanted,
                )
                return value
            return wanted
    return wanted
