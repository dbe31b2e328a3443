"""Capacity that scales has something scaling it, and every autoscaler's metrics have a source.

- A node group or Auto Scaling group with min size 0 starts (or ends up) with no nodes; only cluster-autoscaler
  adds them when pods wait. A self-managed Auto Scaling group must also be one cluster-autoscaler finds (its
  `--nodes` list, or the auto-discovery tags). Karpenter NodePools start empty and need Karpenter's controller (a
  karpenter Helm release or Deployment), except under EKS Auto Mode, where EKS runs it. The autoscaler itself
  needs a node it does not create: in a plan that declares its EKS cluster, some always-present node (a node
  group with min size >= 1, a joined instance, a Fargate profile) must take its pods.
- A HorizontalPodAutoscaler reads Resource metrics from the resource metrics API (metrics-server: EKS add-on,
  Helm release or Deployment), Pods and Object metrics from the custom metrics API (prometheus-adapter and the
  like) and External metrics from the external metrics API (KEDA, prometheus-adapter); an APIService for the API
  counts too. A Utilization target also needs the resource requested by the target's containers.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from modelplane.policies.deployability.cluster_model import (
    AUTOSCALING_GROUP,
    EC2_INSTANCE,
    EKS_CLUSTER_TYPE,
    FARGATE,
    HELM_RELEASE_TYPES,
    HPA_TYPES,
    NODE_GROUP,
    NODE_POOL,
    POD_SPEC_PATHS,
    NodeOffer,
    NodeShape,
    asg_tags,
    chart_name,
    container_requests,
    node_offers,
    release_values,
)
from modelplane.policies.deployability.findings import Finding
from modelplane.policies.deployability.placement import (
    Placement,
    Toleration,
    affinity_terms,
    any_of,
    selector_requirements,
    tolerations_of,
)
from modelplane.policies.deployability.quantities import as_list, as_mapping, is_unknown, known, value_at

CHECK = "capacity"
ADDON_TYPE = "aws:eks/addon:Addon"
API_SERVICE_TYPES = frozenset(
    {"kubernetes:apiregistration.k8s.io/v1:APIService", "kubernetes:apiregistration.k8s.io/v1beta1:APIService"}
)
DEPLOYMENT_TYPE = "kubernetes:apps/v1:Deployment"
RESOURCE_METRICS, CUSTOM_METRICS, EXTERNAL_METRICS = (
    "metrics.k8s.io",
    "custom.metrics.k8s.io",
    "external.metrics.k8s.io",
)
METRIC_APIS = {
    "Resource": RESOURCE_METRICS,
    "ContainerResource": RESOURCE_METRICS,
    "Pods": CUSTOM_METRICS,
    "Object": CUSTOM_METRICS,
    "External": EXTERNAL_METRICS,
}
METRIC_SERVERS = {
    RESOURCE_METRICS: ("metrics-server",),
    CUSTOM_METRICS: ("prometheus-adapter", "kube-metrics-adapter", "datadog-cluster-agent"),
    EXTERNAL_METRICS: ("keda", "prometheus-adapter", "kube-metrics-adapter", "k8s-cloudwatch-adapter"),
}
"""Charts (and Deployment names) that serve each metrics API."""
METRIC_SERVER_FIX = {
    RESOURCE_METRICS: "add the metrics-server EKS add-on (aws.eks.Addon addon_name='metrics-server') or its Helm chart",
    CUSTOM_METRICS: "deploy prometheus-adapter with a rule for the metric",
    EXTERNAL_METRICS: "deploy KEDA or prometheus-adapter with an external rule for the metric",
}
CHART_DEFAULT_TOLERATIONS = {"karpenter": (Toleration("CriticalAddonsOnly", "Exists", "", ""),)}
"""Tolerations a chart gives its pods when the values set none."""
CA_DISCOVERY_TAGS = ("k8s.io/cluster-autoscaler/enabled", "k8s.io/cluster-autoscaler/{cluster}")
"""The tags cluster-autoscaler's auto-discovery looks for by default (chart value autoDiscovery.tags)."""


@dataclass(frozen=True)
class Controller:
    """A cluster controller the plan deploys (Karpenter, cluster-autoscaler, a metrics server)."""

    urn: str
    name: str
    placement: Placement
    args: tuple[str, ...] = ()
    values: Mapping[str, Any] | None = None
    """A Helm release's values; None for a Deployment or when not known."""


def _inputs(resource: Mapping[str, Any]) -> Mapping[str, Any]:
    return as_mapping(resource.get("inputs"))


def _deployment_texts(resource: Mapping[str, Any]) -> list[str]:
    pod = as_mapping(value_at(_inputs(resource), *POD_SPEC_PATHS[DEPLOYMENT_TYPE]))
    texts = [str(resource.get("name") or ""), str(known(value_at(_inputs(resource), "metadata", "name")) or "")]
    return texts + [str(value_at(as_mapping(c), "image") or "") for c in as_list(value_at(pod, "containers"))]


def controllers(resources: Sequence[Mapping[str, Any]], names: Sequence[str]) -> list[Controller]:
    """Helm releases of a chart in `names`, and Deployments named or imaged after one."""
    found = []
    for resource in resources:
        props = _inputs(resource)
        if resource.get("type") in HELM_RELEASE_TYPES and chart_name(value_at(props, "chart")) in names:
            values = release_values(props)
            known_values = None if is_unknown(values) else as_mapping(values)
            placement = (
                Placement(None, None, None)
                if known_values is None
                else Placement(
                    selector_requirements(value_at(known_values, "nodeSelector")),
                    affinity_terms(value_at(known_values, "affinity")) if value_at(known_values, "affinity") else (),
                    tolerations_of(value_at(known_values, "tolerations"))
                    if value_at(known_values, "tolerations") is not None
                    else CHART_DEFAULT_TOLERATIONS.get(str(chart_name(value_at(props, "chart"))), ()),
                )
            )
            found.append(Controller(str(resource.get("urn")), str(resource.get("name")), placement, (), known_values))
        elif resource.get("type") == DEPLOYMENT_TYPE and any(
            name in text for text in _deployment_texts(resource) for name in names
        ):
            pod = as_mapping(value_at(props, *POD_SPEC_PATHS[DEPLOYMENT_TYPE]))
            args = tuple(
                str(a)
                for c in as_list(value_at(pod, "containers"))
                for a in (*as_list(value_at(as_mapping(c), "command")), *as_list(value_at(as_mapping(c), "args")))
            )
            placement = Placement(
                selector_requirements(value_at(pod, "nodeSelector")),
                affinity_terms(value_at(pod, "affinity")),
                tolerations_of(value_at(pod, "tolerations")),
            )
            found.append(Controller(str(resource.get("urn")), str(resource.get("name")), placement, args))
    return found


def _auto_mode(resources: Sequence[Mapping[str, Any]]) -> bool:
    return any(
        r.get("type") == EKS_CLUSTER_TYPE and value_at(_inputs(r), "computeConfig", "enabled") is True
        for r in resources
    )


def _discovery(autoscaler: Controller) -> tuple[set[str] | None, list[str] | None]:
    """The Auto Scaling group names cluster-autoscaler is given, and the tags it discovers groups by (None: not
    known); both empty when it is given neither."""
    if autoscaler.values is not None:
        groups = value_at(autoscaler.values, "autoscalingGroups")
        names = {str(value_at(as_mapping(g), "name")) for g in as_list(groups)}
        cluster = known(value_at(autoscaler.values, "autoDiscovery", "clusterName"))
        tags = value_at(autoscaler.values, "autoDiscovery", "tags")
        if is_unknown(groups) or is_unknown(tags) or (cluster is None and value_at(autoscaler.values, "autoDiscovery")):
            return None, None
        if cluster is None:
            return names, []
        tag_list = [str(t) for t in as_list(tags)] or list(CA_DISCOVERY_TAGS)
        return names, [_with_cluster(t, str(cluster)) for t in tag_list]
    if not autoscaler.args:
        return None, None
    names = {a.split(":")[-1] for a in autoscaler.args if a.startswith("--nodes=")}
    tags = [
        tag
        for a in autoscaler.args
        if a.startswith("--node-group-auto-discovery=asg:tag=")
        for tag in a.split("=", 2)[2].split(",")
    ]
    return names, tags


def _with_cluster(tag: str, cluster: str) -> str:
    return tag.replace("{{ .Values.autoDiscovery.clusterName }}", cluster).replace("{cluster}", cluster)


def _discovered(resource: Mapping[str, Any], autoscaler: Controller) -> bool | None:
    names, tags = _discovery(autoscaler)
    if names is None or tags is None:
        return None
    name = known(value_at(_inputs(resource), "name"))
    if isinstance(name, str) and name in names:
        return True
    group_tags = asg_tags(_inputs(resource))
    if group_tags is None:
        return None
    if tags and all(t.split("=", 1)[0] in group_tags for t in tags):
        return True
    return None if name is None and names else False


def _zero_node_findings(resources: Sequence[Mapping[str, Any]], offers: Sequence[NodeOffer]) -> list[Finding]:
    autoscalers = controllers(resources, ("cluster-autoscaler",))
    karpenter = controllers(resources, ("karpenter",))
    by_urn = {str(r.get("urn")): r for r in resources}
    findings = []
    for offer in offers:
        if offer.kind in (NODE_GROUP, AUTOSCALING_GROUP) and offer.min_nodes == 0:
            if not autoscalers:
                findings.append(
                    Finding(
                        CHECK,
                        offer.urn,
                        needs=f"something to add nodes to {offer.describe()}, whose min size is 0",
                        missing="no cluster-autoscaler in the plan (Helm release or Deployment), and Karpenter does "
                        "not scale node groups: pods that need these nodes wait forever once it is empty",
                        fix="deploy the cluster-autoscaler chart (https://kubernetes.github.io/autoscaler), or set "
                        "min size to at least 1, or move this capacity to a Karpenter NodePool",
                    )
                )
            elif offer.kind == AUTOSCALING_GROUP and all(
                _discovered(by_urn[offer.urn], a) is False for a in autoscalers
            ):
                names, tags = _discovery(autoscalers[0])
                findings.append(
                    Finding(
                        CHECK,
                        offer.urn,
                        needs=f"cluster-autoscaler to find {offer.describe()}, whose min size is 0",
                        missing=f"it is neither in cluster-autoscaler's groups ({sorted(names or [])}) nor tagged "
                        f"with its auto-discovery tags ({', '.join(tags or [])})",
                        fix="tag the group with "
                        + ", ".join(tags or list(CA_DISCOVERY_TAGS))
                        + " (propagate_at_launch false), or list it in cluster-autoscaler's autoscalingGroups",
                    )
                )
        if offer.kind == NODE_POOL and not offer.scaled_by_eks and not karpenter:
            findings.append(
                Finding(
                    CHECK,
                    offer.urn,
                    needs=f"Karpenter's controller to launch the nodes of {offer.describe()}",
                    missing="no karpenter Helm release or Deployment in the plan (the karpenter-crd chart installs "
                    "only the CRDs): the NodePool never gets a node",
                    fix="deploy the karpenter chart (oci://public.ecr.aws/karpenter/karpenter) with the cluster's "
                    "settings, or enable EKS Auto Mode",
                )
            )
    return findings


def _static(offer: NodeOffer) -> bool:
    """Capacity that is there without an autoscaler."""
    if offer.kind in (NODE_GROUP, AUTOSCALING_GROUP):
        return offer.min_nodes is None or offer.min_nodes >= 1
    return offer.kind in (EC2_INSTANCE, FARGATE)


def _home_findings(resources: Sequence[Mapping[str, Any]], offers: Sequence[NodeOffer]) -> list[Finding]:
    if not any(r.get("type") == EKS_CLUSTER_TYPE for r in resources) or _auto_mode(resources):
        return []
    shapes: list[NodeShape] = [s for o in offers if _static(o) for s in o.shapes()]
    findings = []
    for controller in [*controllers(resources, ("karpenter",)), *controllers(resources, ("cluster-autoscaler",))]:
        verdicts = [shape.admits(controller.placement) for shape in shapes]
        if any_of(v for v, _ in verdicts) is not False:
            continue
        reasons = "; ".join(
            f"{shape.describe()}: {', '.join(r.text for r in refusals)}"
            for shape, (_, refusals) in zip(shapes, verdicts, strict=True)
        )
        findings.append(
            Finding(
                CHECK,
                controller.urn,
                needs=f"an always-present node for {controller.name}'s own pods (it adds nodes only for others)",
                missing="no node group with min size >= 1, joined instance or Fargate profile takes them"
                + (f": {reasons}" if reasons else ""),
                fix="give the cluster a node group of min size >= 1 whose labels and taints suit the controller "
                "(its nodeSelector and tolerations in the chart values), or a Fargate profile for its namespace",
            )
        )
    return findings


def metric_servers(resources: Sequence[Mapping[str, Any]]) -> dict[str, list[str]]:
    """For each metrics API, the URNs of what serves it in the plan."""
    served: dict[str, list[str]] = {api: [] for api in METRIC_SERVERS}
    for api, names in METRIC_SERVERS.items():
        served[api] += [c.urn for c in controllers(resources, names)]
    for resource in resources:
        props = _inputs(resource)
        if resource.get("type") == ADDON_TYPE and value_at(props, "addonName") == "metrics-server":
            served[RESOURCE_METRICS].append(str(resource.get("urn")))
        if resource.get("type") in API_SERVICE_TYPES:
            # An APIService is named <version>.<group>, e.g. v1beta1.custom.metrics.k8s.io.
            name = str(known(value_at(props, "metadata", "name")) or "")
            group = known(value_at(props, "spec", "group")) or name.split(".", 1)[-1]
            if group in served:
                served[str(group)].append(str(resource.get("urn")))
    return served


def hpa_metrics(props: Mapping[str, Any]) -> list[Mapping[str, Any]] | None:
    """An HPA's metrics; CPU at 80% when it names none (as the API server defaults it); None when not known."""
    target = value_at(props, "spec", "targetCPUUtilizationPercentage")
    metrics = value_at(props, "spec", "metrics")
    if is_unknown(metrics):
        return None
    if metrics is None or (target is not None and not as_list(metrics)):
        return [{"type": "Resource", "resource": {"name": "cpu", "target": {"type": "Utilization"}}}]
    return [as_mapping(m) for m in as_list(metrics)]


ScaleTarget = tuple[str, str, str | None]
"""(kind, name, namespace) of a workload an HPA may scale."""


def scale_targets(resources: Sequence[Mapping[str, Any]]) -> dict[ScaleTarget, Mapping[str, Any]]:
    """The workloads of the plan by kind, name and namespace (those whose name is known)."""
    targets: dict[ScaleTarget, Mapping[str, Any]] = {}
    for resource in resources:
        type_ = str(resource.get("type"))
        name = known(value_at(_inputs(resource), "metadata", "name"))
        if type_ in POD_SPEC_PATHS and isinstance(name, str):
            namespace = known(value_at(_inputs(resource), "metadata", "namespace"))
            targets.setdefault((type_.rsplit(":", 1)[-1], name, namespace), resource)
    return targets


def _target(props: Mapping[str, Any], targets: Mapping[ScaleTarget, Mapping[str, Any]]) -> Mapping[str, Any] | None:
    kind = known(value_at(props, "spec", "scaleTargetRef", "kind"))
    name = known(value_at(props, "spec", "scaleTargetRef", "name"))
    return targets.get((str(kind), str(name), known(value_at(props, "metadata", "namespace"))))


def _missing_requests(metric: Mapping[str, Any], target: Mapping[str, Any]) -> list[str]:
    """Containers of the HPA's target without a request for a Utilization metric's resource."""
    source = (
        value_at(metric, "resource")
        if value_at(metric, "type") == "Resource"
        else value_at(metric, "containerResource")
    )
    resource = known(value_at(as_mapping(source), "name"))
    if value_at(as_mapping(source), "target", "type") != "Utilization":
        return []
    if not isinstance(resource, str):
        return []
    pod = value_at(_inputs(target), *POD_SPEC_PATHS[str(target.get("type"))])
    if is_unknown(pod):
        return []
    only = known(value_at(as_mapping(source), "container")) if value_at(metric, "type") == "ContainerResource" else None
    missing = []
    for container in as_list(value_at(as_mapping(pod), "containers")):
        container = as_mapping(container)
        name = value_at(container, "name")
        if only is not None and name != only:
            continue
        if is_unknown(value_at(container, "resources")) or is_unknown(value_at(container, "resources", "requests")):
            continue
        if resource not in container_requests(container):
            missing.append(str(name))
    return missing


def _hpa_findings(resources: Sequence[Mapping[str, Any]]) -> list[Finding]:
    served = metric_servers(resources)
    targets = scale_targets(resources)
    findings = []
    for resource in resources:
        if resource.get("type") not in HPA_TYPES:
            continue
        props, urn = _inputs(resource), str(resource.get("urn"))
        metrics = hpa_metrics(props)
        target = _target(props, targets)
        for metric in metrics or []:
            kind = value_at(metric, "type")
            api = METRIC_APIS.get(str(kind))
            if api is None:
                continue
            what = _metric_name(metric)
            if not served[api]:
                findings.append(
                    Finding(
                        CHECK,
                        urn,
                        needs=f"the {api} API for its {kind} metric {what}",
                        missing=f"nothing in the plan serves {api}: the autoscaler reports FailedGetMetrics and "
                        "never scales",
                        fix=METRIC_SERVER_FIX[api],
                    )
                )
            missing = _missing_requests(metric, target) if target is not None else []
            if missing:
                findings.append(
                    Finding(
                        CHECK,
                        urn,
                        needs=f"a {what} request on every container of {target['name'] if target else '?'} "
                        "for its Utilization target",
                        missing=f"containers {', '.join(missing)} request no {what}: utilization cannot be computed",
                        fix=f"set resources.requests.{what} on those containers, or target an AverageValue instead",
                    )
                )
    return findings


def _metric_name(metric: Mapping[str, Any]) -> str:
    for key in ("resource", "containerResource"):
        name = value_at(metric, key, "name")
        if name is not None:
            return str(name)
    for key in ("pods", "object", "external"):
        name = value_at(metric, key, "metric", "name")
        if name is not None:
            return str(name)
    return "?"


def check_capacity(resources: Sequence[Mapping[str, Any]]) -> list[Finding]:
    """Node sources that can sit at zero have a scaler, the scaler has a node, and every HPA's metrics a source."""
    offers = node_offers(resources)
    return [*_zero_node_findings(resources, offers), *_home_findings(resources, offers), *_hpa_findings(resources)]
