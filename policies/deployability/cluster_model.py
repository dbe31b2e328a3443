"""A model of the cluster a plan would build: the nodes it can have, the device plugins on them, and the pods it runs.

Built from the planned resources of any program, modelplane's components or hand-written pulumi_aws and
pulumi_kubernetes resources alike:

- `NodeOffer`: a source of nodes (an EKS node group, a Karpenter NodePool, an Auto Scaling group, a plain EC2
  instance that joins a cluster, a Fargate profile) with its instance types, the labels and taints its nodes carry
  and how many nodes it may have. `NodeShape` is one instance type of an offer, with that type's figures
  (`instance_figures`) and the labels that follow from it (instance type, architecture).
- `DevicePlugin`: a Helm release or DaemonSet that advertises an extended resource (nvidia.com/gpu,
  vpc.amazonaws.com/efa) on the nodes its pods run on.
- `PodTemplate`: the pods of one workload (Deployment, StatefulSet, ReplicaSet, DaemonSet, Job, CronJob, Pod,
  Kubeflow TrainJob and PyTorchJob, JobSet) with what each pod requests, where it may be scheduled and how many
  must run at once.

Questions about placement answer True, False or None: None where a value the answer needs is not known yet (or
not in the plan at all), so a check reports only what the plan proves.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from dataclasses import field as dataclass_field
from functools import cached_property
from typing import Any

from modelplane.policies.deployability.instance_figures import (
    SYSTEM_RESERVE,
    InstanceFigures,
    SystemReserve,
    instance_figures,
)
from modelplane.policies.deployability.placement import (
    NodeLabels,
    NodeSelectorTerm,
    Placement,
    Refusal,
    Requirement,
    Taint,
    Toleration,
    Verdict,
    affinity_terms,
    all_of,
    placement_of,
    requirement_of,
    selector_requirements,
    taint_of,
    text_of,
    tolerations_of,
)
from modelplane.policies.deployability.quantities import (
    PLAN_UNKNOWN,
    as_list,
    as_mapping,
    chart_name,
    is_unknown,
    known,
    quantity,
    value_at,
    whole_number,
)
from modelplane.terms.scheduling import EFA_RESOURCE, GPU_PRESENT_LABEL, GPU_RESOURCE, GPU_TAINT_KEY

PlannedResource = Mapping[str, Any]
"""One resource as plan.json records it: urn, type, name, parent, inputs, dependencies."""

NODE_GROUP_TYPE = "aws:eks/nodeGroup:NodeGroup"
LAUNCH_TEMPLATE_TYPE = "aws:ec2/launchTemplate:LaunchTemplate"
LAUNCH_CONFIGURATION_TYPE = "aws:ec2/launchConfiguration:LaunchConfiguration"
AUTOSCALING_GROUP_TYPE = "aws:autoscaling/group:Group"
INSTANCE_TYPE = "aws:ec2/instance:Instance"
FARGATE_PROFILE_TYPE = "aws:eks/fargateProfile:FargateProfile"
EKS_CLUSTER_TYPE = "aws:eks/cluster:Cluster"
NODE_POOL_TYPES = frozenset({"kubernetes:karpenter.sh/v1:NodePool", "kubernetes:karpenter.sh/v1beta1:NodePool"})
NODE_CLASS_TYPES = frozenset(
    {"kubernetes:karpenter.k8s.aws/v1:EC2NodeClass", "kubernetes:karpenter.k8s.aws/v1beta1:EC2NodeClass"}
)
HELM_RELEASE_TYPES = frozenset({"kubernetes:helm.sh/v3:Release", "kubernetes:helm.sh/v4:Chart"})
DAEMON_SET_TYPE = "kubernetes:apps/v1:DaemonSet"
POD_SPEC_PATHS: dict[str, tuple[str, ...]] = {
    "kubernetes:apps/v1:Deployment": ("spec", "template", "spec"),
    "kubernetes:apps/v1:StatefulSet": ("spec", "template", "spec"),
    "kubernetes:apps/v1:ReplicaSet": ("spec", "template", "spec"),
    DAEMON_SET_TYPE: ("spec", "template", "spec"),
    "kubernetes:batch/v1:Job": ("spec", "template", "spec"),
    "kubernetes:batch/v1:CronJob": ("spec", "jobTemplate", "spec", "template", "spec"),
    "kubernetes:core/v1:Pod": ("spec",),
}
TRAIN_JOB_TYPE = "kubernetes:trainer.kubeflow.org/v1alpha1:TrainJob"
TRAINING_RUNTIME_TYPES = frozenset(
    {
        "kubernetes:trainer.kubeflow.org/v1alpha1:ClusterTrainingRuntime",
        "kubernetes:trainer.kubeflow.org/v1alpha1:TrainingRuntime",
    }
)
PYTORCH_JOB_TYPE = "kubernetes:kubeflow.org/v1:PyTorchJob"
JOB_SET_TYPES = frozenset({"kubernetes:jobset.x-k8s.io/v1alpha2:JobSet"})
HPA_TYPES = frozenset(
    {
        "kubernetes:autoscaling/v1:HorizontalPodAutoscaler",
        "kubernetes:autoscaling/v2:HorizontalPodAutoscaler",
        "kubernetes:autoscaling/v2beta2:HorizontalPodAutoscaler",
        "kubernetes:autoscaling/v2beta1:HorizontalPodAutoscaler",
    }
)

INSTANCE_TYPE_LABEL = "node.kubernetes.io/instance-type"
ARCH_LABEL = "kubernetes.io/arch"
TRAINER_NODE_JOB = "node"
TRAINER_STEP_LABEL = "trainer.kubeflow.org/trainjob-ancestor-step"
DISCOVERY_CHARTS = frozenset({"node-feature-discovery", "gpu-feature-discovery", "gpu-operator"})
DISCOVERED_PREFIXES = ("feature.node.kubernetes.io/", "nvidia.com/")
"""Label prefixes node-feature-discovery, GPU feature discovery and the GPU operator set on nodes they find."""
EKS_BOOTSTRAP_MARKERS = ("nodeadm", "bootstrap.sh", "/etc/eks/", "node.eks.aws")
"""Text in user data that joins an instance to an EKS cluster."""


def _name(resource: PlannedResource) -> str:
    return str(resource.get("name") or resource.get("urn") or "?")


def _inputs(resource: PlannedResource) -> Mapping[str, Any]:
    return as_mapping(resource.get("inputs"))


def _metadata_name(resource: PlannedResource) -> str | None:
    name = value_at(_inputs(resource), "metadata", "name")
    return name if isinstance(name, str) and not is_unknown(name) else None


NODE_GROUP, NODE_POOL, AUTOSCALING_GROUP, EC2_INSTANCE, FARGATE = (
    "EKS node group",
    "Karpenter NodePool",
    "Auto Scaling group",
    "EC2 instance",
    "Fargate profile",
)


@dataclass(frozen=True)
class NodeOffer:
    """A source of nodes and what its nodes look like."""

    urn: str
    kind: str
    """NODE_GROUP, NODE_POOL, AUTOSCALING_GROUP, EC2_INSTANCE or FARGATE."""
    name: str
    instance_types: tuple[str, ...] | None
    """None where not known (or, for a NodePool, not pinned by a node.kubernetes.io/instance-type In requirement)."""
    labels: NodeLabels
    taints: tuple[Taint, ...] | None
    """None where not known."""
    more_taints: bool = False
    """Its nodes may carry taints besides `taints` (self-managed nodes taint themselves from their user data)."""
    min_nodes: int | None = None
    max_nodes: int | None = None
    """Node groups and Auto Scaling groups: their max size; None where not known or (NodePools) set by limits."""
    limits: Mapping[str, float] | None = None
    """A NodePool's spec.limits in base units (cores, bytes, devices); None when it has none."""
    builtin_resources: frozenset[str] = frozenset()
    """Extended resources the node image advertises itself (Bottlerocket's NVIDIA variants, EKS Auto Mode)."""
    namespaces: frozenset[str] | None = None
    """A Fargate profile: the namespaces whose pods it runs."""
    scaled_by_eks: bool = False
    """An EKS Auto Mode NodePool: EKS runs its Karpenter."""

    def describe(self) -> str:
        return f"{self.kind} {self.name}"

    def max_nodes_of(self, figures: InstanceFigures | None) -> int | None:
        """The most nodes of this type the offer may have; None where not known or not bounded."""
        if self.kind != NODE_POOL:
            return self.max_nodes
        if figures is None or not self.limits:
            return None
        capacity = {
            "cpu": float(figures.vcpus),
            "memory": figures.memory_gib * 2.0**30,
            GPU_RESOURCE: float(figures.gpus),
            EFA_RESOURCE: float(figures.efa_interfaces),
        }
        bounds = [int(limit // capacity[r] + 1e-9) for r, limit in self.limits.items() if capacity.get(r)]
        # A limit on a resource the type does not have (nvidia.com/gpu on a CPU type) never stops a launch.
        return min(bounds) if bounds else None

    def shapes(self) -> list[NodeShape]:
        if self.kind == FARGATE:
            return [NodeShape(self, None, None, self.labels, None)]
        if self.instance_types is None:
            labels = self.labels.with_values({INSTANCE_TYPE_LABEL: None, ARCH_LABEL: None})
            return [NodeShape(self, None, None, labels, self.max_nodes if self.kind != NODE_POOL else None)]
        shapes = []
        for instance_type in self.instance_types:
            figures = instance_figures(instance_type)
            extra: dict[str, frozenset[str] | None] = {
                INSTANCE_TYPE_LABEL: frozenset({instance_type}),
                "beta.kubernetes.io/instance-type": frozenset({instance_type}),
                ARCH_LABEL: frozenset({figures.architecture}) if figures else None,
                "beta.kubernetes.io/arch": frozenset({figures.architecture}) if figures else None,
            }
            if self.kind == NODE_POOL:
                family, _, size = instance_type.partition(".")
                extra["karpenter.k8s.aws/instance-family"] = frozenset({family})
                extra["karpenter.k8s.aws/instance-size"] = frozenset({size})
                if figures is not None:
                    extra["karpenter.k8s.aws/instance-gpu-count"] = frozenset({str(figures.gpus)})
                    extra["karpenter.k8s.aws/instance-cpu"] = frozenset({str(figures.vcpus)})
            shapes.append(
                NodeShape(self, instance_type, figures, self.labels.with_values(extra), self.max_nodes_of(figures))
            )
        return shapes


@dataclass(frozen=True)
class NodeShape:
    """The nodes of one instance type an offer may launch."""

    offer: NodeOffer
    instance_type: str | None
    figures: InstanceFigures | None
    labels: NodeLabels
    max_nodes: int | None
    """None where not known or not bounded."""

    def describe(self) -> str:
        return f"{self.offer.describe()} ({self.instance_type})" if self.instance_type else self.offer.describe()

    def admits(self, placement: Placement) -> tuple[Verdict, list[Refusal]]:
        """Whether a pod placed so may run on these nodes by their labels and taints, and why not."""
        return placement.reasons_against(self.labels, self.offer.taints, self.offer.more_taints)

    def allocatable(self, reserve: SystemReserve = SYSTEM_RESERVE) -> Mapping[str, float] | None:
        """What one node leaves to pods, per resource; None where the instance type is not known."""
        return None if self.figures is None else reserve.allocatable(self.figures)

    def hardware_has(self, resource: str) -> Verdict:
        """Whether the node's hardware holds any of an extended resource."""
        if self.offer.kind == FARGATE:
            return False
        if self.figures is None:
            return None
        count = self.figures.devices(resource)
        return None if count is None else count > 0


class ResourceIndex:
    """The planned resources with the look-ups the model makes, built once so the model stays linear in the plan."""

    def __init__(self, resources: Iterable[PlannedResource]):
        self.resources: list[PlannedResource] = list(resources)
        self.by_urn: dict[str, PlannedResource] = {str(r.get("urn")): r for r in self.resources}
        self.launch_templates = [r for r in self.resources if r.get("type") == LAUNCH_TEMPLATE_TYPE]
        self.by_kind_and_name: dict[tuple[str, str], PlannedResource] = {}
        for resource in self.resources:
            name = _metadata_name(resource)
            if name is not None:
                self.by_kind_and_name.setdefault((str(resource.get("type")).rsplit(":", 1)[-1], name), resource)


Resources = Sequence[PlannedResource] | ResourceIndex
"""The planned resources, or their index where a caller has built it already."""


def index_of(resources: Resources) -> ResourceIndex:
    return resources if isinstance(resources, ResourceIndex) else ResourceIndex(resources)


def _dependencies_of_type(
    resource: PlannedResource, by_urn: Mapping[str, PlannedResource], types: Iterable[str]
) -> list[PlannedResource]:
    wanted = set(types)
    found = [by_urn[str(d)] for d in as_list(resource.get("dependencies")) if str(d) in by_urn]
    return [r for r in found if r.get("type") in wanted]


def launch_template_of(resource: PlannedResource, reference: Any, resources: Resources) -> PlannedResource | None:
    """The planned launch template a node group or Auto Scaling group uses: the one it depends on (a reference to
    the template's id or name makes the engine record that dependency), or the one named in the reference."""
    reference = as_mapping(reference)
    if not reference:
        return None
    index = index_of(resources)
    depended = _dependencies_of_type(resource, index.by_urn, [LAUNCH_TEMPLATE_TYPE])
    if len(depended) == 1:
        return depended[0]
    candidates = depended or index.launch_templates
    name = value_at(reference, "name") or value_at(reference, "launchTemplateName")
    ident = value_at(reference, "id") or value_at(reference, "launchTemplateId")
    for template in candidates:
        template_name = value_at(_inputs(template), "name")
        if isinstance(name, str) and not is_unknown(name) and template_name == name:
            return template
        if (
            isinstance(ident, str)
            and not is_unknown(ident)
            and ident in (template.get("id"), value_at(_inputs(template), "id"))
        ):
            return template
    return None


def _instance_types(raw: Any) -> tuple[str, ...] | None:
    if raw is None or is_unknown(raw) or any(t is None or is_unknown(t) for t in as_list(raw)):
        return None
    types = tuple(str(t) for t in as_list(raw))
    return types or None


def _label_values(labels: Any) -> dict[str, frozenset[str] | None] | None:
    if is_unknown(labels):
        return None
    return {
        str(k): (None if text_of(v) is None else frozenset({str(text_of(v))})) for k, v in as_mapping(labels).items()
    }


def _taints(raw: Any) -> tuple[Taint, ...] | None:
    if is_unknown(raw):
        return None
    return tuple(taint_of(t) for t in as_list(raw))


def _node_group_offer(resource: PlannedResource, index: ResourceIndex, maybe: tuple[str, ...]) -> NodeOffer:
    props = _inputs(resource)
    types = _instance_types(value_at(props, "instanceTypes"))
    if types is None and value_at(props, "instanceTypes") is None:
        template = launch_template_of(resource, value_at(props, "launchTemplate"), index)
        if template is not None:
            types = _instance_types(
                [value_at(_inputs(template), "instanceType")] if value_at(_inputs(template), "instanceType") else None
            )
    labels = _label_values(value_at(props, "labels"))
    group_name = known(value_at(props, "nodeGroupName"))
    capacity = known(value_at(props, "capacityType"))
    well_known: dict[str, frozenset[str] | None] = {
        "kubernetes.io/os": frozenset({"linux"}),
        "eks.amazonaws.com/nodegroup": frozenset({group_name}) if isinstance(group_name, str) else None,
        "eks.amazonaws.com/capacityType": frozenset({str(capacity or "ON_DEMAND")}),
    }
    ami_type = known(value_at(props, "amiType"))
    builtin = (
        frozenset({GPU_RESOURCE})
        if isinstance(ami_type, str) and ami_type.startswith("BOTTLEROCKET") and "NVIDIA" in ami_type
        else frozenset()
    )
    return NodeOffer(
        urn=str(resource.get("urn")),
        kind=NODE_GROUP,
        name=_name(resource),
        instance_types=types,
        labels=NodeLabels({**well_known, **(labels or {})}, maybe, open=labels is None),
        taints=_taints(value_at(props, "taints")),
        min_nodes=whole_number(value_at(props, "scalingConfig", "minSize")),
        max_nodes=whole_number(value_at(props, "scalingConfig", "maxSize")),
        builtin_resources=builtin,
    )


def _node_pool_requirements(props: Mapping[str, Any]) -> list[Requirement] | None:
    raw = value_at(props, "spec", "template", "spec", "requirements")
    if is_unknown(raw):
        return None
    requirements = [requirement_of(r) for r in as_list(raw)]
    return [r for r in requirements if r is not None]


def node_pool_instance_types(props: Mapping[str, Any]) -> tuple[str, ...] | None:
    """The instance types a NodePool's node.kubernetes.io/instance-type In requirement pins; None when not pinned."""
    for requirement in _node_pool_requirements(props) or []:
        if requirement.key == INSTANCE_TYPE_LABEL and requirement.operator == "In":
            return requirement.values
    return None


def node_pool_limits(props: Mapping[str, Any]) -> dict[str, float] | None:
    """A NodePool's limits in base units; None when it sets none (or they are not known)."""
    raw = value_at(props, "spec", "limits")
    if raw is None or is_unknown(raw) or not as_mapping(raw):
        return None
    limits = {str(k): quantity(v) for k, v in as_mapping(raw).items()}
    return {k: v for k, v in limits.items() if v is not None}


def _node_class(props: Mapping[str, Any], index: ResourceIndex) -> PlannedResource | None:
    name = known(value_at(props, "spec", "template", "spec", "nodeClassRef", "name"))
    node_class = index.by_kind_and_name.get(("EC2NodeClass", str(name)))
    return node_class if node_class is not None and node_class.get("type") in NODE_CLASS_TYPES else None


def _node_pool_offer(resource: PlannedResource, index: ResourceIndex, maybe: tuple[str, ...]) -> NodeOffer:
    props = _inputs(resource)
    requirements = _node_pool_requirements(props)
    labels = _label_values(value_at(props, "spec", "template", "metadata", "labels"))
    values: dict[str, frozenset[str] | None] = {
        "kubernetes.io/os": frozenset({"linux"}),
        "karpenter.sh/capacity-type": frozenset({"on-demand"}),
        "karpenter.sh/nodepool": frozenset({n}) if (n := _metadata_name(resource)) else None,
    }
    for requirement in requirements or []:
        if requirement.key == INSTANCE_TYPE_LABEL:
            continue
        if requirement.operator == "In":
            values[requirement.key] = None if requirement.values is None else frozenset(requirement.values)
        elif requirement.key not in (labels or {}):
            values[requirement.key] = None
    group = known(value_at(props, "spec", "template", "spec", "nodeClassRef", "group"))
    auto_mode = group == "eks.amazonaws.com"
    node_class = _node_class(props, index)
    aliases = [
        str(value_at(as_mapping(term), "alias"))
        for term in as_list(value_at(_inputs(node_class), "spec", "amiSelectorTerms") if node_class else None)
    ]
    builtin = (
        frozenset({GPU_RESOURCE}) if auto_mode or any(a.startswith("bottlerocket") for a in aliases) else frozenset()
    )
    taints = _taints(value_at(props, "spec", "template", "spec", "taints"))
    return NodeOffer(
        urn=str(resource.get("urn")),
        kind=NODE_POOL,
        name=_name(resource),
        instance_types=node_pool_instance_types(props),
        labels=NodeLabels(
            {**values, **(labels or {})},
            maybe,
            open=labels is None or requirements is None,
        ),
        taints=taints,
        min_nodes=0,
        max_nodes=None,
        limits=node_pool_limits(props),
        builtin_resources=builtin,
        scaled_by_eks=auto_mode,
    )


def asg_tags(props: Mapping[str, Any]) -> dict[str, str] | None:
    """An Auto Scaling group's tags (`tags` or the older `tag` list, or a map); None when not known."""
    raw = value_at(props, "tags")
    if raw is None:
        raw = value_at(props, "tag")
    if is_unknown(raw):
        return None
    if isinstance(raw, Mapping):
        return {str(k): str(v) for k, v in raw.items()}
    tags: dict[str, str] = {}
    for tag in as_list(raw):
        key, value = value_at(as_mapping(tag), "key"), value_at(as_mapping(tag), "value")
        if isinstance(key, str) and not is_unknown(key):
            tags[key] = str(value)
    return tags


def _user_data(props: Mapping[str, Any]) -> str:
    text = ""
    for key in ("userData", "userDataBase64"):
        value = value_at(props, key)
        if not isinstance(value, str) or is_unknown(value):
            continue
        text += value
        with contextlib.suppress(binascii.Error, ValueError):
            text += base64.b64decode(value, validate=True).decode("utf-8", "replace")
    return text


def _joins_cluster(tags: Mapping[str, str] | None, *user_data: str) -> bool:
    keys = tags or {}
    return any(k.startswith(("kubernetes.io/cluster/", "k8s.io/cluster-autoscaler/")) for k in keys) or any(
        marker in text for text in user_data for marker in EKS_BOOTSTRAP_MARKERS
    )


def _autoscaler_template(tags: Mapping[str, str]) -> tuple[dict[str, frozenset[str] | None], tuple[Taint, ...]]:
    """The labels and taints cluster-autoscaler's node-template tags declare."""
    labels: dict[str, frozenset[str] | None] = {}
    taints: list[Taint] = []
    for key, value in tags.items():
        if key.startswith("k8s.io/cluster-autoscaler/node-template/label/"):
            labels[key.rsplit("/label/", 1)[1]] = frozenset({value})
        elif key.startswith("k8s.io/cluster-autoscaler/node-template/taint/"):
            taint_value, _, effect = value.rpartition(":")
            taints.append(Taint(key.rsplit("/taint/", 1)[1], taint_value, effect or None))
    return labels, tuple(taints)


def autoscaling_group_instance_types(resource: PlannedResource, resources: Resources) -> tuple[str, ...] | None:
    """The instance types an Auto Scaling group launches: its mixed-instances overrides, else its launch template's
    or launch configuration's type."""
    props = _inputs(resource)
    overrides = value_at(props, "mixedInstancesPolicy", "launchTemplate", "overrides")
    if is_unknown(overrides):
        return None
    override_types = [value_at(as_mapping(o), "instanceType") for o in as_list(overrides)]
    if override_types and all(isinstance(t, str) for t in override_types):
        return _instance_types(override_types)
    index = index_of(resources)
    template = launch_template_of(resource, value_at(props, "launchTemplate"), index) or launch_template_of(
        resource, value_at(props, "mixedInstancesPolicy", "launchTemplate", "launchTemplateSpecification"), index
    )
    if template is not None:
        return _instance_types(
            [value_at(_inputs(template), "instanceType")] if value_at(_inputs(template), "instanceType") else None
        )
    configurations = _dependencies_of_type(resource, index.by_urn, [LAUNCH_CONFIGURATION_TYPE])
    if len(configurations) == 1:
        instance_type = value_at(_inputs(configurations[0]), "instanceType")
        return _instance_types([instance_type] if instance_type else None)
    return None


def _autoscaling_group_user_data(resource: PlannedResource, index: ResourceIndex) -> str:
    props = _inputs(resource)
    template = launch_template_of(resource, value_at(props, "launchTemplate"), index)
    configurations = _dependencies_of_type(resource, index.by_urn, [LAUNCH_CONFIGURATION_TYPE])
    sources = [template, *configurations]
    return "".join(_user_data(_inputs(s)) for s in sources if s is not None)


def is_cluster_node_group(resource: PlannedResource, resources: Resources) -> bool:
    """An Auto Scaling group whose instances join a Kubernetes cluster (cluster tags, or EKS bootstrap user data)."""
    return _joins_cluster(asg_tags(_inputs(resource)), _autoscaling_group_user_data(resource, index_of(resources)))


def _autoscaling_group_offer(resource: PlannedResource, index: ResourceIndex, maybe: tuple[str, ...]) -> NodeOffer:
    props = _inputs(resource)
    tags = asg_tags(props)
    labels, taints = _autoscaler_template(tags or {})
    # Self-managed nodes label and taint themselves from their user data, which the plan cannot read reliably;
    # cluster-autoscaler's node-template tags name some of them.
    return NodeOffer(
        urn=str(resource.get("urn")),
        kind=AUTOSCALING_GROUP,
        name=_name(resource),
        instance_types=autoscaling_group_instance_types(resource, index),
        labels=NodeLabels({"kubernetes.io/os": frozenset({"linux"}), **labels}, maybe, open=True),
        taints=taints,
        more_taints=True,
        min_nodes=whole_number(value_at(props, "minSize")),
        max_nodes=whole_number(value_at(props, "maxSize")),
    )


def _instance_offer(resource: PlannedResource, maybe: tuple[str, ...]) -> NodeOffer:
    return NodeOffer(
        urn=str(resource.get("urn")),
        kind=EC2_INSTANCE,
        name=_name(resource),
        instance_types=_instance_types([value_at(_inputs(resource), "instanceType")]),
        labels=NodeLabels({"kubernetes.io/os": frozenset({"linux"})}, maybe, open=True),
        taints=None,
        min_nodes=1,
        max_nodes=1,
    )


def _instance_joins_cluster(resource: PlannedResource) -> bool:
    tags = value_at(_inputs(resource), "tags")
    return _joins_cluster({str(k): str(v) for k, v in as_mapping(tags).items()}, _user_data(_inputs(resource)))


def _fargate_offer(resource: PlannedResource) -> NodeOffer:
    selectors = value_at(_inputs(resource), "selectors")
    namespaces = [value_at(as_mapping(s), "namespace") for s in as_list(selectors)]
    known_namespaces = (
        None if is_unknown(selectors) or any(is_unknown(n) for n in namespaces) else frozenset(map(str, namespaces))
    )
    return NodeOffer(
        urn=str(resource.get("urn")),
        kind=FARGATE,
        name=_name(resource),
        instance_types=None,
        labels=NodeLabels({"eks.amazonaws.com/compute-type": frozenset({"fargate"})}, open=True),
        taints=(),
        namespaces=known_namespaces,
    )


def discovered_label_prefixes(resources: Sequence[PlannedResource]) -> tuple[str, ...]:
    """Label prefixes something in the plan sets on nodes by discovery (node-feature-discovery, GPU feature
    discovery, the GPU operator); nodes may carry any label under them."""
    for resource in resources:
        if resource.get("type") in HELM_RELEASE_TYPES:
            props = _inputs(resource)
            chart = chart_name(value_at(props, "chart"))
            values = as_mapping(release_values(props))
            if chart in DISCOVERY_CHARTS or (
                chart == "nvidia-device-plugin"
                and (value_at(values, "gfd", "enabled") is True or value_at(values, "nfd", "enabled") is True)
            ):
                return DISCOVERED_PREFIXES
        if resource.get("type") == DAEMON_SET_TYPE:
            name = _metadata_name(resource) or _name(resource)
            if "feature-discovery" in name:
                return DISCOVERED_PREFIXES
    return ()


def node_offers(resources: Resources) -> list[NodeOffer]:
    """Every source of nodes in the plan."""
    index = index_of(resources)
    maybe = discovered_label_prefixes(index.resources)
    offers: list[NodeOffer] = []
    for resource in index.resources:
        type_ = resource.get("type")
        if type_ == NODE_GROUP_TYPE:
            offers.append(_node_group_offer(resource, index, maybe))
        elif type_ in NODE_POOL_TYPES:
            offers.append(_node_pool_offer(resource, index, maybe))
        elif type_ == AUTOSCALING_GROUP_TYPE and is_cluster_node_group(resource, index):
            offers.append(_autoscaling_group_offer(resource, index, maybe))
        elif type_ == INSTANCE_TYPE and _instance_joins_cluster(resource):
            offers.append(_instance_offer(resource, maybe))
        elif type_ == FARGATE_PROFILE_TYPE:
            offers.append(_fargate_offer(resource))
    return offers


CRITICAL_ADDONS_ONLY = Toleration("CriticalAddonsOnly", "Exists", "", "")
GPU_TAINT_EXISTS = Toleration(GPU_TAINT_KEY, "Exists", "", "NoSchedule")
NVIDIA_CHART_AFFINITY: tuple[NodeSelectorTerm, ...] = (
    (Requirement("feature.node.kubernetes.io/pci-10de.present", "In", ("true",)),),
    (Requirement("feature.node.kubernetes.io/cpu-model.vendor_id", "In", ("NVIDIA",)),),
    (Requirement(GPU_PRESENT_LABEL, "In", ("true",)),),
)
"""The nvidia-device-plugin chart's default affinity: nodes NFD found an NVIDIA device on, or labelled GPU nodes."""
PLUGIN_IMAGES = {
    "efa-k8s-device-plugin": EFA_RESOURCE,
    "k8s-device-plugin": GPU_RESOURCE,
    "nvidia-device-plugin": GPU_RESOURCE,
}
"""Image or DaemonSet name fragments of device plugins deployed without their chart, checked in this order."""


@dataclass(frozen=True)
class DevicePlugin:
    """Something that advertises an extended resource on the nodes its pods run on."""

    urn: str
    name: str
    resource: str
    placement: Placement

    def reasons_against(self, shape: NodeShape) -> tuple[Verdict, list[Refusal]]:
        """Whether the plugin's pod runs on `shape` and finds the device there, and why not where it does not."""
        placed, refusals = shape.admits(self.placement)
        hardware = shape.hardware_has(self.resource)
        if hardware is False:
            refusals = [*refusals, Refusal("hardware", f"{shape.instance_type or 'its node'} has no {self.resource}")]
        return all_of([placed, hardware]), refusals


def release_values(props: Mapping[str, Any]) -> Any:
    """A Helm release's values as planned: PLAN_UNKNOWN when they are not known, or when value files the plan does
    not read add to them."""
    values, files = value_at(props, "values"), value_at(props, "valueYamlFiles")
    if is_unknown(values) or is_unknown(files) or as_list(files):
        return PLAN_UNKNOWN
    return as_mapping(values)


def _release_plugin(resource: PlannedResource) -> DevicePlugin | None:
    props = _inputs(resource)
    chart = chart_name(value_at(props, "chart"))
    values = release_values(props)
    urn, name = str(resource.get("urn")), _name(resource)
    if is_unknown(values):
        placement = Placement(None, None, None)
    else:
        placement = Placement(
            selector_requirements(value_at(values, "nodeSelector")), (), tolerations_of(value_at(values, "tolerations"))
        )
    if chart == "nvidia-device-plugin":
        if not is_unknown(values):
            affinity = value_at(values, "affinity")
            terms = affinity_terms(affinity) if isinstance(affinity, Mapping) and affinity else NVIDIA_CHART_AFFINITY
            raw_tolerations = value_at(values, "tolerations")
            tolerations = (
                (CRITICAL_ADDONS_ONLY, GPU_TAINT_EXISTS) if raw_tolerations is None else tolerations_of(raw_tolerations)
            )
            placement = Placement(placement.selector, terms, tolerations)
        return DevicePlugin(urn, name, GPU_RESOURCE, placement)
    if chart == "aws-efa-k8s-device-plugin":
        # The chart always adds CriticalAddonsOnly to the values' tolerations, and keeps to EFA instance types.
        tolerations = None if placement.tolerations is None else (CRITICAL_ADDONS_ONLY, *placement.tolerations)
        return DevicePlugin(urn, name, EFA_RESOURCE, Placement(placement.selector, placement.affinity, tolerations))
    if chart == "gpu-operator":
        # The operator runs its device plugin on every node it finds an NVIDIA GPU on.
        raw = None if is_unknown(values) else value_at(as_mapping(values), "daemonsets", "tolerations")
        tolerations = (GPU_TAINT_EXISTS,) if raw is None and not is_unknown(values) else tolerations_of(raw)
        return DevicePlugin(urn, name, GPU_RESOURCE, Placement((), (), tolerations))
    return None


def _daemon_set_plugin(resource: PlannedResource) -> DevicePlugin | None:
    raw_pod = value_at(_inputs(resource), *POD_SPEC_PATHS[DAEMON_SET_TYPE])
    pod = as_mapping(raw_pod)
    texts = [_metadata_name(resource) or "", _name(resource)]
    texts += [str(value_at(as_mapping(c), "image") or "") for c in as_list(value_at(pod, "containers"))]
    for fragment, advertised in PLUGIN_IMAGES.items():
        if any(fragment in text for text in texts):
            placement = Placement(None, None, None) if is_unknown(raw_pod) else placement_of(pod)
            return DevicePlugin(str(resource.get("urn")), _name(resource), advertised, placement)
    return None


def device_plugins(resources: Sequence[PlannedResource]) -> list[DevicePlugin]:
    """Every device plugin the plan deploys, from a known chart or as a DaemonSet named or imaged like one."""
    plugins: list[DevicePlugin] = []
    for resource in resources:
        plugin = None
        if resource.get("type") in HELM_RELEASE_TYPES:
            plugin = _release_plugin(resource)
        elif resource.get("type") == DAEMON_SET_TYPE:
            plugin = _daemon_set_plugin(resource)
        if plugin is not None:
            plugins.append(plugin)
    return plugins


@dataclass(frozen=True)
class PodTemplate:
    """The pods of one workload."""

    urn: str
    kind: str
    name: str
    requests: Mapping[str, float]
    """What one pod requests, per resource in base units; requests default to limits; unknown ones left out."""
    placement: Placement
    replicas: int | None
    """How many such pods must run at once; None where not known or (DaemonSets) one per node."""
    namespace: str | None = None
    per_node: bool = False
    """A DaemonSet: one pod on every node it may run on."""
    where: str = ""
    """Where the pod spec sits in the resource's inputs."""

    def describe(self) -> str:
        return f"{self.kind} {self.name}"

    def extended_resources(self) -> dict[str, float]:
        """The extended resources (vendor-domain names such as nvidia.com/gpu) one pod asks for."""
        return {r: n for r, n in self.requests.items() if "/" in r and not r.startswith("kubernetes.io/") and n > 0}


def container_requests(container: Mapping[str, Any]) -> dict[str, float]:
    """One container's requests, each defaulting to its limit where only the limit is set; unknown ones left out."""
    resources = value_at(container, "resources")
    if is_unknown(resources):
        return {}
    requests_raw, limits_raw = value_at(as_mapping(resources), "requests"), value_at(as_mapping(resources), "limits")
    requests: dict[str, float] = {}
    if not is_unknown(limits_raw) and not is_unknown(requests_raw):
        for key, value in as_mapping(limits_raw).items():
            amount = quantity(value)
            if amount is not None:
                requests[str(key)] = amount
    if is_unknown(requests_raw):
        return {}
    for key, value in as_mapping(requests_raw).items():
        amount = quantity(value)
        if amount is None:
            requests.pop(str(key), None)
        else:
            requests[str(key)] = amount
    return requests


def _add(total: dict[str, float], more: Mapping[str, float]) -> None:
    for key, value in more.items():
        total[key] = total.get(key, 0.0) + value


def pod_requests(pod: Mapping[str, Any]) -> dict[str, float]:
    """What a pod requests as the scheduler counts it: its containers and sidecars together, or its largest init
    container (with the sidecars started before it), whichever is more, per resource."""
    running: dict[str, float] = {}
    for container in as_list(value_at(pod, "containers")):
        _add(running, container_requests(as_mapping(container)))
    sidecars: dict[str, float] = {}
    peak: dict[str, float] = {}
    for container in as_list(value_at(pod, "initContainers")):
        requests = container_requests(as_mapping(container))
        if value_at(as_mapping(container), "restartPolicy") == "Always":
            _add(sidecars, requests)
            continue
        for key, value in requests.items():
            peak[key] = max(peak.get(key, 0.0), value + sidecars.get(key, 0.0))
    _add(running, sidecars)
    return {key: max(running.get(key, 0.0), peak.get(key, 0.0)) for key in {*running, *peak}}


def _replicas(value: Any, default: int = 1) -> int | None:
    return default if value is None else whole_number(value)


def _scale_floors(resources: Sequence[PlannedResource]) -> dict[tuple[str, str, str | None], int | None]:
    """(kind, name, namespace) → the HPA's minReplicas, for each workload an HPA scales."""
    floors: dict[tuple[str, str, str | None], int | None] = {}
    for resource in resources:
        if resource.get("type") not in HPA_TYPES:
            continue
        props = _inputs(resource)
        kind, name = (
            known(value_at(props, "spec", "scaleTargetRef", "kind")),
            known(value_at(props, "spec", "scaleTargetRef", "name")),
        )
        if isinstance(kind, str) and isinstance(name, str):
            namespace = known(value_at(props, "metadata", "namespace"))
            floors[(kind, name, namespace)] = _replicas(value_at(props, "spec", "minReplicas"))
    return floors


def _workload_replicas(
    resource: PlannedResource, kind: str, floors: Mapping[tuple[str, str, str | None], int | None]
) -> int | None:
    props = _inputs(resource)
    name, namespace = _metadata_name(resource), known(value_at(props, "metadata", "namespace"))
    if name is not None and (kind, name, namespace) in floors:
        return floors[(kind, name, namespace)]
    if kind in ("Deployment", "StatefulSet", "ReplicaSet"):
        return _replicas(value_at(props, "spec", "replicas"))
    if kind in ("Job", "CronJob"):
        job = value_at(props, "spec") if kind == "Job" else value_at(props, "spec", "jobTemplate", "spec")
        parallelism = _replicas(value_at(as_mapping(job), "parallelism"))
        completions = value_at(as_mapping(job), "completions")
        if parallelism is not None and completions is not None and whole_number(completions) is not None:
            return min(parallelism, whole_number(completions) or 0)
        return parallelism
    return 1


def _runtime_for(props: Mapping[str, Any], index: ResourceIndex) -> PlannedResource | None:
    name = known(value_at(props, "spec", "runtimeRef", "name"))
    kind = known(value_at(props, "spec", "runtimeRef", "kind")) or "ClusterTrainingRuntime"
    runtime = index.by_kind_and_name.get((str(kind), str(name)))
    return runtime if runtime is not None and runtime.get("type") in TRAINING_RUNTIME_TYPES else None


def _is_trainer_job(job: Mapping[str, Any]) -> bool:
    return (
        value_at(job, "name") == TRAINER_NODE_JOB
        or value_at(job, "template", "metadata", "labels", TRAINER_STEP_LABEL) == "trainer"
    )


def _merge_pod(base: Mapping[str, Any], patch: Mapping[str, Any]) -> dict[str, Any]:
    """A pod spec with a TrainJob's patch applied: nodeSelector merged, tolerations appended, affinity replaced."""
    merged = {key: value for key, value in base.items() if key not in ("node_selector",)}
    merged["nodeSelector"] = value_at(base, "nodeSelector")
    selector, old_selector = value_at(patch, "nodeSelector"), value_at(base, "nodeSelector")
    if selector is not None:
        unknown = is_unknown(selector) or is_unknown(old_selector)
        merged["nodeSelector"] = selector if unknown else {**as_mapping(old_selector), **as_mapping(selector)}
    tolerations, old_tolerations = value_at(patch, "tolerations"), value_at(base, "tolerations")
    if tolerations is not None:
        unknown = is_unknown(tolerations) or is_unknown(old_tolerations)
        merged["tolerations"] = tolerations if unknown else [*as_list(old_tolerations), *as_list(tolerations)]
    if value_at(patch, "affinity") is not None:
        merged["affinity"] = value_at(patch, "affinity")
    return merged


def _train_job_template(resource: PlannedResource, index: ResourceIndex) -> PodTemplate:
    props = _inputs(resource)
    runtime = _runtime_for(props, index)
    pod: dict[str, Any] = {}
    runtime_nodes: Any = None
    sources: list[Any] = []  # every raw value the pod's placement is built from, to tell whether all are known
    if runtime is not None:
        jobs = value_at(_inputs(runtime), "spec", "template", "spec", "replicatedJobs")
        sources.append(jobs)
        for job in as_list(jobs):
            if _is_trainer_job(as_mapping(job)):
                sources.append(value_at(as_mapping(job), "template", "spec", "template", "spec"))
                pod = dict(as_mapping(sources[-1]))
        runtime_nodes = value_at(_inputs(runtime), "spec", "mlPolicy", "numNodes")
    patches = value_at(props, "spec", "runtimePatches")
    sources.append(patches)
    for patch in as_list(patches):
        jobs = value_at(as_mapping(patch), "trainingRuntimeSpec", "template", "spec", "replicatedJobs")
        sources.append(jobs)
        for job in as_list(jobs):
            if _is_trainer_job(as_mapping(job)):
                sources.append(value_at(as_mapping(job), "template", "spec", "template", "spec"))
                pod = _merge_pod(pod, as_mapping(sources[-1]))
    overrides = value_at(props, "spec", "podSpecOverrides")
    sources.append(overrides)
    for override in as_list(overrides):
        targets = [value_at(as_mapping(t), "name") for t in as_list(value_at(as_mapping(override), "targetJobs"))]
        if TRAINER_NODE_JOB in targets:
            pod = _merge_pod(pod, as_mapping(override))
    placement = placement_of(pod)
    if any(is_unknown(source) for source in sources):
        placement = Placement(None, None, None)
    elif runtime is None:
        # A runtime the plan does not hold (one a chart installs) may add tolerations of its own.
        placement = Placement(placement.selector, placement.affinity, None)
    trainer = as_mapping(value_at(props, "spec", "trainer"))
    per_node = value_at(trainer, "resourcesPerNode")
    if per_node is not None:
        requests = container_requests({"resources": per_node})
    else:
        trainer_containers = [
            c for c in as_list(value_at(pod, "containers")) if value_at(as_mapping(c), "name") == TRAINER_NODE_JOB
        ]
        requests = pod_requests({"containers": trainer_containers})
    nodes = value_at(trainer, "numNodes")
    replicas = _replicas(nodes if nodes is not None else runtime_nodes)
    return PodTemplate(
        urn=str(resource.get("urn")),
        kind="TrainJob",
        name=_name(resource),
        requests=requests,
        placement=placement,
        replicas=replicas,
        namespace=known(value_at(props, "metadata", "namespace")),
        where="spec.trainer.resourcesPerNode",
    )


def _pytorch_job_templates(resource: PlannedResource) -> list[PodTemplate]:
    props = _inputs(resource)
    templates = []
    for role, spec in as_mapping(value_at(props, "spec", "pytorchReplicaSpecs")).items():
        pod = value_at(as_mapping(spec), "template", "spec")
        if is_unknown(pod):
            continue
        pod = as_mapping(pod)
        templates.append(
            PodTemplate(
                str(resource.get("urn")),
                f"PyTorchJob {role}",
                _name(resource),
                pod_requests(pod),
                placement_of(pod),
                _replicas(value_at(as_mapping(spec), "replicas")),
                known(value_at(props, "metadata", "namespace")),
                where=f"spec.pytorchReplicaSpecs.{role}.template.spec",
            )
        )
    return templates


def _job_set_templates(resource: PlannedResource) -> list[PodTemplate]:
    props = _inputs(resource)
    templates = []
    for job in as_list(value_at(props, "spec", "replicatedJobs")):
        job = as_mapping(job)
        pod = value_at(job, "template", "spec", "template", "spec")
        if is_unknown(pod):
            continue
        pod = as_mapping(pod)
        jobs, parallelism = (
            _replicas(value_at(job, "replicas")),
            _replicas(value_at(job, "template", "spec", "parallelism")),
        )
        templates.append(
            PodTemplate(
                str(resource.get("urn")),
                f"JobSet {value_at(job, 'name')}",
                _name(resource),
                pod_requests(pod),
                placement_of(pod),
                None if jobs is None or parallelism is None else jobs * parallelism,
                known(value_at(props, "metadata", "namespace")),
                where=f"spec.replicatedJobs[{value_at(job, 'name')}].template.spec.template.spec",
            )
        )
    return templates


def pod_templates(resources: Resources) -> list[PodTemplate]:
    """The pods of every workload in the plan."""
    index = index_of(resources)
    floors = _scale_floors(index.resources)
    templates: list[PodTemplate] = []
    for resource in index.resources:
        type_ = str(resource.get("type"))
        props = _inputs(resource)
        if type_ in POD_SPEC_PATHS:
            path = POD_SPEC_PATHS[type_]
            kind = type_.rsplit(":", 1)[1]
            pod = value_at(props, *path)
            if is_unknown(pod) or value_at(pod, "nodeName") is not None:
                # A pod bound to a named node skips the scheduler: where it runs is not the model's to say.
                continue
            pod = as_mapping(pod)
            templates.append(
                PodTemplate(
                    urn=str(resource.get("urn")),
                    kind=kind,
                    name=_name(resource),
                    requests=pod_requests(pod),
                    placement=placement_of(pod),
                    replicas=None if type_ == DAEMON_SET_TYPE else _workload_replicas(resource, kind, floors),
                    namespace=known(value_at(props, "metadata", "namespace")),
                    per_node=type_ == DAEMON_SET_TYPE,
                    where=".".join(path),
                )
            )
        elif type_ == TRAIN_JOB_TYPE:
            templates.append(_train_job_template(resource, index))
        elif type_ == PYTORCH_JOB_TYPE:
            templates.extend(_pytorch_job_templates(resource))
        elif type_ in JOB_SET_TYPES:
            templates.extend(_job_set_templates(resource))
    return templates


class ShapeIndex:
    """Node shapes by the labels they carry, to find the few a pod's nodeSelector may match without trying all."""

    def __init__(self, shapes: Sequence[NodeShape]):
        self.shapes = list(shapes)
        self._by_key: dict[str, tuple[dict[str, set[int]], set[int]]] = {}

    def _key(self, key: str) -> tuple[dict[str, set[int]], set[int]]:
        """For `key`: the shapes carrying each value, and those that may carry it with a value not known."""
        if key not in self._by_key:
            by_value: dict[str, set[int]] = {}
            maybe: set[int] = set()
            for number, shape in enumerate(self.shapes):
                present, values = shape.labels.lookup(key)
                if present is None or (present and values is None):
                    maybe.add(number)
                elif present:
                    for value in values or ():
                        by_value.setdefault(value, set()).add(number)
            self._by_key[key] = (by_value, maybe)
        return self._by_key[key]

    def candidates(self, placement: Placement) -> list[NodeShape]:
        """The shapes whose labels do not rule out `placement`'s nodeSelector (its other terms still to check)."""
        if placement.selector is None:
            return self.shapes
        numbers = set(range(len(self.shapes)))
        for requirement in placement.selector:
            if requirement.values is None:
                continue
            by_value, maybe = self._key(requirement.key)
            numbers &= maybe | by_value.get(requirement.values[0], set())
        return [self.shapes[number] for number in sorted(numbers)]


@dataclass(frozen=True)
class ClusterModel:
    offers: list[NodeOffer]
    plugins: list[DevicePlugin]
    pods: list[PodTemplate]
    shapes: list[NodeShape] = dataclass_field(default_factory=list)

    @cached_property
    def shape_index(self) -> ShapeIndex:
        return ShapeIndex(self.shapes)

    def candidates(self, pod: PodTemplate) -> list[NodeShape]:
        """The shapes `pod`'s nodeSelector does not rule out."""
        return self.shape_index.candidates(pod.placement)


def cluster_model(resources: Resources) -> ClusterModel:
    """The nodes, device plugins and pods of the plan."""
    index = index_of(resources)
    offers = node_offers(index)
    return ClusterModel(
        offers, device_plugins(index.resources), pod_templates(index), [s for o in offers for s in o.shapes()]
    )


def namespace_admits(pod: PodTemplate, shape: NodeShape) -> Verdict:
    """Fargate runs only the pods of its profile's namespaces; other nodes take any namespace."""
    if shape.offer.kind != FARGATE:
        return True
    if shape.offer.namespaces is None or pod.namespace is None:
        return None
    return pod.namespace in shape.offer.namespaces


def scheduling_reasons(pod: PodTemplate, shape: NodeShape) -> tuple[Verdict, list[Refusal]]:
    """Whether the scheduler may put `pod` on `shape` by labels, taints and namespace (resources aside), and why
    not where it may not."""
    verdict, refusals = shape.admits(pod.placement)
    admitted = namespace_admits(pod, shape)
    if admitted is False:
        namespaces = ", ".join(sorted(shape.offer.namespaces or ()))
        refusals = [*refusals, Refusal("namespace", f"it runs only pods of the namespaces {namespaces}")]
    return all_of([verdict, admitted]), refusals
