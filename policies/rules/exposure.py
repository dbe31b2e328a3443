"""What the cluster exposes and installs: internal load balancers outside prod, Helm charts pinned by version.

A load balancer is internet-facing when its scheme says so, or when nothing says otherwise and the in-tree cloud
provider builds it (a Service without the AWS Load Balancer Controller's annotations: the in-tree default is
internet-facing). The AWS Load Balancer Controller's own default is internal, for NLBs (Services of type
`external`, `nlb-ip` or its load balancer class) and ALBs (Ingresses, IngressClassParams) alike.

Helm: the Python SDK's `helm.v3.Chart` is a component registered with no inputs (it renders the chart itself and
registers the objects as its children, where the pod rules read them), so its version is nowhere in the engine's
view: the rule says so, as advice. `helm.v3.Release` and `helm.v4.Chart` carry their version.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from modelplane.policies.rules.props import as_dict, dig, is_unknown
from modelplane.policies.rules.rule import ResourceRule, Rule, Undecided

SERVICE_TYPES = frozenset({"kubernetes:core/v1:Service"})
INGRESS_TYPES = frozenset(
    {
        "kubernetes:networking.k8s.io/v1:Ingress",
        "kubernetes:networking.k8s.io/v1beta1:Ingress",
        "kubernetes:extensions/v1beta1:Ingress",
    }
)
INGRESS_CLASS_PARAMS_TYPES = frozenset({"kubernetes:elbv2.k8s.aws/v1beta1:IngressClassParams"})
HELM_RELEASE_TYPES = frozenset({"kubernetes:helm.sh/v3:Release", "kubernetes:helm.sh/v4:Chart"})
HELM_V3_CHART_TYPE = "kubernetes:helm.sh/v3:Chart"
SCHEME_ANNOTATION = "service.beta.kubernetes.io/aws-load-balancer-scheme"
IN_TREE_INTERNAL_ANNOTATION = "service.beta.kubernetes.io/aws-load-balancer-internal"
LOAD_BALANCER_TYPE_ANNOTATION = "service.beta.kubernetes.io/aws-load-balancer-type"
CONTROLLER_LOAD_BALANCER_TYPES = frozenset({"external", "nlb-ip"})
"""Service load balancer types the AWS Load Balancer Controller builds (others go to the in-tree provider)."""
CONTROLLER_LOAD_BALANCER_CLASS = "service.k8s.aws/nlb"
ALB_SCHEME_ANNOTATION = "alb.ingress.kubernetes.io/scheme"
INTERNET_FACING = "internet-facing"
INTERNAL = "internal"
EXACT_VERSION = re.compile(r"^=?v?\d+\.\d+\.\d+(-[0-9A-Za-z.-]+)?(\+[0-9A-Za-z.-]+)?$")
"""One SemVer version; Helm reads anything else (`>=3.0.0`, `*`, `^1.2`, `~1.2`, `1.x`, `1.2`) as a range."""


def _built_by_controller(service: dict[str, Any], annotations: dict[str, Any]) -> bool:
    return (
        annotations.get(LOAD_BALANCER_TYPE_ANNOTATION) in CONTROLLER_LOAD_BALANCER_TYPES
        or dig(service, "spec", "loadBalancerClass") == CONTROLLER_LOAD_BALANCER_CLASS
    )


def _service_is_internet_facing(service: dict[str, Any], annotations: dict[str, Any]) -> bool | None:
    """Whether a LoadBalancer Service gets a public load balancer; None when a deciding value is not yet known."""
    scheme, internal = annotations.get(SCHEME_ANNOTATION), annotations.get(IN_TREE_INTERNAL_ANNOTATION)
    deciding = (
        scheme,
        internal,
        annotations.get(LOAD_BALANCER_TYPE_ANNOTATION),
        dig(service, "spec", "loadBalancerClass"),
    )
    if any(is_unknown(value) for value in deciding):
        return None
    if scheme is not None:
        return scheme != INTERNAL
    if internal is not None:
        return str(internal).lower() == "false"
    return not _built_by_controller(service, annotations)


def _internal_load_balancer(_type: str, props: dict[str, Any], _config: Mapping[str, Any]) -> list[str]:
    service_type = dig(props, "spec", "type")
    annotations = dig(props, "metadata", "annotations")
    if service_type != "LoadBalancer" or is_unknown(annotations):
        return []
    if _service_is_internet_facing(props, as_dict(annotations)) is not True:
        return []
    return [f"Service of type LoadBalancer is internet-facing; annotate it {SCHEME_ANNOTATION}: {INTERNAL}"]


def _internal_ingress(resource_type: str, props: dict[str, Any], _config: Mapping[str, Any]) -> list[str]:
    if resource_type in INGRESS_CLASS_PARAMS_TYPES:
        if dig(props, "spec", "scheme") == INTERNET_FACING:
            return [
                "IngressClassParams spec.scheme is internet-facing: every Ingress of its class gets a public ALB; "
                f"set it {INTERNAL}"
            ]
        return []
    if dig(props, "metadata", "annotations", ALB_SCHEME_ANNOTATION) == INTERNET_FACING:
        return [f"Ingress is internet-facing (a public ALB); annotate it {ALB_SCHEME_ANNOTATION}: {INTERNAL}"]
    return []


def _pinned_chart(resource_type: str, props: dict[str, Any], _config: Mapping[str, Any]) -> list[str]:
    if resource_type == HELM_V3_CHART_TYPE and not props:
        return [
            Undecided(
                "helm.v3.Chart registers no inputs, so its chart version cannot be read; pin ChartOpts.version, "
                "or use helm.v3.Release or helm.v4.Chart, whose version the engine sees"
            )
        ]
    version = props.get("version")
    if is_unknown(version):
        return []
    chart = props.get("chart")
    if not isinstance(version, str) or not version.strip() or version.strip() == "latest":
        return [f"chart {chart!r} has no version; pin one so an upstream release cannot change the cluster"]
    if not EXACT_VERSION.match(version.strip()):
        return [
            f"chart {chart!r} version {version!r} is a range; pin one exact version (MAJOR.MINOR.PATCH) "
            "so an upstream release cannot change the cluster"
        ]
    return []


INTERNAL_LOAD_BALANCERS = ResourceRule(
    name="kubernetes-core-service-require-internal-loadbalancer",
    description="Services of type LoadBalancer are internal (scheme annotation, or the AWS Load Balancer "
    "Controller's internal default) outside prod.",
    why="Dev and staging services are for the team, not the internet; only prod serves the public.",
    resource_types=SERVICE_TYPES,
    check=_internal_load_balancer,
)
INTERNAL_INGRESSES = ResourceRule(
    name="kubernetes-networking-ingress-require-internal-loadbalancer",
    description="Ingresses and ALB IngressClassParams are internal (no internet-facing scheme) outside prod.",
    why="An internet-facing ALB publishes the service as surely as a public LoadBalancer Service does.",
    resource_types=INGRESS_TYPES | INGRESS_CLASS_PARAMS_TYPES,
    check=_internal_ingress,
)
PINNED_HELM_CHARTS = ResourceRule(
    name="kubernetes-helm-release-require-pinned-version",
    description="Helm releases pin their chart to one exact version (no range, no '*').",
    why="Add-ons (device plugin, dcgm-exporter, monitoring) change only through a reviewed version bump.",
    resource_types=HELM_RELEASE_TYPES | {HELM_V3_CHART_TYPE},
    check=_pinned_chart,
)

RULES: list[Rule] = [INTERNAL_LOAD_BALANCERS, INTERNAL_INGRESSES, PINNED_HELM_CHARTS]
