"""``openai:URL1,URL2``: least-loaded balancing over several servers, failover when one is down."""

from __future__ import annotations

import asyncio

import pytest

from streams.config import EngineConfig
from streams.engines import create_engine
from streams.engines.balanced import BalancedEngine
from streams.engines.base import GenerateOptions
from streams.engines.fake import FakeEngine
from streams.engines.openai import OpenAIEngine
from streams.errors import ConfigError, EngineTimeout, EngineUnavailable


class _Server(FakeEngine):
    """A FakeEngine standing for one server: can be down, times out on request."""

    def __init__(self, name: str, *, delay_s: float = 0.0) -> None:
        super().__init__(delay_s=delay_s, model="guard")
        self.label = name
        self.down = False
        self.timeout = False
        self.calls = 0

    @property
    def name(self) -> str:
        return f"openai:http://{self.label}"

    async def generate(self, prompt: str, options: GenerateOptions):  # type: ignore[no-untyped-def]
        self.calls += 1
        if self.down:
            raise EngineUnavailable(f"{self.label} refused the connection")
        if self.timeout:
            raise EngineTimeout(f"{self.label} timed out")
        return await super().generate(prompt, options)

    async def ready(self) -> bool:
        return not self.down


def test_spec_with_several_urls_builds_a_balanced_engine() -> None:
    engine = create_engine(EngineConfig(spec="openai:http://a:8000, http://b:8000/v1"))
    assert isinstance(engine, BalancedEngine)
    assert engine.name == "openai:http://a:8000,http://b:8000"
    assert isinstance(create_engine(EngineConfig(spec="openai:http://a:8000")), OpenAIEngine)
    with pytest.raises(ConfigError):
        BalancedEngine([])


def test_requests_go_to_the_server_with_fewest_in_flight() -> None:
    slow, fast = _Server("slow", delay_s=0.2), _Server("fast", delay_s=0.01)
    engine = BalancedEngine([slow, fast])

    async def run() -> None:
        await asyncio.gather(*(engine.generate(f"p{i}", GenerateOptions()) for i in range(2)))
        # one each while both are idle; then a stream of requests while the slow one is busy
        first = asyncio.create_task(engine.generate("long", GenerateOptions()))
        await asyncio.sleep(0)
        for i in range(10):
            await engine.generate(f"q{i}", GenerateOptions())
        await first

    asyncio.run(run())
    assert slow.calls == 2 and fast.calls == 11
    assert engine.served() == [2, 11]


def test_idle_servers_share_the_load_evenly() -> None:
    servers = [_Server(n) for n in "abc"]
    engine = BalancedEngine(servers)

    async def run() -> None:
        for i in range(30):
            await engine.generate(f"p{i}", GenerateOptions())

    asyncio.run(run())
    assert [s.calls for s in servers] == [10, 10, 10]


def test_a_down_server_is_skipped_at_once_and_again_after_its_cooldown() -> None:
    a, b = _Server("a"), _Server("b")
    now = [0.0]
    engine = BalancedEngine([a, b], cooldown_s=5.0, clock=lambda: now[0])
    a.down = True

    async def run(n: int) -> None:
        for i in range(n):
            generation = await engine.generate(f"p{i}", GenerateOptions())
            assert generation.text

    asyncio.run(run(6))
    assert a.calls == 1 and b.calls == 6  # a failed once, the request went to b, a was then skipped
    assert asyncio.run(engine.ready())
    a.down = False
    now[0] = 6.0  # cooldown over: a gets traffic again
    asyncio.run(run(4))
    assert a.calls >= 3


def test_all_servers_down_is_an_outage_and_timeouts_are_not_failed_over() -> None:
    a, b = _Server("a"), _Server("b")
    engine = BalancedEngine([a, b])
    a.down = b.down = True
    with pytest.raises(EngineUnavailable, match="every server"):
        asyncio.run(engine.generate("p", GenerateOptions()))
    assert not asyncio.run(engine.ready())
    a.down = b.down = False
    a.timeout = b.timeout = True
    with pytest.raises(EngineTimeout):
        asyncio.run(engine.generate("p", GenerateOptions()))
    assert a.calls + b.calls == 3  # 2 while down, 1 timeout (not retried elsewhere)
