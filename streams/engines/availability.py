"""Engine availability: an outage pauses the worker instead of turning into verdicts.

When a request fails in a way that may mean the engine itself is down
(connection refused, 5xx, a timeout), :meth:`EngineGate.report_failure` asks
the engine's health probe. If the engine is healthy the failure belongs to that
one request (the caller counts it as an attempt). If not, the gate *closes*:
callers wait in :meth:`wait_open` without spending attempts, the agent stops
taking new events, ``/readyz`` and ``guardstream_engine_up`` say so, and a
background probe (backing off from ``probe_interval_s`` to
``probe_max_interval_s``) reopens the gate as soon as the engine answers.

``max_delay_s`` (``GUARDSTREAM_POLICY_OUTAGE_MAX_DELAY_S``, 0 = no limit) caps
how long an outage may hold events: past it, waiting callers get the error and
the fail policy decides.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable

from streams import metrics
from streams.engines.base import GuardEngine

__all__ = ["EngineGate"]

logger = logging.getLogger(__name__)

_PROBE_TIMEOUT_S = 5.0


class EngineGate:
    def __init__(
        self,
        engine: GuardEngine,
        *,
        probe_interval_s: float = 1.0,
        probe_max_interval_s: float = 15.0,
        max_delay_s: float = 0.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._engine = engine
        self._interval = (probe_interval_s, max(probe_interval_s, probe_max_interval_s))
        self._max_delay_s = max_delay_s
        self._clock = clock
        self._open = asyncio.Event()
        self._open.set()
        self._down_since: float | None = None
        self._check: asyncio.Task[bool] | None = None
        self._prober: asyncio.Task[None] | None = None
        metrics.ENGINE_UP.set(1)

    @property
    def is_open(self) -> bool:
        return self._open.is_set()

    def outage_s(self) -> float:
        """How long the current outage has lasted (0 when the engine is up)."""
        return 0.0 if self._down_since is None else self._clock() - self._down_since

    def expired(self) -> bool:
        """The outage has lasted longer than ``max_delay_s`` (never, when that is 0)."""
        return self._max_delay_s > 0 and self.outage_s() >= self._max_delay_s

    async def wait_open(self) -> bool:
        """Until the engine is up (True) or the outage outlasted ``max_delay_s`` (False)."""
        if self._open.is_set():
            return True
        if self._max_delay_s <= 0:
            await self._open.wait()
            return True
        remaining = self._max_delay_s - self.outage_s()
        if remaining > 0:
            try:
                await asyncio.wait_for(self._open.wait(), remaining)
            except TimeoutError:
                pass
        return self._open.is_set()

    async def report_failure(self, error: BaseException) -> bool:
        """After a request failed with ``error``: True when the engine is down (wait, then retry)."""
        if not self._open.is_set():
            return True
        if self._check is None or self._check.done():  # one probe for a burst of failures
            self._check = asyncio.create_task(self._healthy())
        healthy = await asyncio.shield(self._check)
        if healthy:
            return False
        self._close(error)
        return True

    async def _healthy(self) -> bool:
        try:
            return bool(await asyncio.wait_for(self._engine.ready(), _PROBE_TIMEOUT_S))
        except asyncio.CancelledError:
            raise
        except Exception:
            return False

    def _close(self, error: BaseException) -> None:
        if not self._open.is_set():
            return
        self._open.clear()
        self._down_since = self._clock()
        metrics.ENGINE_UP.set(0)
        metrics.ENGINE_OUTAGES.inc()
        logger.warning('engine unavailable, pausing engine="%s" error="%s"', self._engine.name, error)
        self._prober = asyncio.create_task(self._probe(), name="engine-probe")

    async def _probe(self) -> None:
        delay = self._interval[0]
        while True:
            await asyncio.sleep(delay)
            if await self._healthy():
                break
            delay = min(delay * 2, self._interval[1])
        logger.info(
            'engine available again, resuming engine="%s" outage_s=%.1f', self._engine.name, self.outage_s()
        )
        self._down_since = None
        metrics.ENGINE_UP.set(1)
        self._open.set()

    async def aclose(self) -> None:
        for task in (self._prober, self._check):
            if task is not None and not task.done():
                task.cancel()
                await asyncio.gather(task, return_exceptions=True)
