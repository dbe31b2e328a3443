from __future__ import annotations

from typing import Any

from modelplane.policies.rules import exposure
from tests.policies.harness import messages, resource


def service(annotations: dict[str, str], type_: str = "LoadBalancer") -> dict[str, Any]:
    inputs = {"metadata": {"name": "server", "annotations": annotations}, "spec": {"type": type_}}
    return resource("kubernetes:core/v1:Service", "server", inputs)


def test_internal_load_balancer_passes() -> None:
    internal = service({"service.beta.kubernetes.io/aws-load-balancer-scheme": "internal"})
    assert messages(exposure.INTERNAL_LOAD_BALANCERS, [internal, service({}, type_="ClusterIP")]) == []


def test_internet_facing_load_balancer_fires() -> None:
    public = service({"service.beta.kubernetes.io/aws-load-balancer-scheme": "internet-facing"})
    assert len(messages(exposure.INTERNAL_LOAD_BALANCERS, [public])) == 1


def release(version: Any) -> dict[str, Any]:
    return resource("kubernetes:helm.sh/v3:Release", "plugin", {"chart": "nvidia-device-plugin", "version": version})


def test_pinned_helm_release_passes() -> None:
    assert messages(exposure.PINNED_HELM_CHARTS, [release("0.17.1")]) == []


def test_unpinned_helm_release_fires() -> None:
    assert len(messages(exposure.PINNED_HELM_CHARTS, [release(None)])) == 1
    assert len(messages(exposure.PINNED_HELM_CHARTS, [release("")])) == 1
