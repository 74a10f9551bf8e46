"""Remote engine: a vLLM OpenAI-compatible server (``/v1/completions``, raw prompt, no chat template).

For deployments where workers are CPU pods and vLLM scales on its own GPU
nodes. One pooled ``httpx.AsyncClient``, at most ``max_concurrency`` requests
in flight; loops are stopped on the server (vLLM's ``repetition_detection``).
Errors map onto the engine error tree; the pipeline retries the retryable ones
(connection errors, 5xx, timeouts, 429 with its ``Retry-After``) with backoff.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any

import httpx
import orjson

from streams.config import EngineConfig
from streams.engines.base import GenerateOptions, Generation
from streams.errors import EngineOverloaded, EngineRejected, EngineTimeout, EngineUnavailable

__all__ = ["OpenAIEngine"]

logger = logging.getLogger(__name__)


class OpenAIEngine:
    def __init__(self, base_url: str, *, config: EngineConfig | None = None) -> None:
        config = config or EngineConfig()
        self._base = base_url.rstrip("/").removesuffix("/v1")
        self._config = config
        self._model = config.served_model_name
        self._gate = asyncio.Semaphore(config.max_concurrency)
        self._client: httpx.AsyncClient | None = None

    @property
    def name(self) -> str:
        return f"openai:{self._base}"

    @property
    def model(self) -> str:
        return self._model or "unknown"

    def _http(self) -> httpx.AsyncClient:
        if self._client is None:
            limits = httpx.Limits(
                max_connections=self._config.max_concurrency,
                max_keepalive_connections=self._config.max_concurrency,
            )
            timeout = httpx.Timeout(self._config.timeout_s, connect=5.0)
            self._client = httpx.AsyncClient(base_url=self._base, limits=limits, timeout=timeout)
        return self._client

    async def start(self) -> None:
        """Discover the served model name (unless configured). A server that is down is not fatal here:
        requests fail with ``EngineUnavailable`` and are retried, so the worker can start first."""
        if self._model is None:
            try:
                await self._discover()
            except EngineUnavailable as exc:
                logger.warning(
                    'model discovery failed, will retry on first request url="%s" error="%s"', self._base, exc
                )

    async def _discover(self) -> str:
        data = await self._get_json("/v1/models")
        try:
            self._model = str(data["data"][0]["id"])
        except (KeyError, IndexError, TypeError) as exc:
            raise EngineUnavailable(f"{self._base}/v1/models lists no model") from exc
        logger.info('discovered model model="%s" url="%s"', self._model, self._base)
        return self._model

    async def _get_json(self, path: str) -> Any:
        try:
            response = await self._http().get(path)
        except httpx.TimeoutException as exc:
            raise EngineTimeout(f"GET {path} timed out") from exc
        except httpx.TransportError as exc:
            raise EngineUnavailable(f"cannot reach {self._base}: {exc!r}") from exc
        _raise_for_status(response)
        return response.json()

    async def ready(self) -> bool:
        try:
            response = await self._http().get("/health", timeout=2.0)
        except httpx.HTTPError:
            return False
        return response.status_code == 200

    async def generate(self, prompt: str, options: GenerateOptions) -> Generation:
        model = self._model or await self._discover()
        body: dict[str, Any] = {
            "model": model,
            "prompt": prompt,
            "max_tokens": options.max_tokens,
            "temperature": options.temperature,
            "top_p": options.top_p,
        }
        if repetition := options.repetition_detection():
            body["repetition_detection"] = repetition
        if options.priority:
            body["priority"] = options.priority  # needs vLLM's --scheduling-policy priority
        async with self._gate:
            started = time.perf_counter()
            try:
                response = await self._http().post(
                    "/v1/completions",
                    content=orjson.dumps(body),
                    headers={"content-type": "application/json"},
                )
            except httpx.TimeoutException as exc:
                raise EngineTimeout(
                    f"no answer from {self._base} within {self._config.timeout_s:g}s"
                ) from exc
            except httpx.TransportError as exc:
                raise EngineUnavailable(f"cannot reach {self._base}: {exc!r}") from exc
        _raise_for_status(response)
        try:
            data = orjson.loads(response.content)
            choice = data["choices"][0]
            usage = data.get("usage") or {}
            text = str(choice["text"])
        except (orjson.JSONDecodeError, KeyError, IndexError, TypeError) as exc:
            raise EngineUnavailable(f"unexpected completion response: {response.text[:200]}") from exc
        return Generation(
            text=text,
            model=str(data.get("model") or model),
            prompt_tokens=usage.get("prompt_tokens"),
            completion_tokens=usage.get("completion_tokens"),
            finish_reason=choice.get("finish_reason"),
            latency_s=time.perf_counter() - started,
        )

    async def aclose(self) -> None:
        client, self._client = self._client, None
        if client is not None:
            await client.aclose()


def _raise_for_status(response: httpx.Response) -> None:
    status = response.status_code
    if status < 400:
        return
    detail = response.text[:300]
    if status == 429:
        try:
            retry_after: float | None = float(response.headers.get("retry-after", ""))
        except ValueError:
            retry_after = None
        raise EngineOverloaded(f"server overloaded: {detail}", retry_after)
    if status >= 500:
        raise EngineUnavailable(f"server error {status}: {detail}")
    raise EngineRejected(f"request rejected ({status}): {detail}")
