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


def test_load_balancer_scheme_follows_whoever_builds_it() -> None:
    rule = exposure.INTERNAL_LOAD_BALANCERS
    lbc = {"service.beta.kubernetes.io/aws-load-balancer-type": "external"}
    assert messages(rule, [service({"service.beta.kubernetes.io/aws-load-balancer-internal": "true"})]) == []
    assert messages(rule, [service({**lbc, "service.beta.kubernetes.io/aws-load-balancer-internal": "false"})]) != []
    assert messages(rule, [service({**lbc, "service.beta.kubernetes.io/aws-load-balancer-scheme": "[unknown]"})]) == []


def ingress(type_: str, inputs: dict[str, Any]) -> dict[str, Any]:
    return resource(type_, "web", inputs)


def test_internet_facing_ingress_and_class_params_fire_and_internal_ones_pass() -> None:
    rule = exposure.INTERNAL_INGRESSES
    public = {"metadata": {"annotations": {"alb.ingress.kubernetes.io/scheme": "internet-facing"}}}
    params = "kubernetes:elbv2.k8s.aws/v1beta1:IngressClassParams"
    for type_ in sorted(exposure.INGRESS_TYPES):
        assert len(messages(rule, [ingress(type_, public)])) == 1, type_
    assert len(messages(rule, [ingress(params, {"spec": {"scheme": "internet-facing"}})])) == 1
    internal = {"metadata": {"annotations": {"alb.ingress.kubernetes.io/scheme": "internal"}}}
    assert messages(rule, [ingress("kubernetes:networking.k8s.io/v1:Ingress", internal)]) == []
    assert messages(rule, [ingress(params, {"spec": {"scheme": "internal"}})]) == []


def test_helm_version_ranges_fire_and_exact_versions_or_unknown_ones_pass() -> None:
    for version in (">=3.0.0", "*", "^1.2", "~1.2", "1.x", "1.2.x", "1.2", "latest", "   "):
        assert len(messages(exposure.PINNED_HELM_CHARTS, [release(version)])) == 1, version
    for version in ("0.17.1", "v2.2.1", "1.0.0-rc.1+build.5", "[unknown]"):
        assert messages(exposure.PINNED_HELM_CHARTS, [release(version)]) == [], version
