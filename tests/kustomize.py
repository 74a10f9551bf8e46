"""The subset of kustomize that infra/k8s uses, for the tests (kubectl is not always there).

Supported: ``resources`` (files, or folders with their own kustomization.yaml),
``patches`` given by ``path`` (the target is the patch's own kind and name),
``namespace`` and ``labels`` (``pairs`` added to each resource's metadata, not to
selectors). Patches merge like kustomize: a strategic merge for built-in kinds (maps
merge; lists of maps that have a ``name`` merge by it; other lists are replaced) and a
JSON merge patch for custom resources (maps merge, lists are replaced, null deletes).
Anything else in a kustomization.yaml is an error, so the tests notice an unsupported
feature instead of rendering it wrongly. Where ``kubectl`` is installed the tests
compare this with ``kubectl kustomize``.
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import yaml

__all__ = ["Resource", "render"]

Resource = dict[str, Any]

_KNOWN = {"apiVersion", "kind", "namespace", "labels", "resources", "patches"}
_BUILTIN_GROUPS = ("v1", "apps/v1", "policy/v1", "batch/v1", "networking.k8s.io/v1", "autoscaling/v2")
_CLUSTER_SCOPED = {"Namespace", "ClusterRole", "ClusterRoleBinding", "CustomResourceDefinition"}


def _load_all(path: Path) -> list[Resource]:
    return [doc for doc in yaml.safe_load_all(path.read_text()) if doc]


def _strategic(base: Any, patch: Any) -> Any:
    if isinstance(base, dict) and isinstance(patch, dict):
        out = dict(base)
        for key, value in patch.items():
            out[key] = _strategic(base[key], value) if key in base else copy.deepcopy(value)
        return out
    named = isinstance(base, list) and isinstance(patch, list) and patch
    if named and all(isinstance(i, dict) and "name" in i for i in [*base, *patch]):
        out_list = [copy.deepcopy(i) for i in base]
        index = {item["name"]: n for n, item in enumerate(out_list)}
        for item in patch:
            if item["name"] in index:
                out_list[index[item["name"]]] = _strategic(out_list[index[item["name"]]], item)
            else:
                out_list.append(copy.deepcopy(item))
        return out_list
    return copy.deepcopy(patch)


def _json_merge(base: Any, patch: Any) -> Any:
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    out = dict(base) if isinstance(base, dict) else {}
    for key, value in patch.items():
        if value is None:
            out.pop(key, None)
        else:
            out[key] = _json_merge(out.get(key), value)
    return out


def _apply_patch(resources: list[Resource], patch: Resource, source: Path) -> None:
    key = (patch["kind"], patch["metadata"]["name"])
    for n, resource in enumerate(resources):
        if (resource["kind"], resource["metadata"]["name"]) == key:
            merge = _strategic if resource["apiVersion"] in _BUILTIN_GROUPS else _json_merge
            resources[n] = merge(resource, patch)
            return
    raise ValueError(f"{source}: patch target {key} is not among the resources")


def render(folder: Path) -> list[Resource]:
    """The resources ``kubectl kustomize folder`` would print (for the features above)."""
    spec = yaml.safe_load((folder / "kustomization.yaml").read_text())
    unknown = set(spec) - _KNOWN
    if unknown:
        raise ValueError(
            f"{folder}/kustomization.yaml uses {sorted(unknown)}, which tests/kustomize.py lacks"
        )
    resources: list[Resource] = []
    for entry in spec.get("resources", []):
        path = (folder / entry).resolve()
        if path.is_dir():
            resources.extend(render(path))
        elif path.is_file():
            resources.extend(_load_all(path))
        else:
            raise FileNotFoundError(f"{folder}/kustomization.yaml lists {entry}, which does not exist")
    for patch in spec.get("patches", []):
        if set(patch) != {"path"}:
            raise ValueError(f"{folder}: only patches given by path are supported, not {patch}")
        path = folder / patch["path"]
        for doc in _load_all(path):
            _apply_patch(resources, doc, path)
    for resource in resources:
        meta = resource.setdefault("metadata", {})
        if "namespace" in spec and resource["kind"] not in _CLUSTER_SCOPED:
            meta["namespace"] = spec["namespace"]
        for label in spec.get("labels", []):
            if set(label) - {"pairs", "includeSelectors"} or label.get("includeSelectors"):
                raise ValueError(f"{folder}: only labels with pairs (not in selectors) are supported")
            meta["labels"] = {**meta.get("labels", {}), **label["pairs"]}
    return resources
