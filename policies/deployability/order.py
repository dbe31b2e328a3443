"""Order: every Kubernetes object is created after what it needs to exist, as the engine will create them.

A custom object (a PodMonitor, a NodePool, a TrainJob, ...) needs its CRD: a CustomResourceDefinition in the plan, or
a Helm release of a chart known to ship it (KNOWN_CRD_CHARTS). A namespaced object needs its namespace: a Namespace in
the plan, a Helm release that creates it, or one every EKS cluster has. "Needs" means the plan creates the thing and
the object waits for it, through its dependencies or its parents' (see PlanGraph.waits_for); otherwise the first `up`
fails with "no matches for kind" or "namespace not found", or passes only when the engine happens to run them in order.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from modelplane.policies.deployability.findings import Finding
from modelplane.policies.deployability.graph import (
    CRD_TYPES,
    HelmRelease,
    KubernetesKind,
    PlanGraph,
    PlannedResource,
    describe,
    has_unknown,
    inputs,
    kubernetes_kind,
    metadata,
)
from modelplane.policies.deployability.quantities import is_unknown, value_at

CHECK = "order"

BUILTIN_API_GROUPS = frozenset(
    {
        "",
        "admissionregistration.k8s.io",
        "apiextensions.k8s.io",
        "apiregistration.k8s.io",
        "apps",
        "authentication.k8s.io",
        "authorization.k8s.io",
        "autoscaling",
        "batch",
        "certificates.k8s.io",
        "coordination.k8s.io",
        "discovery.k8s.io",
        "events.k8s.io",
        "flowcontrol.apiserver.k8s.io",
        "internal.apiserver.k8s.io",
        "networking.k8s.io",
        "node.k8s.io",
        "policy",
        "rbac.authorization.k8s.io",
        "resource.k8s.io",
        "scheduling.k8s.io",
        "storage.k8s.io",
        "storagemigration.k8s.io",
    }
)
"""API groups the API server serves itself; an object of any other group is a custom resource."""

EKS_API_GROUPS = frozenset({"crd.k8s.amazonaws.com", "vpcresources.k8s.aws", "networking.k8s.aws"})
"""Custom groups whose CRDs every EKS cluster has (VPC CNI's ENIConfig and PolicyEndpoint, the VPC resource
controller's SecurityGroupPolicy): nothing in the plan needs to install them."""

KNOWN_CRD_CHARTS: Mapping[str, frozenset[str]] = {
    "monitoring.coreos.com": frozenset({"kube-prometheus-stack", "prometheus-operator-crds"}),
    "trainer.kubeflow.org": frozenset({"kubeflow-trainer"}),
    "karpenter.sh": frozenset({"karpenter", "karpenter-crd"}),
    "karpenter.k8s.aws": frozenset({"karpenter", "karpenter-crd"}),
    "kueue.x-k8s.io": frozenset({"kueue"}),
    "jobset.x-k8s.io": frozenset({"jobset", "kubeflow-trainer"}),
}
"""API group -> the Helm charts (by name) that install its CRDs."""

CRD_SWITCHES: Mapping[tuple[str, str], tuple[str, ...]] = {
    ("kube-prometheus-stack", "monitoring.coreos.com"): ("crds", "enabled"),
    ("kubeflow-trainer", "jobset.x-k8s.io"): ("jobset", "install"),
}
"""(chart, group) -> the values path that, set to false, leaves that group's CRDs out of the chart."""

CRDS_DIRECTORY_CHARTS = frozenset({"karpenter", "kube-prometheus-stack"})
"""Charts that keep their CRDs in a crds/ directory, which a release with skipCrds does not install."""

CONVENTIONAL_NAMESPACES = frozenset({"default", "kube-system", "kube-public", "kube-node-lease"})
"""Namespaces every cluster has."""

CLUSTER_SCOPED_KINDS = frozenset(
    {
        ("", "Namespace"),
        ("", "Node"),
        ("", "PersistentVolume"),
        ("", "ComponentStatus"),
        ("admissionregistration.k8s.io", "MutatingWebhookConfiguration"),
        ("admissionregistration.k8s.io", "ValidatingWebhookConfiguration"),
        ("admissionregistration.k8s.io", "ValidatingAdmissionPolicy"),
        ("admissionregistration.k8s.io", "ValidatingAdmissionPolicyBinding"),
        ("apiextensions.k8s.io", "CustomResourceDefinition"),
        ("apiregistration.k8s.io", "APIService"),
        ("certificates.k8s.io", "CertificateSigningRequest"),
        ("flowcontrol.apiserver.k8s.io", "FlowSchema"),
        ("flowcontrol.apiserver.k8s.io", "PriorityLevelConfiguration"),
        ("networking.k8s.io", "IngressClass"),
        ("networking.k8s.io", "IPAddress"),
        ("networking.k8s.io", "ServiceCIDR"),
        ("node.k8s.io", "RuntimeClass"),
        ("rbac.authorization.k8s.io", "ClusterRole"),
        ("rbac.authorization.k8s.io", "ClusterRoleBinding"),
        ("resource.k8s.io", "DeviceClass"),
        ("resource.k8s.io", "ResourceSlice"),
        ("scheduling.k8s.io", "PriorityClass"),
        ("storage.k8s.io", "StorageClass"),
        ("storage.k8s.io", "CSIDriver"),
        ("storage.k8s.io", "CSINode"),
        ("storage.k8s.io", "VolumeAttachment"),
        ("storage.k8s.io", "VolumeAttributesClass"),
        ("trainer.kubeflow.org", "ClusterTrainingRuntime"),
        ("karpenter.sh", "NodePool"),
        ("karpenter.sh", "NodeClaim"),
        ("karpenter.k8s.aws", "EC2NodeClass"),
        ("kueue.x-k8s.io", "ClusterQueue"),
        ("kueue.x-k8s.io", "Cohort"),
        ("kueue.x-k8s.io", "ResourceFlavor"),
        ("kueue.x-k8s.io", "WorkloadPriorityClass"),
        ("kueue.x-k8s.io", "AdmissionCheck"),
        ("kueue.x-k8s.io", "Topology"),
        ("kueue.x-k8s.io", "MultiKueueCluster"),
        ("kueue.x-k8s.io", "MultiKueueConfig"),
        ("kueue.x-k8s.io", "ProvisioningRequestConfig"),
        ("nvidia.com", "ClusterPolicy"),
        ("vpcresources.k8s.aws", "CNINode"),
        ("crd.k8s.amazonaws.com", "ENIConfig"),
    }
)
"""(group, kind) of the kinds that live outside any namespace; a CRD in the plan says so for its own kinds."""


def is_custom_group(group: str) -> bool:
    return group not in BUILTIN_API_GROUPS


def _crd_definition(resource: PlannedResource) -> tuple[Any, Any, Any]:
    """(group, kind, scope) a CustomResourceDefinition defines, each possibly unknown or None."""
    spec = value_at(inputs(resource), "spec")
    return value_at(spec, "group"), value_at(spec, "names", "kind"), value_at(spec, "scope")


class _Installers:
    """What in the plan installs which CRDs."""

    def __init__(self, graph: PlanGraph):
        self.crds = [r for r in graph.resources if r.get("type") in CRD_TYPES]
        self.releases = graph.helm_releases

    def scope_of(self, kind: KubernetesKind) -> str:
        """'Cluster' or 'Namespaced': as a CRD in the plan declares it, else as CLUSTER_SCOPED_KINDS says."""
        for crd in self.crds:
            group, crd_kind, scope = _crd_definition(crd)
            if (group, crd_kind) == (kind.group, kind.kind) and isinstance(scope, str) and not is_unknown(scope):
                return scope
        return "Cluster" if (kind.group, kind.kind) in CLUSTER_SCOPED_KINDS else "Namespaced"

    def _release_installs(self, release: HelmRelease, group: str) -> bool | None:
        """Whether the release installs `group`'s CRDs; None when that depends on a value not yet known."""
        if release.chart is None:
            return None
        if release.chart not in KNOWN_CRD_CHARTS.get(group, frozenset()):
            return False
        if release.chart in CRDS_DIRECTORY_CHARTS:
            if release.skip_crds is None:
                return None
            if release.skip_crds:
                return False
        switch = CRD_SWITCHES.get((release.chart, group))
        if switch is not None:
            if is_unknown(release.values):
                return None
            value = value_at(release.values, *switch)
            if is_unknown(value):
                return None
            if value is False:
                return False
        return True

    def of(self, kind: KubernetesKind) -> tuple[list[str], list[str]]:
        """(URNs that install `kind`'s CRD, URNs that might: their chart, values or definition are not known)."""
        sure: list[str] = []
        maybe: list[str] = []
        for crd in self.crds:
            group, crd_kind, _ = _crd_definition(crd)
            if has_unknown([group, crd_kind]):
                maybe.append(str(crd["urn"]))
            elif (group, crd_kind) == (kind.group, kind.kind):
                sure.append(str(crd["urn"]))
        for release in self.releases:
            installs = self._release_installs(release, kind.group)
            if installs is None:
                maybe.append(release.urn)
            elif installs:
                sure.append(release.urn)
        return sure, maybe


def _crd_finding(
    graph: PlanGraph, resource: PlannedResource, kind: KubernetesKind, installers: _Installers
) -> Finding | None:
    urn = str(resource["urn"])
    sure, maybe = installers.of(kind)
    waits = graph.waits_for(urn)
    if any(installer in waits for installer in (*sure, *maybe)):
        return None
    needs = f"the {kind.kind} CRD of {kind.group} installed before it"
    charts = " or ".join(sorted(KNOWN_CRD_CHARTS.get(kind.group, ()))) or "the chart that ships it"
    if sure:
        names = ", ".join(describe(graph.by_urn[u]) for u in sure)
        first = graph.by_urn[sure[0]].get("name")
        return Finding(
            CHECK,
            urn,
            needs,
            f"it does not wait, through its dependencies or its parents', for {names}",
            f"add depends_on=[{first}] to it or to its parent component",
        )
    missing = (
        f"nothing in the plan installs it: no CustomResourceDefinition of {kind.group}/{kind.kind} "
        f"and no Helm release of {charts}"
    )
    if maybe:
        missing += f" it waits for (not yet known: {', '.join(describe(graph.by_urn[u]) for u in maybe)})"
    return Finding(
        CHECK,
        urn,
        needs,
        missing,
        f"install the CRD in the stack (a Helm release of {charts}, or a CustomResourceDefinition) "
        f"and make {resource.get('name')} depend on it",
    )


def _namespace_finding(graph: PlanGraph, urn: str, namespace: str) -> Finding | None:
    if namespace in CONVENTIONAL_NAMESPACES:
        return None
    creator = graph.namespaces.get(namespace)
    creators = [str(creator["urn"])] if creator is not None else []
    if not creators:
        creators = [r.urn for r in graph.helm_releases if r.create_namespace and r.namespace == namespace]
    creators = [c for c in creators if c != urn]
    name = graph.by_urn[urn].get("name")
    if not creators:
        if graph.unknown_namespace_names or any(
            r.create_namespace and r.namespace is None for r in graph.helm_releases
        ):
            return None
        return Finding(
            CHECK,
            urn,
            f"namespace {namespace}",
            f"the plan creates no Namespace named {namespace} (nor a Helm release with createNamespace), "
            f"and it is not one every cluster has ({', '.join(sorted(CONVENTIONAL_NAMESPACES))})",
            f"add a kubernetes:core/v1:Namespace named {namespace} and make {name} depend on it, "
            "or put it in a namespace the plan creates",
        )
    if any(c in graph.waits_for(urn) for c in creators):
        return None
    first = graph.by_urn[creators[0]]
    return Finding(
        CHECK,
        urn,
        f"namespace {namespace} created before it",
        f"it does not wait, through its dependencies or its parents', for {describe(first)}",
        f"add depends_on=[{first.get('name')}] to it or to its parent component",
    )


def check_order(resources: Sequence[PlannedResource]) -> list[Finding]:
    """Custom objects that do not wait for their CRD, and namespaced objects (Helm releases included) whose namespace
    the plan does not create or that do not wait for it."""
    graph = PlanGraph(resources)
    installers = _Installers(graph)
    releases = {release.urn: release for release in graph.helm_releases}
    findings: list[Finding | None] = []
    for resource in graph.resources:
        urn = str(resource.get("urn"))
        if urn in releases:
            release = releases[urn]
            if release.namespace is not None and not release.create_namespace:
                findings.append(_namespace_finding(graph, urn, release.namespace))
            continue
        kind = kubernetes_kind(resource)
        if kind is None:
            continue
        if is_custom_group(kind.group) and kind.group not in EKS_API_GROUPS:
            findings.append(_crd_finding(graph, resource, kind, installers))
        namespace = metadata(resource, "namespace")
        if installers.scope_of(kind) == "Namespaced" and isinstance(namespace, str) and not is_unknown(namespace):
            findings.append(_namespace_finding(graph, urn, namespace))
    return [finding for finding in findings if finding is not None]
