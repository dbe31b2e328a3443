"""The GPU capacity a plan declares, wherever it declares it, and GPU capacity whose size has no bound.

GPU capacity comes from EKS node groups (their instance types, or their launch template's), Karpenter NodePools
(their node.kubernetes.io/instance-type requirement, bounded by their limits), Auto Scaling groups (their launch
template, launch configuration or mixed-instances overrides) and plain EC2 instances. `gpu_capacity` lists it at
its largest, one `GpuCapacity` per source and GPU instance type, for the budget rules and the cost table; a GPU
type is any EC2 lists with GPUs (`terms.ec2_gpus`), catalogued or not. `uncounted_gpu_types` names the types that
look like GPU types but whose GPU count no table holds, so the budget rules can say they could not count them.
`check_cost` reports GPU capacity nothing bounds: a GPU NodePool without a limit that caps its GPUs, a node group
or Auto Scaling group without a max size. Sizes not known yet are skipped.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from modelplane.policies.deployability.cluster_model import (
    AUTOSCALING_GROUP_TYPE,
    INSTANCE_TYPE,
    INSTANCE_TYPE_LABEL,
    NODE_GROUP_TYPE,
    NODE_POOL_TYPES,
    ResourceIndex,
    Resources,
    autoscaling_group_instance_types,
    launch_template_of,
    node_pool_instance_types,
    node_pool_limits,
)
from modelplane.policies.deployability.findings import Finding
from modelplane.policies.deployability.instance_figures import GPU_FIGURES
from modelplane.policies.deployability.placement import requirement_of
from modelplane.policies.deployability.quantities import as_list, as_mapping, is_unknown, value_at, whole_number
from modelplane.terms.ec2_gpus import gpu_count, is_gpu_family
from modelplane.terms.scheduling import GPU_PRESENT_LABEL, GPU_RESOURCE, GPU_TAINT_KEY

CHECK = "cost"
GPU_REQUIREMENT_KEYS = frozenset(
    {
        "karpenter.k8s.aws/instance-gpu-count",
        "karpenter.k8s.aws/instance-gpu-name",
        "karpenter.k8s.aws/instance-gpu-manufacturer",
        "karpenter.k8s.aws/instance-gpu-memory",
    }
)
GPU_CATEGORIES = frozenset({"g", "p"})


@dataclass(frozen=True)
class GpuCapacity:
    """The most GPUs one source may hold in one instance type."""

    urn: str
    instance_type: str | None
    """None where a NodePool's GPU limit bounds it but its instance types are not pinned."""
    max_nodes: int | None
    """None where not known (a NodePool of unpinned types)."""
    max_gpus: int


def max_gpus_by_source(capacities: Sequence[GpuCapacity]) -> dict[str, int]:
    """The most GPUs each source may hold: a source of several types holds one mix of them, so its largest."""
    by_source: dict[str, int] = {}
    for capacity in capacities:
        by_source[capacity.urn] = max(by_source.get(capacity.urn, 0), capacity.max_gpus)
    return by_source


def total_max_gpus(capacities: Sequence[GpuCapacity]) -> int:
    return sum(max_gpus_by_source(capacities).values())


def _inputs(resource: Mapping[str, Any]) -> Mapping[str, Any]:
    return as_mapping(resource.get("inputs"))


def _node_group_types(resource: Mapping[str, Any], resources: Resources) -> list[str] | None:
    props = _inputs(resource)
    types = value_at(props, "instanceTypes")
    if types is None:
        template = launch_template_of(resource, value_at(props, "launchTemplate"), resources)
        types = [value_at(_inputs(template), "instanceType")] if template is not None else None
    if types is None or is_unknown(types) or any(t is None or is_unknown(t) for t in as_list(types)):
        return None
    return [str(t) for t in as_list(types)]


def _sized(urn: str, types: Sequence[str] | None, max_size: Any) -> list[GpuCapacity]:
    nodes = whole_number(max_size)
    if types is None or nodes is None:
        return []
    return [GpuCapacity(urn, t, nodes, nodes * gpus) for t in types if (gpus := gpu_count(t))]


def is_gpu_node_pool(props: Mapping[str, Any]) -> bool:
    """A NodePool that launches GPU nodes: by its instance types, its GPU requirements, labels, taint or limit."""
    types = node_pool_instance_types(props)
    if types is not None and any(gpu_count(t) != 0 for t in types):
        return True
    for raw in as_list(value_at(props, "spec", "template", "spec", "requirements")):
        requirement = requirement_of(raw)
        if requirement is None or requirement.operator not in ("In", "Gt", "Exists"):
            continue
        values = set(requirement.values or ())
        if (
            requirement.key in GPU_REQUIREMENT_KEYS
            or (requirement.key == "karpenter.k8s.aws/instance-family" and any(is_gpu_family(v) for v in values))
            or (requirement.key == "karpenter.k8s.aws/instance-category" and values & GPU_CATEGORIES)
        ):
            return True
    labels = as_mapping(value_at(props, "spec", "template", "metadata", "labels"))
    taints = as_list(value_at(props, "spec", "template", "spec", "taints"))
    return (
        str(labels.get(GPU_PRESENT_LABEL)).lower() == "true"
        or any(value_at(as_mapping(t), "key") == GPU_TAINT_KEY for t in taints)
        or GPU_RESOURCE in as_mapping(value_at(props, "spec", "limits"))
    )


def _node_pool_capacity(resource: Mapping[str, Any]) -> list[GpuCapacity] | None:
    """A GPU NodePool's capacity; None when nothing bounds it; [] when it cannot be counted yet."""
    props = _inputs(resource)
    urn = str(resource.get("urn"))
    raw_limits = value_at(props, "spec", "limits")
    if (
        is_unknown(raw_limits)
        or any(is_unknown(limit) for limit in as_mapping(raw_limits).values())
        or is_unknown(value_at(props, "spec", "template", "spec", "requirements"))
    ):
        return []
    limits = node_pool_limits(props) or {}
    types = node_pool_instance_types(props)
    gpu_limit = limits.get(GPU_RESOURCE)
    if types is None:
        return None if gpu_limit is None else [GpuCapacity(urn, None, None, int(gpu_limit))]
    capacities = []
    for instance_type in types:
        gpus = gpu_count(instance_type)
        if not gpus:
            continue
        figures = GPU_FIGURES.get(instance_type)
        per_node: dict[str, float] = {GPU_RESOURCE: gpus}
        if figures is not None:
            per_node |= {"cpu": figures.vcpus, "memory": figures.memory_gib * 2.0**30}
        bounds = [int(limit // per_node[r] + 1e-9) for r, limit in limits.items() if per_node.get(r)]
        if not bounds:
            return None
        nodes = min(bounds)
        capacities.append(GpuCapacity(urn, instance_type, nodes, nodes * gpus))
    return capacities


def _declared_types(resource: Mapping[str, Any], index: ResourceIndex) -> list[str] | None:
    """The instance types a source of nodes may launch, wherever they are declared; None where not known."""
    type_, props = resource.get("type"), _inputs(resource)
    if type_ == NODE_GROUP_TYPE:
        return _node_group_types(resource, index)
    if type_ in NODE_POOL_TYPES:
        pinned = node_pool_instance_types(props)
        return list(pinned) if pinned else None
    if type_ == AUTOSCALING_GROUP_TYPE:
        types = autoscaling_group_instance_types(resource, index)
        return list(types) if types else None
    if type_ == INSTANCE_TYPE:
        instance_type = value_at(props, "instanceType")
        return [str(instance_type)] if isinstance(instance_type, str) else None
    return None


def gpu_capacity(resources: Sequence[Mapping[str, Any]]) -> list[GpuCapacity]:
    """The GPU capacity of every source in the plan at its largest; unbounded and uncountable sources left out."""
    capacities: list[GpuCapacity] = []
    index = ResourceIndex(resources)
    for resource in index.resources:
        type_, urn, props = resource.get("type"), str(resource.get("urn")), _inputs(resource)
        if type_ == NODE_GROUP_TYPE:
            capacities += _sized(urn, _declared_types(resource, index), value_at(props, "scalingConfig", "maxSize"))
        elif type_ in NODE_POOL_TYPES and is_gpu_node_pool(props):
            capacities += _node_pool_capacity(resource) or []
        elif type_ == AUTOSCALING_GROUP_TYPE:
            capacities += _sized(urn, _declared_types(resource, index), value_at(props, "maxSize"))
        elif type_ == INSTANCE_TYPE:
            capacities += _sized(urn, _declared_types(resource, index), 1)
    return capacities


def uncounted_gpu_types(resources: Sequence[Mapping[str, Any]]) -> dict[str, list[str]]:
    """By source URN: the instance types it may launch that look like GPU types but whose GPU count is not known."""
    index = ResourceIndex(resources)
    uncounted: dict[str, list[str]] = {}
    for resource in index.resources:
        types = [t for t in _declared_types(resource, index) or () if gpu_count(t) is None]
        if types:
            uncounted[str(resource.get("urn"))] = types
    return uncounted


def _gpu_types(types: Sequence[str] | None) -> list[str]:
    return [t for t in types or () if gpu_count(t) != 0]


def check_cost(resources: Sequence[Mapping[str, Any]]) -> list[Finding]:
    """GPU capacity whose size nothing bounds."""
    findings = []
    index = ResourceIndex(resources)
    for resource in index.resources:
        type_, urn, props = resource.get("type"), str(resource.get("urn")), _inputs(resource)
        name = resource.get("name")
        if type_ in NODE_POOL_TYPES and is_gpu_node_pool(props) and _node_pool_capacity(resource) is None:
            pinned = node_pool_instance_types(props)
            findings.append(
                Finding(
                    CHECK,
                    urn,
                    needs=f"a bound on the GPUs of NodePool {name}",
                    missing=f"spec.limits sets no {GPU_RESOURCE}"
                    + ("" if pinned else f" and no {INSTANCE_TYPE_LABEL} In requirement pins its types")
                    + ": Karpenter may launch GPU nodes without end, and the budget cannot count them",
                    fix=f"set spec.limits['{GPU_RESOURCE}'] to the GPUs the pool may hold",
                )
            )
        elif type_ == NODE_GROUP_TYPE and value_at(props, "scalingConfig", "maxSize") is None:
            if _gpu_types(_node_group_types(resource, index)):
                findings.append(_no_max(urn, f"node group {name}", "scaling_config.max_size"))
        elif (
            type_ == AUTOSCALING_GROUP_TYPE
            and value_at(props, "maxSize") is None
            and _gpu_types(autoscaling_group_instance_types(resource, index))
        ):
            findings.append(_no_max(urn, f"Auto Scaling group {name}", "max_size"))
    return findings


def _no_max(urn: str, what: str, setting: str) -> Finding:
    return Finding(
        CHECK,
        urn,
        needs=f"a max size for the GPU {what}",
        missing="it sets none: its GPU capacity has no bound the budget can count",
        fix=f"set {setting} to the most nodes it may have",
    )
