"""What the cluster exposes and installs: internal load balancers outside prod, Helm charts pinned by version."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from modelplane.policies.rules.props import as_dict, dig, is_unknown
from modelplane.policies.rules.rule import ResourceRule, Rule

SERVICE_TYPES = frozenset({"kubernetes:core/v1:Service"})
HELM_TYPES = frozenset({"kubernetes:helm.sh/v3:Release", "kubernetes:helm.sh/v4:Chart", "kubernetes:helm.sh/v3:Chart"})
INTERNAL_ANNOTATIONS = {
    # AWS Load Balancer Controller
    "service.beta.kubernetes.io/aws-load-balancer-scheme": "internal",
    # the in-tree cloud provider
    "service.beta.kubernetes.io/aws-load-balancer-internal": "true",
}


def _internal_load_balancer(_type: str, props: dict[str, Any], _config: Mapping[str, Any]) -> list[str]:
    service_type = dig(props, "spec", "type")
    annotations = dig(props, "metadata", "annotations")
    if service_type != "LoadBalancer" or is_unknown(annotations):
        return []
    if any(as_dict(annotations).get(key) == value for key, value in INTERNAL_ANNOTATIONS.items()):
        return []
    return [
        "Service of type LoadBalancer is internet-facing; annotate it "
        "service.beta.kubernetes.io/aws-load-balancer-scheme: internal"
    ]


def _pinned_chart(_type: str, props: dict[str, Any], _config: Mapping[str, Any]) -> list[str]:
    version = props.get("version")
    if is_unknown(version) or (isinstance(version, str) and version.strip() and version.strip() != "latest"):
        return []
    return [f"chart {props.get('chart')!r} has no version; pin one so an upstream release cannot change the cluster"]


INTERNAL_LOAD_BALANCERS = ResourceRule(
    name="kubernetes-core-service-require-internal-loadbalancer",
    description="Services of type LoadBalancer are internal (scheme annotation) outside prod.",
    why="Dev and staging services are for the team, not the internet; only prod serves the public.",
    resource_types=SERVICE_TYPES,
    check=_internal_load_balancer,
)
PINNED_HELM_CHARTS = ResourceRule(
    name="kubernetes-helm-release-require-pinned-version",
    description="Helm releases pin their chart version.",
    why="Add-ons (device plugin, dcgm-exporter, monitoring) change only through a reviewed version bump.",
    resource_types=HELM_TYPES,
    check=_pinned_chart,
)

RULES: list[Rule] = [INTERNAL_LOAD_BALANCERS, PINNED_HELM_CHARTS]
