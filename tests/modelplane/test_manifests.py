from __future__ import annotations

from pathlib import Path

import pytest

from modelplane.plan.manifests import (
    REDACTED_ANNOTATION,
    is_kubernetes_object,
    manifest_filename,
    manifest_of,
    write_manifests,
)
from modelplane.plan.mocks import RecordedResource


def recorded(type_: str, name: str, **inputs: object) -> RecordedResource:
    return RecordedResource(urn=f"urn::{type_}::{name}", type=type_, name=name, parent="", custom=True, inputs=inputs)


def test_only_cluster_objects_are_manifests() -> None:
    config_map = recorded("kubernetes:core/v1:ConfigMap", "cm", apiVersion="v1", kind="ConfigMap")
    release = recorded("kubernetes:helm.sh/v3:Release", "r", chart="x")
    provider = recorded("pulumi:providers:kubernetes", "k8s", kubeconfig="[secret]")
    bucket = recorded("aws:s3/bucket:Bucket", "b")
    assert [is_kubernetes_object(r) for r in (config_map, release, provider, bucket)] == [True, False, False, False]


def test_auto_named_objects_take_the_resource_name_and_fields_are_ordered() -> None:
    manifest = manifest_of(
        recorded("kubernetes:core/v1:ConfigMap", "settings", data={"a": "b"}, kind="ConfigMap", apiVersion="v1")
    )
    assert list(manifest) == ["apiVersion", "kind", "metadata", "data"]
    assert manifest["metadata"]["name"] == "settings"


def test_secret_values_are_dropped_and_marked() -> None:
    secret = recorded(
        "kubernetes:core/v1:Secret",
        "s",
        apiVersion="v1",
        kind="Secret",
        metadata={"name": "grafana"},
        stringData="[secret]",
    )
    manifest = manifest_of(secret)
    assert "stringData" not in manifest
    assert manifest["metadata"]["annotations"][REDACTED_ANNOTATION] == "stringData"


def test_two_objects_with_one_file_name_are_refused(tmp_path: Path) -> None:
    manifest = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "a", "namespace": "ml"}}
    assert manifest_filename(manifest) == "configmap-ml-a.yaml"
    with pytest.raises(ValueError, match="kind, namespace and name must be unique"):
        write_manifests([manifest, manifest], tmp_path)
