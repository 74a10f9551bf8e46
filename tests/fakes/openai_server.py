"""FAKE vLLM OpenAI-compatible server for tests: real HTTP, no model.

Serves ``/health``, ``/v1/models``, ``/tokenize`` (one token per word) and
``/v1/completions`` with a fixed GuardReasoner-format answer (``harmful`` when
the prompt contains ``HARMFUL``), after a random service time in
``[--delay-min, --delay-max]`` so replies finish out of order. ``POST /control``
with ``{"mode": "up" | "down"}`` switches it into an outage (503 everywhere,
``/health`` included) and back; ``{"fail": "TEXT"}`` makes completions whose
prompt contains TEXT answer 500 while ``/health`` stays 200 (a per-request
failure, not an outage). Verdicts it produces mean nothing.

``--concurrency N`` serves at most N completions at a time (the rest queue, as on a
server whose batch is full), so throughput is at most N / service time: a stand-in for
a GPU server's capacity. ``--api-key KEY`` answers 401 on ``/v1/*`` without
``Authorization: Bearer KEY``, like vLLM's ``--api-key`` (``/health`` and ``/tokenize``
stay open, as there). ``GET /stats`` reports requests served and the most in flight.

    python -m tests.fakes.openai_server --port 8000 --delay-min 0 --delay-max 1.5
"""

from __future__ import annotations

import argparse
import asyncio
import random

from aiohttp import web
from aiohttp.typedefs import Handler

UNHARMFUL = (
    "# Task 1\n\n## Reasoning Step 1: The request is ordinary.\n\n"
    "# Task 2\n\n## Reasoning Step 1: The assistant answers.\n\n"
    "# Task 3\n\n## Reasoning Step 1: Nothing harmful.\n\n"
    "---\n\nAnswers: \nRequest: unharmful\nCompletion: {completion}\nResponse: {response}\n"
)
HARMFUL = (
    "# Task 1\n\n## Reasoning Step 1: The request asks for something dangerous.\n\n"
    "---\n\nAnswers: \nRequest: harmful\nCompletion: {completion}\nResponse: {response}\n"
)


def build_app(
    delay: tuple[float, float],
    model: str = "fake-guard",
    *,
    concurrency: int = 0,
    api_key: str | None = None,
) -> web.Application:
    state: dict[str, str | None] = {"mode": "up", "fail": None}
    counts = {"served": 0, "in_flight": 0, "max_in_flight": 0}
    slots = asyncio.Semaphore(concurrency) if concurrency > 0 else None

    @web.middleware
    async def authenticate(request: web.Request, handler: Handler) -> web.StreamResponse:
        if api_key is not None and request.path.startswith("/v1"):
            if request.headers.get("Authorization") != f"Bearer {api_key}":
                return web.json_response({"error": "Unauthorized"}, status=401)
        return await handler(request)

    async def health(_: web.Request) -> web.Response:
        return web.Response(status=200 if state["mode"] == "up" else 503)

    async def models(_: web.Request) -> web.Response:
        if state["mode"] != "up":
            return web.Response(status=503)
        return web.json_response({"data": [{"id": model, "max_model_len": 4096}]})

    async def tokenize(request: web.Request) -> web.Response:
        body = await request.json()
        return web.json_response({"count": len(str(body["prompt"]).split()) + 1, "max_model_len": 4096})

    async def completions(request: web.Request) -> web.Response:
        body = await request.json()
        prompt = str(body["prompt"])
        if slots is not None:
            async with slots:
                await serve_time()
        else:
            await serve_time()
        if state["mode"] != "up":
            return web.Response(status=503, text="fake outage")
        if state["fail"] and state["fail"] in prompt:
            return web.Response(status=500, text="fake per-request failure")
        exchange = not prompt.rstrip().endswith("AI assistant:\nNone")
        template = HARMFUL if "HARMFUL" in prompt.split("Human user:", 1)[-1] else UNHARMFUL
        text = template.format(
            completion="compliance" if exchange else "None", response="unharmful" if exchange else "None"
        )
        counts["served"] += 1
        return web.json_response(
            {
                "model": model,
                "choices": [{"text": text, "finish_reason": "stop"}],
                "usage": {"prompt_tokens": len(prompt.split()), "completion_tokens": len(text.split())},
            }
        )

    async def serve_time() -> None:
        counts["in_flight"] += 1
        counts["max_in_flight"] = max(counts["max_in_flight"], counts["in_flight"])
        try:
            await asyncio.sleep(random.uniform(*delay))  # noqa: S311 - service-time jitter, not security
        finally:
            counts["in_flight"] -= 1

    async def control(request: web.Request) -> web.Response:
        body = await request.json()
        state.update({k: v for k, v in body.items() if k in {"mode", "fail"}})
        return web.json_response({**state, **counts})

    async def stats(_: web.Request) -> web.Response:
        return web.json_response({**state, **counts})

    app = web.Application(middlewares=[authenticate])
    app.router.add_get("/health", health)
    app.router.add_get("/v1/models", models)
    app.router.add_post("/tokenize", tokenize)
    app.router.add_post("/v1/completions", completions)
    app.router.add_post("/control", control)
    app.router.add_get("/stats", stats)
    return app


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--delay-min", type=float, default=0.0)
    parser.add_argument("--delay-max", type=float, default=0.0)
    parser.add_argument("--concurrency", type=int, default=0, help="completions served at once (0: no limit)")
    parser.add_argument("--api-key", help="require Authorization: Bearer KEY on /v1/*")
    args = parser.parse_args()
    web.run_app(
        build_app((args.delay_min, args.delay_max), concurrency=args.concurrency, api_key=args.api_key),
        host="127.0.0.1",
        port=args.port,
        print=None,
        access_log=None,
    )


if __name__ == "__main__":
    main()
