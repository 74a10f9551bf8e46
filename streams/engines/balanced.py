"""Several vLLM servers behind one ``openai:`` engine: ``openai:http://a:8000,http://b:8000``.

For deployments with no load balancer in front of the servers (hosts, VMs, compose).
Each request goes to the server with the fewest requests in flight from this worker
(ties: round robin): LLM requests vary a lot in length, so counting what is in flight
balances better than counting requests or connections. A server that fails a request
in a way that means it is down (:class:`~streams.errors.EngineUnavailable`: refused
connection, 5xx, a refused API key) is skipped for ``cooldown_s`` and the request goes
to another server at once, without spending an attempt; a timeout is not failed over
(the slow generation may still be running there). The engine is ready while any
server is; when every server is down the worker's engine gate pauses as for one server.
All servers must serve the same model (the first one's name is reported).
"""

from __future__ import annotations

import itertools
import logging
import time
from collections.abc import Callable, Sequence

from streams.engines.base import GenerateOptions, Generation, GuardEngine
from streams.errors import ConfigError, EngineUnavailable

__all__ = ["BalancedEngine"]

logger = logging.getLogger(__name__)


class _Backend:
    def __init__(self, engine: GuardEngine) -> None:
        self.engine = engine
        self.in_flight = 0
        self.down_until = 0.0
        self.served = 0


class BalancedEngine:
    def __init__(
        self,
        engines: Sequence[GuardEngine],
        *,
        cooldown_s: float = 5.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if not engines:
            raise ConfigError("a balanced engine needs at least one server")
        self._backends = [_Backend(e) for e in engines]
        self._cooldown_s = cooldown_s
        self._clock = clock
        self._turn = itertools.count()

    @property
    def name(self) -> str:
        kinds = [b.engine.name for b in self._backends]
        return f"openai:{','.join(k.removeprefix('openai:') for k in kinds)}"

    @property
    def model(self) -> str:
        return self._backends[0].engine.model

    @property
    def context_tokens(self) -> int | None:
        known = [c for b in self._backends if (c := b.engine.context_tokens) is not None]
        return min(known) if known else None

    def served(self) -> list[int]:
        """Requests each server answered (in the order given), for tests and benchmarks."""
        return [b.served for b in self._backends]

    def _pick(self, exclude: set[int]) -> int | None:
        now = self._clock()
        candidates = [i for i in range(len(self._backends)) if i not in exclude]
        if not candidates:
            return None
        up = [i for i in candidates if self._backends[i].down_until <= now] or candidates
        turn = next(self._turn)
        # fewest in flight; among equals, rotate so idle servers share the first requests
        return min(up, key=lambda i: (self._backends[i].in_flight, (i - turn) % len(self._backends)))

    async def start(self) -> None:
        for backend in self._backends:
            await backend.engine.start()
        models = {b.engine.model for b in self._backends} - {"unknown"}
        if len(models) > 1:
            logger.warning('servers report different models models="%s"', ",".join(sorted(models)))

    async def count_tokens(self, text: str) -> int:
        index = self._pick(set()) or 0  # never None: there is at least one backend
        return await self._backends[index].engine.count_tokens(text)

    async def generate(self, prompt: str, options: GenerateOptions) -> Generation:
        tried: set[int] = set()
        while True:
            index = self._pick(tried)
            if index is None:
                raise EngineUnavailable(f"every server of {self.name} failed this request")
            backend = self._backends[index]
            backend.in_flight += 1
            try:
                generation = await backend.engine.generate(prompt, options)
            except EngineUnavailable as exc:
                backend.down_until = self._clock() + self._cooldown_s
                tried.add(index)
                logger.warning('server down, next one server="%s" error="%s"', backend.engine.name, exc)
                continue
            finally:
                backend.in_flight -= 1
            backend.down_until = 0.0
            backend.served += 1
            return generation

    async def ready(self) -> bool:
        for backend in self._backends:
            if await backend.engine.ready():
                return True
        return False

    async def aclose(self) -> None:
        for backend in self._backends:
            await backend.engine.aclose()
