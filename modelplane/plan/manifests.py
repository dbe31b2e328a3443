"""Kubernetes objects of a plan, as they would be applied: one YAML document per object."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import yaml

from modelplane.plan.crd_validation import crd_schema_problems
from modelplane.plan.mocks import SECRET_PLACEHOLDER, RecordedResource

REDACTED_ANNOTATION = "modelplane.io/plan-redacted"

# Types the Kubernetes provider manages that are not objects of the cluster's API.
_NOT_OBJECTS = ("kubernetes:helm.sh/", "pulumi:providers:", "kubernetes:yaml")


def is_kubernetes_object(resource: RecordedResource) -> bool:
    return (
        resource.type.startswith("kubernetes:")
        and not resource.type.startswith(_NOT_OBJECTS)
        and "kind" in resource.inputs
        and "apiVersion" in resource.inputs
    )


def _whole_numbers_as_ints(value: Any) -> Any:
    """The engine carries every number as a float; Kubernetes wants `replicas: 2`, not `2.0`."""
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, dict):
        return {key: _whole_numbers_as_ints(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_whole_numbers_as_ints(item) for item in value]
    return value


def manifest_of(resource: RecordedResource) -> dict[str, Any]:
    """The object as applied; a missing name is the one Pulumi auto-names from (the resource name)."""
    manifest = _whole_numbers_as_ints(dict(resource.inputs))
    metadata = dict(manifest.get("metadata") or {})
    metadata.setdefault("name", resource.name)
    # A plan never holds secret values: drop redacted fields and say so, keeping the object valid.
    redacted = sorted(key for key, value in manifest.items() if value == SECRET_PLACEHOLDER)
    for key in redacted:
        del manifest[key]
    if redacted:
        metadata["annotations"] = {**(metadata.get("annotations") or {}), REDACTED_ANNOTATION: ",".join(redacted)}
    manifest["metadata"] = metadata
    ordered: dict[str, Any] = {key: manifest[key] for key in ("apiVersion", "kind", "metadata") if key in manifest}
    ordered.update({key: value for key, value in manifest.items() if key not in ordered})
    return ordered


def kubernetes_manifests(resources: list[RecordedResource]) -> list[dict[str, Any]]:
    return [manifest_of(r) for r in resources if is_kubernetes_object(r)]


def manifests_of_kind(resources: list[RecordedResource], kind: str) -> list[dict[str, Any]]:
    return [m for m in kubernetes_manifests(resources) if m["kind"] == kind]


def manifest_filename(manifest: dict[str, Any]) -> str:
    metadata = manifest["metadata"]
    parts = [manifest["kind"], metadata.get("namespace", "cluster"), metadata["name"]]
    return re.sub(r"[^A-Za-z0-9_.-]", "_", "-".join(str(p) for p in parts)).lower() + ".yaml"


def write_manifests(manifests: list[dict[str, Any]], directory: Path) -> list[Path]:
    directory.mkdir(parents=True, exist_ok=True)
    for stale in directory.glob("*.yaml"):
        stale.unlink()
    paths = []
    for manifest in manifests:
        path = directory / manifest_filename(manifest)
        if path.exists():
            raise ValueError(f"two Kubernetes objects render to {path.name}: kind, namespace and name must be unique")
        path.write_text(yaml.safe_dump(manifest, sort_keys=False))
        paths.append(path)
    return paths


def custom_object_problems(resources: list[RecordedResource]) -> list[str]:
    """Every problem of the plan's custom objects whose CRD schema is vendored (Karpenter, Kueue), by object."""
    problems = []
    for manifest in kubernetes_manifests(resources):
        where = f"{manifest['kind']} {manifest['metadata'].get('namespace', '')}/{manifest['metadata']['name']}"
        problems += [f"{where.replace(' /', ' ')}: {problem}" for problem in crd_schema_problems(manifest)]
    return problems
