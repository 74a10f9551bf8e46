"""Shared fixtures. Data from ../shared/guardreasoner is read in place, never copied."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("GUARDSTREAM_SHARED_DIR", ROOT.parent / "shared")) / "guardreasoner"

# benchmark file stem -> recorded dataset folder
RECORDED_DATASETS = {
    "0_0_SimpleSafetyTests": "SimpleSafetyTests",
    "0_1_AegisSafetyTest": "AegisSafetyTest",
    "0_3_harmbench_prompt": "HarmBenchPrompt",
    "0_5_harmbench_response": "HarmBenchResponse",
    "0_6_xstest_response_harmful": "XSTestReponseHarmful",
    "0_7_xstest_response_refusal": "XSTestResponseRefusal",
}


@pytest.fixture(scope="session")
def shared() -> Path:
    """../shared/guardreasoner; skipped (never in CI) when it is not beside the checkout."""
    if not SHARED.is_dir():
        if os.environ.get("CI"):
            pytest.fail(f"{SHARED} is missing: CI must run with ../shared beside the checkout")
        pytest.skip(f"needs ../shared/guardreasoner beside the checkout ({SHARED} not found)")
    return SHARED
