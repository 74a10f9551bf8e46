"""Slow path without vLLM: plain transformers ``generate`` on batches of concurrent requests.

Requests arriving together are collected (up to ``max_batch`` or a few
milliseconds) and generated as one left-padded, greedy batch in a worker
thread, so the event loop stays free. Same output contract as the vLLM
engines; no continuous batching, so a batch lasts as long as its longest
output.
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass, field
from typing import Any

from streams.config import EngineConfig
from streams.engines.base import GenerateOptions, Generation, cut_at_stop
from streams.engines.models import context_limit, resolve_model
from streams.errors import EngineRejected, EngineTimeout, EngineUnavailable

__all__ = ["TransformersEngine"]

logger = logging.getLogger(__name__)

_COLLECT_S = 0.005


@dataclass
class _Request:
    prompt: str
    options: GenerateOptions
    future: asyncio.Future[Generation] = field(repr=False)
    picked: asyncio.Event = field(default_factory=asyncio.Event, repr=False)  # its batch started


class TransformersEngine:
    def __init__(self, model: str, *, config: EngineConfig | None = None, max_batch: int = 16) -> None:
        self._ref = model
        self._config = config or EngineConfig()
        self._model_id = self._config.served_model_name or model.rstrip("/").rsplit("/", 1)[-1]
        self._max_batch = max_batch
        self._queue: asyncio.Queue[_Request] = asyncio.Queue()
        self._runner: asyncio.Task[None] | None = None
        self._model: Any = None
        self._tokenizer: Any = None
        self._context: int | None = None

    @property
    def name(self) -> str:
        return f"transformers:{self._ref}"

    @property
    def model(self) -> str:
        return self._model_id

    @property
    def context_tokens(self) -> int | None:
        return self._context

    async def count_tokens(self, text: str) -> int:
        if self._tokenizer is None:
            raise EngineUnavailable("transformers engine not running")
        return len(await asyncio.to_thread(self._tokenizer.encode, text))

    async def start(self) -> None:
        if self._runner is not None:
            return
        path = await asyncio.to_thread(resolve_model, self._ref, engine_kind="transformers")
        self._context = context_limit(path, self._config.max_model_len)
        self._model, self._tokenizer = await asyncio.to_thread(self._load, path)
        self._runner = asyncio.create_task(self._run(), name="transformers-engine")

    @staticmethod
    def _load(path: str) -> tuple[Any, Any]:
        from transformers import AutoModelForCausalLM, AutoTokenizer

        tokenizer = AutoTokenizer.from_pretrained(path)
        tokenizer.padding_side = "left"
        if tokenizer.pad_token is None:
            tokenizer.pad_token = tokenizer.eos_token
        model: Any = AutoModelForCausalLM.from_pretrained(path)
        model.eval()
        return model, tokenizer

    async def generate(self, prompt: str, options: GenerateOptions) -> Generation:
        if self._runner is None or self._runner.done():
            raise EngineUnavailable("transformers engine not running")
        future: asyncio.Future[Generation] = asyncio.get_running_loop().create_future()
        request = _Request(prompt, options, future)
        await self._queue.put(request)
        await request.picked.wait()  # queued time does not count against the timeout
        try:
            return await asyncio.wait_for(asyncio.shield(future), options.timeout_s)
        except TimeoutError:
            raise EngineTimeout(f"no answer within {options.timeout_s:g}s") from None

    async def _run(self) -> None:
        while True:
            batch = [await self._queue.get()]
            deadline = time.monotonic() + _COLLECT_S
            while len(batch) < self._max_batch:
                try:
                    batch.append(await asyncio.wait_for(self._queue.get(), deadline - time.monotonic()))
                except TimeoutError:
                    break
            batch = [r for r in batch if not r.future.done()]
            if not batch:
                continue
            for request in batch:
                request.picked.set()
            try:
                results = await asyncio.to_thread(self._generate, batch)
            except Exception as exc:  # a failed batch fails its requests, not the engine
                error = (
                    EngineRejected(str(exc)) if isinstance(exc, ValueError) else EngineUnavailable(repr(exc))
                )
                for request in batch:
                    if not request.future.done():
                        request.future.set_exception(error)
                continue
            for request, result in zip(batch, results, strict=True):
                if not request.future.done():
                    request.future.set_result(result)

    def _generate(self, batch: list[_Request]) -> list[Generation]:
        import torch

        started = time.perf_counter()
        max_new = max(r.options.max_tokens for r in batch)
        enc = self._tokenizer(
            [r.prompt for r in batch], return_tensors="pt", padding=True, add_special_tokens=True
        )
        if enc["input_ids"].shape[1] + max_new > (self._context or self._config.max_model_len):
            raise ValueError(f"prompt of {enc['input_ids'].shape[1]} tokens exceeds max_model_len")
        with torch.inference_mode():
            out = self._model.generate(
                **enc, max_new_tokens=max_new, do_sample=False, pad_token_id=self._tokenizer.pad_token_id
            )
        new = out[:, enc["input_ids"].shape[1] :]
        eos = self._tokenizer.eos_token_id
        latency = time.perf_counter() - started
        results = []
        for row, request, mask in zip(new, batch, enc["attention_mask"], strict=True):
            tokens = row.tolist()
            stop = tokens.index(eos) if eos in tokens else None
            kept = tokens[: stop if stop is not None else request.options.max_tokens]
            text = self._tokenizer.decode(kept, skip_special_tokens=True)
            text, stopped = cut_at_stop(text, request.options.stop) if request.options.stop else (text, None)
            results.append(
                Generation(
                    text=text,
                    model=self._model_id,
                    prompt_tokens=int(mask.sum()),
                    completion_tokens=len(kept),
                    finish_reason="stop" if stop is not None or stopped else "length",
                    latency_s=latency,
                    stop_reason=stopped,
                )
            )
        return results

    async def ready(self) -> bool:
        return self._runner is not None and not self._runner.done()

    async def aclose(self) -> None:
        runner, self._runner = self._runner, None
        if runner is not None:
            runner.cancel()
            await asyncio.gather(runner, return_exceptions=True)
        self._model = self._tokenizer = None
