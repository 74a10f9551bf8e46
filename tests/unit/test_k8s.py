"""infra/k8s: every rendered manifest validates offline and agrees with the code's settings.

Built-in kinds are checked strictly (unknown fields are errors) against the Kubernetes
OpenAPI schemas bundled in ``kubernetes-validate``; KEDA's ScaledObject and
TriggerAuthentication, which those schemas lack, against tests/data/keda.schema.json
(written from KEDA's documented CRD fields). Kustomize is rendered by tests/kustomize.py,
and compared with ``kubectl kustomize`` where kubectl is installed.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path
from typing import Any

import jsonschema
import kubernetes_validate
import pytest
import yaml

from streams.config import Settings
from tests.kustomize import Resource, render

ROOT = Path(__file__).resolve().parents[2]
K8S = ROOT / "infra" / "k8s"
TARGETS = {"base": K8S / "base", "gpu": K8S / "overlays" / "gpu"}
KUBERNETES_VERSION = "1.33.0"
KEDA_SCHEMA = json.loads((ROOT / "tests" / "data" / "keda.schema.json").read_text())


def _by_kind(resources: list[Resource], kind: str) -> dict[str, Resource]:
    return {r["metadata"]["name"]: r for r in resources if r["kind"] == kind}


def _pod(resources: list[Resource], deployment: str) -> dict[str, Any]:
    spec: dict[str, Any] = _by_kind(resources, "Deployment")[deployment]["spec"]["template"]["spec"]
    return spec


def _validate(resource: Resource) -> None:
    if resource["apiVersion"].startswith("keda.sh/"):
        schema = {**KEDA_SCHEMA, "$ref": f"#/$defs/{resource['kind']}"}
        jsonschema.validate(resource, schema)
    else:
        kubernetes_validate.validate(resource, KUBERNETES_VERSION, strict=True)


@pytest.fixture(scope="module", params=sorted(TARGETS))
def rendered(request: pytest.FixtureRequest) -> tuple[str, list[Resource]]:
    return request.param, render(TARGETS[request.param])


def test_every_manifest_validates(rendered: tuple[str, list[Resource]]) -> None:
    _, resources = rendered
    assert {"Deployment", "Service", "ConfigMap", "Secret", "PodDisruptionBudget", "ScaledObject"} <= {
        r["kind"] for r in resources
    }
    for resource in resources:
        _validate(resource)
    names = [(r["kind"], r["metadata"]["name"]) for r in resources]
    assert len(names) == len(set(names))


@pytest.mark.parametrize(
    ("kind", "path", "value"),
    [
        ("Deployment", ("spec", "replica"), 2),  # a typo
        ("Deployment", ("spec", "template", "spec", "terminationGracePeriodSeconds"), "90s"),
        ("ScaledObject", ("spec", "maxReplicas"), 12),
        ("ScaledObject", ("spec", "triggers", 0, "metadata", "lagTreshold"), "300"),
        ("ScaledObject", ("spec", "triggers", 0, "metadata", "offsetResetPolicy"), "newest"),
    ],
)
def test_validation_catches_mistakes(kind: str, path: tuple[Any, ...], value: Any) -> None:
    resource = next(r for r in render(TARGETS["base"]) if r["kind"] == kind)
    node: Any = resource
    for step in path[:-1]:
        node = node[step]
    node[path[-1]] = value
    with pytest.raises((jsonschema.ValidationError, kubernetes_validate.ValidationError)):
        _validate(resource)


def _env(resources: list[Resource], deployment: str) -> dict[str, str]:
    """The variables a Deployment's first container gets from its ConfigMaps and Secrets."""
    configmaps, secrets = _by_kind(resources, "ConfigMap"), _by_kind(resources, "Secret")
    container = _pod(resources, deployment)["containers"][0]
    env: dict[str, str] = {}
    for source in container.get("envFrom", []):
        if "configMapRef" in source:
            env.update(configmaps[source["configMapRef"]["name"]]["data"])
        else:
            env.update(secrets[source["secretRef"]["name"]]["stringData"])
    return {k: str(v) for k, v in env.items()}


def test_worker_settings_probes_and_termination(rendered: tuple[str, list[Resource]]) -> None:
    _, resources = rendered
    settings = Settings.from_env(_env(resources, "guardstream-worker")).check()
    assert settings.engine.spec.startswith("openai:")
    assert settings.telemetry.http_host == "0.0.0.0"  # noqa: S104 - probes come from the kubelet
    pod = _pod(resources, "guardstream-worker")
    container = pod["containers"][0]
    ports = {p["name"]: p["containerPort"] for p in container["ports"]}
    assert container["args"] == ["worker"]
    for probe, path in (
        ("livenessProbe", "/healthz"),
        ("readinessProbe", "/readyz"),
        ("startupProbe", "/healthz"),
    ):
        get = container[probe]["httpGet"]
        assert get["path"] == path and ports[get["port"]] == settings.telemetry.http_port
    # SIGTERM drains for up to drain_timeout_s; Kubernetes must not SIGKILL before that is over
    assert pod["terminationGracePeriodSeconds"] >= settings.batch.drain_timeout_s + 15
    # the engine URL is the vLLM Service
    url = settings.engine.spec.removeprefix("openai:")
    host, port = url.removeprefix("http://").split(":")
    service = _by_kind(resources, "Service")[host]
    assert int(port) in [p["port"] for p in service["spec"]["ports"]]


def test_vllm_server(rendered: tuple[str, list[Resource]]) -> None:
    _, resources = rendered
    pod = _pod(resources, "vllm")
    container = pod["containers"][0]
    args = container["args"]
    assert args[args.index("--scheduling-policy") + 1] == "priority"  # replays run behind live traffic
    assert "--enable-prefix-caching" in args
    assert int(container["resources"]["limits"]["nvidia.com/gpu"]) >= 1
    # the server's --api-key is the key the workers send
    key_var = args[args.index("--api-key") + 1].strip("$()")
    ref = next(e for e in container["env"] if e["name"] == key_var)["valueFrom"]["secretKeyRef"]
    assert ref["key"] == "GUARDSTREAM_ENGINE_API_KEY"
    assert ref["name"] in {s["secretRef"]["name"] for s in _worker_sources(resources) if "secretRef" in s}
    assert container["readinessProbe"]["httpGet"]["path"] == "/health"


def _worker_sources(resources: list[Resource]) -> list[dict[str, Any]]:
    container = _by_kind(resources, "Deployment")["guardstream-worker"]["spec"]["template"]["spec"][
        "containers"
    ][0]
    sources: list[dict[str, Any]] = container["envFrom"]
    return sources


def test_keda_scales_workers_on_the_groups_lag(rendered: tuple[str, list[Resource]]) -> None:
    name, resources = rendered
    settings = Settings.from_env(_env(resources, "guardstream-worker"))
    scaled = _by_kind(resources, "ScaledObject")["guardstream-worker"]["spec"]
    assert scaled["scaleTargetRef"]["name"] in _by_kind(resources, "Deployment")
    assert scaled["maxReplicaCount"] == settings.kafka.partitions  # more workers than partitions idle
    (trigger,) = scaled["triggers"]
    meta = trigger["metadata"]
    assert trigger["type"] == "kafka"
    assert meta["consumerGroup"] == settings.kafka.group_id
    assert meta["topic"] == settings.topics.events
    assert meta["bootstrapServers"] == settings.kafka.bootstrap
    assert int(meta["lagThreshold"]) > 0
    kafka = settings.kafka
    if kafka.security_protocol == "PLAINTEXT":
        assert "authenticationRef" not in trigger
        return
    auth = _by_kind(resources, "TriggerAuthentication")[trigger["authenticationRef"]["name"]]
    secrets = _by_kind(resources, "Secret")
    params = {
        ref["parameter"]: secrets[ref["name"]]["stringData"][ref["key"]]
        for ref in auth["spec"]["secretTargetRef"]
    }
    assert params["sasl"] == kafka.sasl_mechanism.lower().replace("-", "_").replace("_sha_", "_sha")
    assert params["tls"] == ("enable" if kafka.security_protocol == "SASL_SSL" else "disable")
    assert params["username"] == kafka.sasl_username
    assert params["password"] == kafka.sasl_password.reveal()
    assert name == "gpu"


def test_selectors_budgets_and_services_match_pods(rendered: tuple[str, list[Resource]]) -> None:
    _, resources = rendered
    deployments = _by_kind(resources, "Deployment")
    pods = {name: d["spec"]["template"]["metadata"]["labels"] for name, d in deployments.items()}
    for d in deployments.values():
        assert (
            d["spec"]["selector"]["matchLabels"].items()
            <= d["spec"]["template"]["metadata"]["labels"].items()
        )
    for pdb in _by_kind(resources, "PodDisruptionBudget").values():
        assert any(
            pdb["spec"]["selector"]["matchLabels"].items() <= labels.items() for labels in pods.values()
        )
    for service in _by_kind(resources, "Service").values():
        selector = service["spec"]["selector"]
        matched = [n for n, labels in pods.items() if selector.items() <= labels.items()]
        assert matched, service["metadata"]["name"]
        container_ports = {
            p["name"]
            for c in deployments[matched[0]]["spec"]["template"]["spec"]["containers"]
            for p in c["ports"]
        }
        assert {p["targetPort"] for p in service["spec"]["ports"]} <= container_ports
    assert set(_by_kind(resources, "PodDisruptionBudget")) >= {"guardstream-worker", "vllm"}


def test_store_and_console_run_their_commands(rendered: tuple[str, list[Resource]]) -> None:
    _, resources = rendered
    from streams.cli import build_parser

    store_env = _env(resources, "guardstream-store")
    console_env = _env(resources, "guardstream-console")
    assert store_env["GUARDSTREAM_STORE_URL"].startswith("postgresql://")
    assert console_env["GUARDSTREAM_CONSOLE_HOST"] == "0.0.0.0"  # noqa: S104
    console = _pod(resources, "guardstream-console")["containers"][0]
    assert console["ports"][0]["containerPort"] == int(console_env["GUARDSTREAM_CONSOLE_PORT"])
    for name, env in (("guardstream-store", store_env), ("guardstream-console", console_env)):
        Settings.from_env(env)  # every name is a known setting
        build_parser().parse_args(_pod(resources, name)["containers"][0]["args"])


@pytest.mark.skipif(shutil.which("kubectl") is None, reason="kubectl not installed")
@pytest.mark.parametrize("target", sorted(TARGETS))
def test_our_rendering_matches_kubectl_kustomize(target: str) -> None:
    proc = subprocess.run(
        ["kubectl", "kustomize", str(TARGETS[target])],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    theirs = {(d["kind"], d["metadata"]["name"]): d for d in yaml.safe_load_all(proc.stdout) if d}
    ours = {(d["kind"], d["metadata"]["name"]): d for d in render(TARGETS[target])}
    assert ours == theirs
