"""FAKE vLLM OpenAI-compatible server for tests: real HTTP, no model.

Serves ``/health``, ``/v1/models``, ``/tokenize`` (one token per word) and
``/v1/completions`` with a fixed GuardReasoner-format answer (``harmful`` when
the prompt contains ``HARMFUL``), after a random service time in
``[--delay-min, --delay-max]`` so replies finish out of order. ``POST /control``
with ``{"mode": "up" | "down"}`` switches it into an outage (503 everywhere,
``/health`` included) and back; ``{"fail": "TEXT"}`` makes completions whose
prompt contains TEXT answer 500 while ``/health`` stays 200 (a per-request
failure, not an outage). Verdicts it produces mean nothing.

    python -m tests.fakes.openai_server --port 8000 --delay-min 0 --delay-max 1.5
"""

from __future__ import annotations

import argparse
import asyncio
import random

from aiohttp import web

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


def build_app(delay: tuple[float, float], model: str = "fake-guard") -> web.Application:
    state = {"mode": "up", "fail": None, "served": 0}

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
        await asyncio.sleep(random.uniform(*delay))  # noqa: S311 - service-time jitter, not security
        if state["mode"] != "up":
            return web.Response(status=503, text="fake outage")
        if state["fail"] and state["fail"] in prompt:
            return web.Response(status=500, text="fake per-request failure")
        exchange = not prompt.rstrip().endswith("AI assistant:\nNone")
        template = HARMFUL if "HARMFUL" in prompt.split("Human user:", 1)[-1] else UNHARMFUL
        text = template.format(
            completion="compliance" if exchange else "None", response="unharmful" if exchange else "None"
        )
        state["served"] = int(state["served"] or 0) + 1
        return web.json_response(
            {
                "model": model,
                "choices": [{"text": text, "finish_reason": "stop"}],
                "usage": {"prompt_tokens": len(prompt.split()), "completion_tokens": len(text.split())},
            }
        )

    async def control(request: web.Request) -> web.Response:
        body = await request.json()
        state.update({k: v for k, v in body.items() if k in {"mode", "fail"}})
        return web.json_response(state)

    async def stats(_: web.Request) -> web.Response:
        return web.json_response(state)

    app = web.Application()
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
    args = parser.parse_args()
    web.run_app(
        build_app((args.delay_min, args.delay_max)),
        host="127.0.0.1",
        port=args.port,
        print=None,
        access_log=None,
    )


if __name__ == "__main__":
    main()
