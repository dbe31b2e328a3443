"""GPU capacity rules, wherever the capacity is declared: the GPU taint, the NVIDIA AMI, the allowed instance types.

A hand-written stack declares GPU nodes in many places: a managed node group's instance types or its launch
template's, a Karpenter NodePool, a self-managed Auto Scaling group, a plain EC2 instance. The deployability model
(`node_offers`) already reads every one of them; these rules judge what it found, so a GPU node group whose only
GPU fact is its launch template's `p5en.48xlarge` is held to the same rules as one that lists it. Where a fact
cannot be read from the plan (a custom AMI's driver, the taints self-managed nodes give themselves in user data),
the rule says so as advice instead of passing or blocking.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from modelplane.policies.deployability.cluster_model import (
    EC2_INSTANCE,
    FARGATE,
    NODE_GROUP,
    NODE_POOL,
    NodeOffer,
    ResourceIndex,
    index_of,
    launch_template_of,
    node_offers,
)
from modelplane.policies.deployability.cost import is_gpu_node_pool
from modelplane.policies.deployability.quantities import as_mapping, is_unknown, value_at
from modelplane.policies.rules.deployability import planned_form
from modelplane.policies.rules.rule import Finding, Rule, StackResource, StackRule, Undecided
from modelplane.terms.ec2_gpus import gpu_count, known_gpu_instance_types
from modelplane.terms.gpu_catalog import GPU_INSTANCE_TYPES
from modelplane.terms.scheduling import GPU_PRESENT_LABEL, GPU_TAINT_EFFECT, GPU_TAINT_KEY, GPU_TAINT_VALUE

DEFAULT_ALLOWED_GPU_TYPES = sorted(name for name, spec in GPU_INSTANCE_TYPES.items() if spec.gpus == 1)
"""What an environment without its own list may use: the catalog's single-GPU types (the pack's schema default)."""


@dataclass(frozen=True)
class GpuOffer:
    """A source of GPU nodes, and what the plan says about it."""

    offer: NodeOffer
    gpu_types: tuple[str, ...] | None
    """The GPU instance types it may launch; None where they are not pinned or not known."""
    planned: Mapping[str, Any]
    """The resource as plan.json records it."""


def _is_gpu_offer(offer: NodeOffer, planned: Mapping[str, Any]) -> bool:
    if offer.kind == FARGATE:
        return False
    if offer.instance_types and any(gpu_count(t) != 0 for t in offer.instance_types):
        return True
    props = as_mapping(planned.get("inputs"))
    if offer.kind == NODE_POOL:
        return is_gpu_node_pool(props)
    ami_type = value_at(props, "amiType")
    labelled = offer.labels.values.get(GPU_PRESENT_LABEL)
    return (isinstance(ami_type, str) and "NVIDIA" in ami_type) or (labelled is not None and "true" in labelled)


def planned_stack(resources: list[StackResource]) -> list[Mapping[str, Any]]:
    """The stack as the deployability model reads it (plan.json's form), converted once per check."""
    return [planned_form(resource) for resource in resources]


def gpu_offers(planned: Sequence[Mapping[str, Any]]) -> list[GpuOffer]:
    """Every source of GPU nodes in the stack."""
    by_urn = {str(resource.get("urn")): resource for resource in planned}
    found = []
    for offer in node_offers(planned):
        resource = by_urn[offer.urn]
        if _is_gpu_offer(offer, resource):
            types = tuple(t for t in offer.instance_types or () if gpu_count(t) != 0) or None
            found.append(GpuOffer(offer, types, resource))
    return found


def _carries_gpu_taint(offer: NodeOffer) -> bool:
    return any(
        taint.key == GPU_TAINT_KEY and taint.effect == GPU_TAINT_EFFECT and taint.value in ("", None, GPU_TAINT_VALUE)
        for taint in offer.taints or ()
    )


def _gpu_taint(resources: list[StackResource], _config: Mapping[str, Any]) -> list[Finding]:
    findings = []
    for gpu in gpu_offers(planned_stack(resources)):
        offer = gpu.offer
        if offer.taints is None or _carries_gpu_taint(offer):
            continue
        if offer.more_taints or offer.kind == EC2_INSTANCE:
            findings.append(
                Finding(
                    Undecided(
                        f"{offer.describe()}: self-managed GPU nodes taint themselves from their user data, which the "
                        f"plan cannot read; make sure they register with {GPU_TAINT_KEY}={GPU_TAINT_VALUE}:"
                        f"{GPU_TAINT_EFFECT} (or tag the group k8s.io/cluster-autoscaler/node-template/taint/...)"
                    ),
                    offer.urn,
                )
            )
            continue
        findings.append(
            Finding(
                f"{offer.describe()}: GPU nodes lack the taint {GPU_TAINT_KEY}={GPU_TAINT_VALUE}:{GPU_TAINT_EFFECT}; "
                "without it any pod lands on (and pays for) GPU nodes",
                offer.urn,
            )
        )
    return findings


def _custom_image(gpu: GpuOffer, index: ResourceIndex) -> bool:
    """A node group whose launch template names its own AMI (EKS then expects amiType CUSTOM or none)."""
    props = as_mapping(gpu.planned.get("inputs"))
    template = launch_template_of(gpu.planned, value_at(props, "launchTemplate"), index)
    return template is not None and value_at(as_mapping(template.get("inputs")), "imageId") is not None


def _nvidia_ami(resources: list[StackResource], _config: Mapping[str, Any]) -> list[Finding]:
    planned = planned_stack(resources)
    index = index_of(planned)
    findings = []
    for gpu in gpu_offers(planned):
        if gpu.offer.kind != NODE_GROUP:
            continue
        ami_type = value_at(as_mapping(gpu.planned.get("inputs")), "amiType")
        if is_unknown(ami_type) or (isinstance(ami_type, str) and "NVIDIA" in ami_type):
            continue
        if ami_type == "CUSTOM" or _custom_image(gpu, index):
            findings.append(
                Finding(
                    Undecided(
                        f"{gpu.offer.describe()}: runs a custom AMI; the plan cannot tell whether it ships the NVIDIA "
                        "driver and container toolkit (EKS's NVIDIA AMIs do)"
                    ),
                    gpu.offer.urn,
                )
            )
            continue
        findings.append(
            Finding(
                f"{gpu.offer.describe()}: GPU node group has amiType={ami_type!r}; use an NVIDIA AMI type "
                "(e.g. AL2023_x86_64_NVIDIA)",
                gpu.offer.urn,
            )
        )
    return findings


def _allowed_types(resources: list[StackResource], config: Mapping[str, Any]) -> list[Finding]:
    configured = config.get("allowedInstanceTypes")
    allowed = [str(t) for t in configured] if isinstance(configured, list) else DEFAULT_ALLOWED_GPU_TYPES
    findings = []
    for gpu in gpu_offers(planned_stack(resources)):
        offer = gpu.offer
        if gpu.gpu_types is None:
            requirements = value_at(as_mapping(gpu.planned.get("inputs")), "spec", "template", "spec", "requirements")
            if offer.kind == NODE_POOL and offer.instance_types is None and not is_unknown(requirements):
                findings.append(
                    Finding(
                        f"{offer.describe()}: no node.kubernetes.io/instance-type In requirement, so Karpenter may "
                        f"launch any GPU type; require one of: {', '.join(allowed)}",
                        offer.urn,
                    )
                )
            continue
        refused = [t for t in gpu.gpu_types if t not in allowed]
        if refused:
            findings.append(
                Finding(
                    f"{offer.describe()}: instance types {refused} are not allowed in this environment; "
                    f"allowed: {', '.join(allowed)}",
                    offer.urn,
                )
            )
    return findings


GPU_TAINT = StackRule(
    name="aws-eks-nodegroup-require-gpu-taint",
    description=f"GPU nodes, wherever declared (node groups, launch templates, NodePools, Auto Scaling groups), carry "
    f"the {GPU_TAINT_KEY} NoSchedule taint.",
    why="Only pods that tolerate it (GPU workloads, GPU node agents) are scheduled onto expensive GPU nodes.",
    check=_gpu_taint,
)
NVIDIA_AMI = StackRule(
    name="aws-eks-nodegroup-require-nvidia-ami",
    description="GPU node groups, whether their GPU types are listed or in their launch template, use an EKS "
    "NVIDIA AMI type.",
    why="Only the NVIDIA AMIs ship the driver and container toolkit; without them the GPUs are invisible to pods.",
    check=_nvidia_ami,
)
ALLOWED_GPU_TYPES = StackRule(
    name="aws-eks-nodegroup-allowed-gpu-instance-types",
    description="GPU capacity, wherever declared, uses only the instance types the environment allows (policy config).",
    why="Keeps p5-class instances out of dev and makes every new GPU type a reviewed decision.",
    check=_allowed_types,
    config_properties={
        "allowedInstanceTypes": {
            "type": "array",
            "items": {"type": "string", "enum": known_gpu_instance_types()},
            "default": DEFAULT_ALLOWED_GPU_TYPES,
            "description": "GPU instance types this environment may use (any EC2 GPU type). Default: the catalog's "
            "single-GPU types, for an environment that has no list of its own yet.",
        }
    },
)

RULES: list[Rule] = [GPU_TAINT, NVIDIA_AMI, ALLOWED_GPU_TYPES]
