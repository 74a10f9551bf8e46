"""docker-compose.yml is validated (no docker engine here) and agrees with the code."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from streams.cli import build_parser
from streams.config import Settings

ROOT = Path(__file__).resolve().parents[2]
COMPOSE = ROOT / "docker-compose.yml"


@pytest.mark.skipif(
    shutil.which("docker-compose") is None, reason="docker-compose (Debian package) not installed"
)
def test_compose_file_validates() -> None:
    proc = subprocess.run(
        ["docker-compose", "-f", str(COMPOSE), "config", "-q"], capture_output=True, text=True, check=False
    )
    assert proc.returncode == 0, proc.stderr


def test_worker_environment_is_valid_settings() -> None:
    service = yaml.safe_load(COMPOSE.read_text())["services"]["guardstream"]
    env = {k: str(v) for k, v in service["environment"].items()}
    settings = Settings.from_env(env)  # unknown GUARDSTREAM_ names would raise
    assert settings.engine.spec == "openai:http://vllm:8000"
    assert settings.telemetry.traces_exporter == "otlp"
    assert settings.telemetry.http_port == 9464
    build_parser().parse_args(service["command"])


def test_referenced_files_exist() -> None:
    compose = yaml.safe_load(COMPOSE.read_text())
    assert (ROOT / compose["services"]["guardstream"]["build"]["dockerfile"]).is_file()
    for service in compose["services"].values():
        for volume in service.get("volumes", []):
            source = volume.split(":", 1)[0]
            if source.startswith("./"):
                assert (ROOT / source).is_file(), source
