"""The review console in a real headless Chromium (Debian's ``chromium``, driven by Playwright).

Everything is real: recorded GuardReasoner outputs published to Kafka, the
store sink and the console as ``guardstream`` processes, the embedded
PostgreSQL, and the ``users add`` and ``export`` commands. The flow: log in,
filter to harmful, open a verdict, correct an answer, see the audit entry,
find the correction in the exported training data. Screenshots go to
``$SCREENSHOTS_DIR`` when set (that is how ``docs/screenshots/`` is made), else
to the test's temporary folder.
"""

from __future__ import annotations

import asyncio
import os
import re
import subprocess
import time
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import orjson
import pytest

from streams.broker import EmbeddedBroker, free_port, wait_for_port
from streams.config import Settings
from streams.eval import load_benchmark
from streams.export.training import prompt_input
from streams.process import WorkerProcess
from streams.topics import ensure_named_topics
from tests.cli import cli_env, run_cli

from .consoles import PASSWORD
from .pg import count, postgres, store_url, wait_until
from .test_store import produce, record_bytes, store_settings, trace_of, xstest_live_and_replay

pytestmark = pytest.mark.integration
__all__ = ["postgres", "store_url"]  # fixtures used here

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
ANSWERS = ("request", "completion", "response")


@pytest.fixture(scope="module")
def chromium() -> str:
    if not Path(CHROMIUM).exists():
        if os.environ.get("CI"):
            pytest.fail(f"{CHROMIUM} is missing: scripts/test installs Debian's chromium package")
        pytest.skip(f"needs Debian's chromium at {CHROMIUM} (apt-get install chromium; scripts/test does it)")
    return CHROMIUM


def guardstream(settings: Settings, *args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    proc = run_cli(*args, env=cli_env(settings), stdin=stdin, timeout=120)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return proc


@pytest.fixture
def shots(tmp_path: Path) -> Path:
    folder = Path(os.environ.get("SCREENSHOTS_DIR") or tmp_path / "screenshots")
    folder.mkdir(parents=True, exist_ok=True)
    return folder


@pytest.fixture
def services(
    shared: Path, broker: EmbeddedBroker, store_url: str, tmp_path: Path
) -> Iterator[tuple[Settings, dict[str, Any]]]:
    """Live 1B verdicts and a 3B replay of them in the store (through Kafka and the sink), a console."""
    base = Settings.from_env({}).for_embedded_broker().isolated("browser")
    settings = store_settings(
        replace(base, kafka=replace(base.kafka, bootstrap=broker.bootstrap, partitions=2)), store_url
    )
    settings = replace(settings, console=replace(settings.console, port=free_port()))
    bench = load_benchmark(shared / "benchmark" / "0_6_xstest_response_harmful.json")
    start = time.time() - 50 * 60  # spread over the last 50 minutes, as live traffic would be
    live, replays = xstest_live_and_replay(
        shared, "3b-audit", live_at=start, spacing_s=50 * 60 / len(bench.samples)
    )
    by_id = {r["event_id"]: r for r in live}
    replay_by_id = {r["event_id"]: r for r in replays}
    # the verdict the reviewer will correct: 1B said harmful, 3B read the exchange differently
    target = next(
        e
        for e in reversed(list(by_id))
        if by_id[e]["outcome"] == "harmful"
        and by_id[e]["status"] == "ok"
        and replay_by_id.get(e, {}).get("status") == "ok"
        and replay_by_id[e]["answers"] != by_id[e]["answers"]
    )
    asyncio.run(ensure_named_topics(settings.kafka, [settings.topics.archive, settings.topics.replay]))
    produce(settings.kafka.bootstrap, settings.topics.archive, record_bytes(live))
    produce(settings.kafka.bootstrap, settings.topics.replay, record_bytes(replays))
    guardstream(
        settings, "users", "add", "rita", "--role", "reviewer", "--password-stdin", stdin=PASSWORD + "\n"
    )

    store = WorkerProcess(settings, log_path=tmp_path / "store.log", args=("store",)).start()
    console = WorkerProcess(settings, log_path=tmp_path / "console.log", args=("console",)).start()
    try:
        wait_until(lambda: count(store_url) == len(live) + len(replays), timeout_s=90, what="store filled")
        wait_for_port("127.0.0.1", settings.console.port, 60)
        yield settings, {"live": by_id, "replays": replay_by_id, "target": target, "bench": bench}
    finally:
        console.stop()
        store.stop()


def test_review_a_verdict_in_a_real_browser_and_find_the_correction_in_the_export(
    chromium: str, services: tuple[Settings, dict[str, Any]], shots: Path, tmp_path: Path
) -> None:
    from playwright.sync_api import expect, sync_playwright

    settings, data = services
    target: str = data["target"]
    live, replays = data["live"], data["replays"]
    url = f"http://127.0.0.1:{settings.console.port}"
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=chromium, args=CHROMIUM_FLAGS)
        try:
            page = browser.new_page(viewport={"width": 1440, "height": 1000})
            page.goto(f"{url}/")
            expect(page.get_by_role("heading", name="Log in")).to_be_visible()
            page.get_by_label("User name").fill("rita")
            page.get_by_label("Password").fill(PASSWORD)
            page.get_by_role("button", name="Log in").click()
            expect(page.get_by_role("heading", name="Verdicts to review")).to_be_visible()

            # filter to harmful
            page.locator("select[name=outcome]").select_option("harmful")
            page.get_by_role("button", name="Filter").click()
            expect(page).to_have_url(re.compile(r"\?outcome=harmful&"))
            badges = page.locator("table.queue tbody .badge").all_inner_texts()
            assert badges and set(badges) == {"harmful"}
            page.screenshot(path=str(shots / "queue.png"))

            # open the verdict (paging on if it is not on the first page)
            link = page.locator("a.event", has_text=target).first
            while not link.count():
                page.get_by_role("link", name="Older »").click()
                link = page.locator("a.event", has_text=target).first
            link.click()
            expect(page.get_by_role("heading", name=f"Verdict {target}")).to_be_visible()
            expect(page.locator(".step.deciding")).to_have_count(1)
            expect(page.locator("pre.chat").first).to_contain_text(live[target]["request_text"][:40])
            expect(page.locator("code.trace")).to_have_text(trace_of(live[target]))  # from its traceparent

            # a few confirmations elsewhere through the JSON API, from the same session (agreement chart)
            for other in [e for e in live if e != target and live[e]["status"] == "ok"][-5:]:
                response = page.request.post(f"{url}/api/verdicts/{other}/review", data={"action": "confirm"})
                assert response.status == 201, response.text()

            # correct the answers to what the 3B replay said
            wanted = replays[target]["answers"]
            for name in ANSWERS:
                page.locator(f"select[name={name}]").select_option(wanted[name] or "")
            page.get_by_label("Note").fill("3B reads this correctly: the reply is a safe explanation.")
            page.get_by_role("button", name="Save correction").click()
            entry = page.locator("tr.audit-entry")
            expect(entry).to_have_count(1)
            expect(entry).to_contain_text("rita")
            expect(entry).to_contain_text("correct")
            changed = [n for n in ANSWERS if wanted[n] != live[target]["answers"][n]]
            expect(entry).to_contain_text(f"{live[target]['answers'][changed[0]]} → {wanted[changed[0]]}")
            page.screenshot(path=str(shots / "verdict.png"), full_page=True)

            page.get_by_role("link", name="Dashboard").click()
            expect(page.locator("svg.chart")).to_have_count(6)
            page.screenshot(path=str(shots / "dashboard.png"), full_page=True)
        finally:
            browser.close()

    index = int(target.rsplit("-", 1)[1])
    sft_path, dpo_path = tmp_path / "sft.jsonl", tmp_path / "dpo.jsonl"
    guardstream(settings, "export", "--format", "sft", "--out", str(sft_path))
    guardstream(settings, "export", "--format", "dpo", "--out", str(dpo_path))
    sample = next(s for s in data["bench"].samples if s.index == index)
    wanted_input = prompt_input(sample.request, sample.response)
    sft = [orjson.loads(line) for line in sft_path.read_bytes().splitlines()]
    dpo = [orjson.loads(line) for line in dpo_path.read_bytes().splitlines()]
    assert [r["output"] for r in sft if r["input"] == wanted_input] == [replays[target]["raw"]]
    assert [(r["chosen"], r["rejected"]) for r in dpo if r["input"] == wanted_input] == [
        (replays[target]["raw"], live[target]["raw"])
    ]
    for name in ("queue", "verdict", "dashboard"):
        assert (shots / f"{name}.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
