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
                assert (ROOT / source).exists(), source


def test_start_order_health_and_restarts() -> None:
    """The worker starts only once Kafka is healthy; every service restarts; health is checked."""
    services = yaml.safe_load(COMPOSE.read_text())["services"]
    worker = services["guardstream"]
    assert worker["depends_on"]["kafka"]["condition"] == "service_healthy"
    assert {name for name, s in services.items() if "healthcheck" in s} >= {
        "kafka",
        "vllm",
        "guardstream",
        "prometheus",
        "grafana",
    }
    for name, service in services.items():
        assert service.get("restart") == "unless-stopped", name
        for dependency, spec in (service.get("depends_on") or {}).items():
            assert dependency in services, (name, dependency)
            if spec["condition"] == "service_healthy":
                assert "healthcheck" in services[dependency], (name, dependency)
    env = {k: str(v) for k, v in worker["environment"].items()}
    drain = Settings.from_env(env).batch.drain_timeout_s
    assert int(str(worker["stop_grace_period"]).removesuffix("s")) >= drain + 15


def test_grafana_is_provisioned_with_dashboards_on_exported_metrics() -> None:
    import json
    import re

    from prometheus_client import REGISTRY

    import streams.metrics  # noqa: F401 - registers the worker's metrics

    services = yaml.safe_load(COMPOSE.read_text())["services"]
    assert "prometheus" in services["grafana"]["depends_on"]
    provider = yaml.safe_load((ROOT / "infra" / "grafana" / "dashboards.yml").read_text())["providers"][0]
    mounts = {v.split(":")[1]: ROOT / v.split(":")[0] for v in services["grafana"]["volumes"]}
    dashboards = sorted(mounts[provider["options"]["path"]].glob("*.json"))
    assert dashboards
    exported = set()
    for family in REGISTRY.collect():
        suffixes = {"counter": ("_total",), "histogram": ("_bucket", "_sum", "_count")}.get(
            family.type, ("",)
        )
        exported.update(family.name + s for s in suffixes)
    # guardstream_consumer_lag: the per-partition lag gauge that the consumer-lag change adds
    allowed = exported | {"guardstream_consumer_lag"}
    for path in dashboards:
        dashboard = json.loads(path.read_text())
        exprs = [t["expr"] for p in dashboard["panels"] for t in p["targets"]]
        used = {m for e in exprs for m in re.findall(r"guardstream_[a-z0-9_]+", e)}
        assert used and used <= allowed, (path.name, used - allowed)
