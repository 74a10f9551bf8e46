"""The real engines on CPU with the project's tiny fixture model: in-process vLLM, a vLLM
OpenAI-compatible server, transformers; and vLLM through the whole pipeline.

The fixture model is a format fixture, not a classifier: these tests check that real
generated text arrives, parses as GuardReasoner output, and flows through Kafka.
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import httpx
import pytest

from streams.broker import free_port
from streams.config import EngineConfig, RetryConfig
from streams.engines.base import GenerateOptions, Generation, GuardEngine
from streams.engines.openai import OpenAIEngine
from streams.engines.transformers import TransformersEngine
from streams.engines.vllm import VllmEngine
from streams.parse import ParseStatus, parse
from streams.prompt import build_prompt

from .conftest import SettingsFactory, WorkerFactory, collect, make_events, send

pytestmark = [pytest.mark.integration, pytest.mark.vllm]

ROOT = Path(__file__).resolve().parents[2]
PROMPTS = [
    build_prompt("How do I bake sourdough bread at home?", None),
    build_prompt("how to make a bomb in my garage", "I can't help with that."),
    build_prompt("What is the capital of France?", "The capital of France is Paris."),
    build_prompt("write a poem about the sea", None),
]
OPTIONS = GenerateOptions(max_tokens=400)


def vllm_env() -> dict[str, str]:
    return {
        "VLLM_CPU_KVCACHE_SPACE": "1",
        "VLLM_CPU_NUM_OF_RESERVED_CPU": "0",
        "VLLM_ENABLE_V1_MULTIPROCESSING": "0",
        "VLLM_CACHE_ROOT": str(ROOT / ".cache" / "vllm"),
        "VLLM_LOGGING_LEVEL": "WARNING",
    }


@pytest.fixture(autouse=True, scope="module")
def _vllm_process_env() -> Iterator[None]:
    saved = {k: os.environ.get(k) for k in vllm_env()}
    os.environ.update(vllm_env())
    yield
    for key, value in saved.items():
        if value is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = value


def engine_config(model: Path, **changes: object) -> EngineConfig:
    return replace(
        EngineConfig(
            spec=f"vllm:{model}", max_tokens=400, max_model_len=2048, enforce_eager=True, timeout_s=60
        ),
        **changes,  # type: ignore[arg-type]
    )


def assert_guardreasoner_format(result: Generation) -> None:
    assert result.text.strip(), "no text generated"
    parsed = parse(result.text, truncated=result.truncated)
    assert parsed.answers.found_block, result.text[-400:]
    assert parsed.answers.request is not None, result.text[-400:]
    assert parsed.status(has_response=False) is ParseStatus.OK
    assert result.completion_tokens and result.completion_tokens > 10
    assert result.prompt_tokens and result.prompt_tokens > 50


def generate_all(engine: GuardEngine, options: GenerateOptions = OPTIONS) -> list[Generation]:
    """Start the engine, check it is ready, generate for every prompt concurrently, close it."""

    async def run() -> list[Generation]:
        await engine.start()
        try:
            assert await engine.ready()
            return list(await asyncio.gather(*(engine.generate(p, options) for p in PROMPTS)))
        finally:
            await engine.aclose()

    return asyncio.run(run())


def test_in_process_vllm_engine(fixture_model: Path) -> None:
    results = generate_all(VllmEngine(str(fixture_model), config=engine_config(fixture_model)))
    for result in results:
        assert_guardreasoner_format(result)
        assert result.finish_reason == "stop"
        assert result.model == fixture_model.name


def test_vllm_stops_a_repetition_loop_and_the_verdict_says_runaway(fixture_model: Path) -> None:
    """With a hair-trigger repetition setting the fixture's first blank lines count as a loop."""
    from streams.event import ChatEvent
    from streams.pipeline import ModerationPolicy, to_verdict

    loop_options = replace(OPTIONS, repetition_max_pattern=64, repetition_min_count=2)
    result = generate_all(VllmEngine(str(fixture_model), config=engine_config(fixture_model)), loop_options)[
        0
    ]
    assert result.finish_reason == "repetition"
    assert result.completion_tokens is not None and result.completion_tokens < OPTIONS.max_tokens
    verdict = to_verdict(
        ChatEvent("r1", "c", "u", 0.0, "hi"), result, engine="vllm", policy=ModerationPolicy()
    )
    assert verdict.status is ParseStatus.RUNAWAY
    assert verdict.outcome.value == "unparsed"


def test_transformers_engine(fixture_model: Path) -> None:
    for result in generate_all(TransformersEngine(str(fixture_model), config=engine_config(fixture_model))):
        assert_guardreasoner_format(result)
        assert result.finish_reason == "stop"


class VllmServer:
    """``python -m vllm.entrypoints.openai.api_server`` on a free port, in its own process group."""

    def __init__(self, model: Path, log: Path, port: int | None = None) -> None:
        self.model = model
        self.port = port or free_port()
        self.log = log
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, timeout_s: float = 180) -> VllmServer:
        with self.log.open("ab") as out:
            self.proc = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "vllm.entrypoints.openai.api_server",
                    "--model",
                    str(self.model),
                    "--served-model-name",
                    "guard-fixture",
                    "--host",
                    "127.0.0.1",
                    "--port",
                    str(self.port),
                    "--max-model-len",
                    "2048",
                    "--enforce-eager",
                    "--block-size",
                    "32",
                    "--disable-log-stats",
                ],
                stdout=out,
                stderr=subprocess.STDOUT,
                env={**os.environ, **vllm_env()},
                start_new_session=True,
            )
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            assert self.proc.poll() is None, self.log.read_text()[-3000:]
            try:
                if httpx.get(f"{self.url}/health", timeout=1).status_code == 200:
                    return self
            except httpx.HTTPError:
                pass
            time.sleep(0.5)
        raise TimeoutError(self.log.read_text()[-3000:])

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait()


@pytest.fixture
def vllm_server(fixture_model: Path, tmp_path: Path) -> Iterator[VllmServer]:
    server = VllmServer(fixture_model, tmp_path / "vllm-server.log").start()
    yield server
    server.kill()


def test_openai_engine_against_a_vllm_server(fixture_model: Path, vllm_server: VllmServer) -> None:
    engine = OpenAIEngine(vllm_server.url, config=engine_config(fixture_model))
    results = generate_all(engine)
    assert engine.model == "guard-fixture"  # discovered from /v1/models
    for result in results:
        assert_guardreasoner_format(result)
        assert result.finish_reason == "stop"
        assert result.model == "guard-fixture"


def test_pipeline_with_in_process_vllm(
    fixture_model: Path, settings_factory: SettingsFactory, worker_factory: WorkerFactory
) -> None:
    settings = settings_factory(engine=f"vllm:{fixture_model}")
    settings = replace(settings, engine=engine_config(fixture_model))
    worker_factory(settings, timeout_s=240, **vllm_env())
    events = make_events(6, prefix="v", request="How do I grow tomatoes?")
    send(settings, events)
    archive = collect(settings, settings.topics.archive, count=len(events), timeout_s=240)
    assert {r["value"]["event_id"] for r in archive} == {e.id for e in events}
    for record in archive:
        verdict = record["value"]
        assert verdict["status"] == "ok", verdict["raw"][-300:]
        assert verdict["outcome"] in {"harmful", "unharmful"}
        assert verdict["raw"] and verdict["reasoning"]
        assert verdict["model"] == fixture_model.name
        assert verdict["engine"] == f"vllm:{fixture_model}"
        assert verdict["usage"]["completion_tokens"] > 10
        assert verdict["finish_reason"] == "stop"


def test_vllm_server_killed_mid_stream_is_waited_for_then_moderation_resumes(
    fixture_model: Path,
    vllm_server: VllmServer,
    settings_factory: SettingsFactory,
    worker_factory: WorkerFactory,
) -> None:
    settings = settings_factory(
        engine=f"openai:{vllm_server.url}",
        retry=RetryConfig(attempts=3, backoff_initial_s=0.2, backoff_max_s=0.5),
    )
    settings = replace(
        settings, engine=replace(engine_config(fixture_model), spec=f"openai:{vllm_server.url}")
    )
    worker_factory(settings)

    before = make_events(4, prefix="before", request="Tell me about rivers.")
    send(settings, before)
    archive = collect(settings, settings.topics.archive, count=len(before), timeout_s=120)
    assert {r["value"]["outcome"] for r in archive} <= {"harmful", "unharmful"}

    during = make_events(8, prefix="during", request="Tell me about mountains.")
    send(settings, during)
    vllm_server.kill()  # mid-stream: some requests are in flight, the rest find no server
    down = make_events(3, prefix="down", request="Tell me about lakes.")
    send(settings, down)
    time.sleep(3)  # an outage: the worker waits, it does not invent verdicts

    restarted = VllmServer(fixture_model, vllm_server.log, port=vllm_server.port).start()  # same address
    vllm_server.proc = restarted.proc  # the fixture stops it
    after = make_events(3, prefix="after", request="Tell me about forests.")
    send(settings, after)
    expected = {e.id for e in before + during + down + after}
    seen: dict[str, dict[str, object]] = {}
    deadline = time.monotonic() + 240
    while not expected <= seen.keys() and time.monotonic() < deadline:
        for record in collect(settings, settings.topics.archive, idle_s=3, timeout_s=240):
            seen[record["value"]["event_id"]] = record["value"]
    assert expected <= seen.keys()  # no event without a verdict
    for event_id in expected:
        assert seen[event_id]["outcome"] in {"harmful", "unharmful", "unparsed"}, seen[event_id]


def test_vllm_engine_context_windows_timeout_and_early_exit(fixture_model: Path) -> None:
    """Asked for more context than the model has, the engine uses the model's own limit (no
    traceback); input longer than that is moderated in windows with the real tokenizer; a
    request past its timeout is aborted and the engine keeps serving; early exit stops
    prompt-only generations at Task 2 and, continued or not, decides as the full output does."""
    from streams.errors import EngineTimeout
    from streams.event import ChatEvent
    from streams.pipeline import ModerationPolicy, moderate_one

    engine = VllmEngine(str(fixture_model), config=engine_config(fixture_model, max_model_len=8192))
    long_request = " ".join(f"sentence {i} about gardening and tomatoes." for i in range(700))
    policy = replace(ModerationPolicy(options=OPTIONS), window_overlap_tokens=32)

    async def run() -> None:
        await engine.start()
        try:
            assert engine.context_tokens == 2048  # the fixture's max_position_embeddings
            tokens = await engine.count_tokens(build_prompt(long_request, None))
            assert tokens > 2048
            verdict = await moderate_one(ChatEvent("w1", "c", "u", time.time(), long_request), engine, policy)
            assert len(verdict.windows) >= 2, verdict
            assert verdict.outcome.value != "engine_error", verdict.error
            assert all(w["outcome"] != "engine_error" for w in verdict.windows), verdict.windows
            spans = [tuple(w["request_span"]) for w in verdict.windows]
            assert spans[0][0] == 0 and spans[-1][1] == len(long_request)
            assert all(a[1] > b[0] for a, b in zip(spans, spans[1:], strict=False))  # they overlap
            with pytest.raises(EngineTimeout):
                await engine.generate(PROMPTS[0], replace(OPTIONS, timeout_s=0.001))
            assert_guardreasoner_format(await engine.generate(PROMPTS[0], OPTIONS))
            requests = [f"How do I {verb} my garden in spring?" for verb in ("water", "plan", "dig", "fence")]
            events = [ChatEvent(f"p{i}", "c", "u", time.time(), r) for i, r in enumerate(requests)]
            for event in events:
                full = await moderate_one(event, engine, replace(policy, early_exit=False))
                early = await moderate_one(event, engine, replace(policy, early_exit=True))
                assert early.request is full.request, (early.raw, full.raw)
                assert early.status is ParseStatus.OK
                if early.early_exit:
                    assert "Task 2" not in early.raw and full.raw.startswith(early.raw)
                    assert early.completion_tokens is not None and full.completion_tokens is not None
                    assert early.completion_tokens < full.completion_tokens
                else:  # continued from prompt + prefix: the same text one generation writes
                    assert early.raw == full.raw
        finally:
            await engine.aclose()

    asyncio.run(run())
