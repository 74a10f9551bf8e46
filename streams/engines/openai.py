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
        self._context: int | None = None
        self._tokenize_endpoint = True  # vLLM's /tokenize; other servers may lack it

    @property
    def name(self) -> str:
        return f"openai:{self._base}"

    @property
    def model(self) -> str:
        return self._model or "unknown"

    @property
    def context_tokens(self) -> int | None:
        """The server's ``max_model_len`` (from ``/v1/models``), else ``GUARDSTREAM_ENGINE_MAX_MODEL_LEN``."""
        return self._context or self._config.max_model_len

    async def count_tokens(self, text: str) -> int:
        """vLLM's ``/tokenize``; without it, the UTF-8 length + 2, a safe upper bound for
        byte-level BPE tokenizers such as Llama 3's (every token is at least one byte)."""
        if self._tokenize_endpoint:
            try:
                response = await self._http().post(
                    "/tokenize",
                    content=orjson.dumps({"model": self.model, "prompt": text}),
                    headers={"content-type": "application/json"},
                )
            except httpx.HTTPError as exc:
                raise EngineUnavailable(f"cannot reach {self._base}: {exc!r}") from exc
            if response.status_code == 404:
                self._tokenize_endpoint = False
            else:
                _raise_for_status(response)
                return int(orjson.loads(response.content)["count"])
        return len(text.encode("utf-8", errors="surrogatepass")) + 2

    def _http(self) -> httpx.AsyncClient:
        if self._client is None:
            limits = httpx.Limits(
                max_connections=self._config.max_concurrency,
                max_keepalive_connections=self._config.max_concurrency,
            )
            # The per-attempt timeout is applied around each request (after the concurrency
            # gate); httpx's own is a backstop.
            timeout = httpx.Timeout(self._config.timeout_s + 10.0, connect=5.0)
            key = self._config.api_key  # vLLM's --api-key; the header is never logged
            headers = {"authorization": f"Bearer {key.reveal()}"} if key else None
            self._client = httpx.AsyncClient(
                base_url=self._base, limits=limits, timeout=timeout, headers=headers
            )
        return self._client

    async def start(self) -> None:
        """Discover the served model name (unless configured) and its context length. A server that
        is down is not fatal here: the worker starts, and waits for the engine like in an outage."""
        try:
            await self._discover()
        except (EngineUnavailable, EngineTimeout, EngineRejected) as exc:
            logger.warning('model discovery failed url="%s" error="%s"', self._base, exc)

    async def _discover(self) -> str:
        data = await self._get_json("/v1/models")
        try:
            entry = data["data"][0]
            served = str(entry["id"])
        except (KeyError, IndexError, TypeError) as exc:
            raise EngineUnavailable(f"{self._base}/v1/models lists no model") from exc
        self._model = self._model or served
        limit = entry.get("max_model_len") if isinstance(entry, dict) else None
        self._context = min(int(limit), self._config.max_model_len) if limit else self._config.max_model_len
        logger.info(
            'discovered model model="%s" url="%s" max_model_len=%d', self._model, self._base, self._context
        )
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
        """``/health`` (the engine lives) and ``/v1/models`` (vLLM checks the API key only on
        ``/v1`` routes: a missing or wrong key is an outage, not a failure of each event)."""
        try:
            response = await self._http().get("/health", timeout=2.0)
            if response.status_code == 200:
                response = await self._http().get("/v1/models", timeout=2.0)
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
        if options.stop:
            body["stop"] = list(options.stop)
            body["include_stop_str_in_output"] = True  # vLLM's extension: the text ends with it
        async with self._gate:  # the timeout starts once the request leaves this queue
            started = time.perf_counter()
            try:
                async with asyncio.timeout(options.timeout_s):
                    response = await self._http().post(
                        "/v1/completions",
                        content=orjson.dumps(body),
                        headers={"content-type": "application/json"},
                    )
            except (TimeoutError, httpx.TimeoutException) as exc:
                raise EngineTimeout(f"no answer from {self._base} within {options.timeout_s:g}s") from exc
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
            stop_reason=choice.get("stop_reason") if isinstance(choice.get("stop_reason"), str) else None,
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
    if status in {401, 403}:  # the engine is unusable until the key is fixed: the gate pauses
        raise EngineUnavailable(f"server refused the API key ({status}): check GUARDSTREAM_ENGINE_API_KEY")
    if status == 429:
        try:
            retry_after: float | None = float(response.headers.get("retry-after", ""))
        except ValueError:
            retry_after = None
        raise EngineOverloaded(f"server overloaded: {detail}", retry_after)
    if status >= 500:
        raise EngineUnavailable(f"server error {status}: {detail}")
    raise EngineRejected(f"request rejected ({status}): {detail}")
