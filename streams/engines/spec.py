"""Engine specs: ``KIND:TARGET`` strings from the CLI or ``GUARDSTREAM_ENGINE_SPEC``.

=====================  ==================================================
``vllm:MODEL``         in-process vLLM ``AsyncLLM`` (MODEL: folder or hub id)
``openai:URL``         a vLLM OpenAI-compatible server, e.g. ``openai:http://vllm:8000``;
                       ``openai:URL1,URL2`` balances over several (engines/balanced.py)
``transformers:MODEL`` plain transformers ``generate`` (slow path, no vLLM)
``recorded:DIR``       recorded real outputs, matched by exact prompt
``fake:instant``       a test double, no model (load tests; see engines/fake.py)
=====================  ==================================================

Heavy imports (vllm, torch, httpx) happen only for the kind asked for.
"""

from __future__ import annotations

from pathlib import Path

from streams.config import CacheConfig, EngineConfig
from streams.engines.base import GuardEngine
from streams.errors import ConfigError

__all__ = ["ENGINE_KINDS", "create_engine", "preflight", "split_spec"]

ENGINE_KINDS = ("vllm", "openai", "transformers", "recorded", "fake")


def split_spec(spec: str) -> tuple[str, str]:
    kind, sep, target = spec.partition(":")
    if not sep or not target or kind not in ENGINE_KINDS:
        raise ConfigError(
            f"engine spec {spec!r} must be one of {', '.join(k + ':...' for k in ENGINE_KINDS)}"
        )
    return kind, target


def create_engine(config: EngineConfig, cache: CacheConfig | None = None) -> GuardEngine:
    """The engine ``config`` names; with ``cache`` (enabled), behind a verdict cache."""
    engine = _create(config)
    if cache is not None and cache.enabled:
        from streams.engines.cache import CacheLimits, CachingEngine

        limits = CacheLimits(max_entries=cache.max_entries, max_bytes=cache.max_bytes, ttl_s=cache.ttl_s)
        return CachingEngine(engine, limits)
    return engine


def _create(config: EngineConfig) -> GuardEngine:
    kind, target = split_spec(config.spec)
    if kind == "recorded":
        from streams.engines.recorded import RecordedEngine

        path = Path(target)
        if not path.exists():
            raise ConfigError(f"recorded engine: {path} does not exist")
        return RecordedEngine(path)
    if kind == "fake":
        from streams.engines.fake import parse_fake_spec

        return parse_fake_spec(target)
    if kind == "vllm":
        from streams.engines.vllm import VllmEngine

        return VllmEngine(target, config=config)
    if kind == "openai":
        from streams.engines.openai import OpenAIEngine

        if "," in target:
            from streams.engines.balanced import BalancedEngine

            urls = [u.strip() for u in target.split(",") if u.strip()]
            return BalancedEngine([OpenAIEngine(u, config=config) for u in urls])
        return OpenAIEngine(target, config=config)
    from streams.engines.transformers import TransformersEngine

    return TransformersEngine(target, config=config)


def preflight(config: EngineConfig) -> None:
    """Fail fast, before a broker or worker starts, when the engine cannot possibly run."""
    kind, target = split_spec(config.spec)
    if kind in {"vllm", "transformers"}:
        from streams.engines.models import resolve_model

        resolve_model(target, engine_kind=kind)
    elif kind == "recorded" and not Path(target).exists():
        raise ConfigError(f"recorded engine: {target} does not exist")
