"""Guard engines behind one protocol; :func:`create_engine` builds one from a spec string."""

from __future__ import annotations

from streams.engines.base import GenerateOptions, Generation, GuardEngine
from streams.engines.spec import ENGINE_KINDS, create_engine, preflight

__all__ = ["ENGINE_KINDS", "GenerateOptions", "Generation", "GuardEngine", "create_engine", "preflight"]
