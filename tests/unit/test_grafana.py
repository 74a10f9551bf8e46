"""The Grafana dashboard asks only for metrics the worker exports, and docker-compose provisions it."""

from __future__ import annotations

import re
from pathlib import Path

import orjson
import yaml
from prometheus_client import REGISTRY

import streams.metrics  # noqa: F401 - registers the worker's metrics
from streams.cli import build_parser
from streams.config import Settings

ROOT = Path(__file__).resolve().parents[2]
GRAFANA = ROOT / "infra" / "grafana"
DASHBOARD = orjson.loads((GRAFANA / "dashboards" / "guardstream.json").read_bytes())
COMPOSE = yaml.safe_load((ROOT / "docker-compose.yml").read_text())


def exported_series() -> set[str]:
    """Series names the worker's /metrics can expose (counters as *_total, histograms' parts)."""
    names: set[str] = set()
    for family in REGISTRY.collect():
        if not family.name.startswith("guardstream_"):
            continue
        if family.type == "counter":
            names.add(f"{family.name}_total")
        elif family.type == "histogram":
            names.update(f"{family.name}{suffix}" for suffix in ("_bucket", "_sum", "_count"))
        else:
            names.add(family.name)
    return names


def expressions() -> list[str]:
    return [t["expr"] for panel in DASHBOARD["panels"] for t in panel["targets"]]


def test_every_query_uses_exported_metrics_and_labels() -> None:
    exported = exported_series()
    used = {name for expr in expressions() for name in re.findall(r"guardstream_[a-z0-9_]+", expr)}
    assert used and used <= exported, used - exported
    labels = {"outcome", "reason", "error", "kind", "le"}
    for expr in expressions():
        for label in re.findall(r"by \(([^)]*)\)", expr):
            assert {part.strip() for part in label.split(",")} <= labels, expr
    # the charts the dashboard promises
    joined = "\n".join(expressions())
    for series in (
        "guardstream_verdicts_total",
        "guardstream_engine_latency_seconds_bucket",
        "guardstream_events_total",
    ):
        assert series in joined


def test_panels_use_the_provisioned_datasource() -> None:
    datasource = yaml.safe_load((GRAFANA / "datasource.yml").read_text())["datasources"][0]
    assert datasource["url"] == "http://prometheus:9090"
    for panel in DASHBOARD["panels"]:
        assert panel["datasource"]["uid"] == datasource["uid"]
        assert all(t["datasource"]["uid"] == datasource["uid"] for t in panel["targets"])
    ids = [p["id"] for p in DASHBOARD["panels"]]
    assert len(ids) == len(set(ids))


def test_compose_provisions_grafana_and_runs_store_and_console() -> None:
    services = COMPOSE["services"]
    provider = yaml.safe_load((GRAFANA / "dashboards.yml").read_text())["providers"][0]
    mounts = {v.split(":")[1]: v.split(":")[0] for v in services["grafana"]["volumes"]}
    dashboards = Path(mounts[provider["options"]["path"]])  # the provider's folder is mounted whole
    assert (ROOT / dashboards / "guardstream.json").is_file()
    assert "prometheus" in services["grafana"]["depends_on"]
    for name in ("store", "console"):
        service = services[name]
        settings = Settings.from_env({k: str(v) for k, v in service["environment"].items()})
        assert settings.store.database_url.startswith("postgresql://")
        build_parser().parse_args(service["command"])
