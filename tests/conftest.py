"""Shared fixtures. Data from ../shared/guardreasoner is read in place, never copied."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable, Sequence
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


SIEM = SHARED.parent / "siem"


def _run_siem_validator(fmt: str, lines: Sequence[bytes], workdir: Path) -> str:
    path = workdir / f"records-{fmt}-{len(list(workdir.iterdir()))}.jsonl"
    path.write_bytes(b"".join(line.rstrip(b"\n") + b"\n" for line in lines))
    proc = subprocess.run(
        [sys.executable, str(SIEM / "validate.py"), fmt, str(path)],
        capture_output=True,
        text=True,
        check=False,
    )
    output = proc.stdout + proc.stderr
    assert proc.returncode == 0, f"validate.py {fmt}: {output}"
    assert output.strip().endswith(f"{len(lines)}/{len(lines)} valid"), output
    return output


SiemValidator = Callable[[str, Sequence[bytes]], str]


@pytest.fixture(scope="session")
def siem_validate(tmp_path_factory: pytest.TempPathFactory) -> SiemValidator:
    """``check(fmt, json_lines)``: runs ``../shared/siem/validate.py ecs|ocsf`` (the authoritative
    SIEM schema check) on the records; fails the test unless every one is valid."""
    if not (SIEM / "validate.py").is_file():
        if os.environ.get("CI"):
            pytest.fail(f"{SIEM} is missing: CI must run with ../shared beside the checkout")
        pytest.skip(f"needs ../shared/siem beside the checkout ({SIEM} not found)")
    workdir = tmp_path_factory.mktemp("siem")
    return lambda fmt, lines: _run_siem_validator(fmt, lines, workdir)
