"""Node rules: launch templates (IMDSv2, encrypted volumes) and GPU node groups (taint, NVIDIA AMI, allowed types).

Karpenter's objects are held to the same rules: an EC2NodeClass is the launch template of the nodes Karpenter
launches, and a GPU NodePool must carry the GPU taint and pin allowed instance types like a node group.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from modelplane.policies.rules import karpenter
from modelplane.policies.rules.props import as_dict, as_list, dig, is_true, is_unknown
from modelplane.policies.rules.rule import ResourceRule, Rule
from modelplane.terms.gpu_catalog import GPU_INSTANCE_TYPES
from modelplane.terms.scheduling import (
    EKS_GPU_TAINT_EFFECT,
    GPU_PRESENT_LABEL,
    GPU_TAINT_EFFECT,
    GPU_TAINT_KEY,
    GPU_TAINT_VALUE,
)

LAUNCH_TEMPLATE_TYPES = frozenset({"aws:ec2/launchTemplate:LaunchTemplate"})
NODE_GROUP_TYPES = frozenset({"aws:eks/nodeGroup:NodeGroup"})
# EC2's accelerated families with NVIDIA (or AMD) GPUs: g4dn, g5, g5g, g6, g6e, p4d, p5, ...
GPU_FAMILY = re.compile(r"^[gp]\d[a-z]*\.")


def gpu_instance_types(props: dict[str, Any]) -> list[str]:
    return [t for t in as_list(props.get("instanceTypes")) if isinstance(t, str) and GPU_FAMILY.match(t)]


def is_gpu_node_group(props: dict[str, Any]) -> bool:
    """A node group is a GPU one if its instance types, its AMI type or its labels say so."""
    ami_type = props.get("amiType")
    return (
        bool(gpu_instance_types(props))
        or (isinstance(ami_type, str) and "NVIDIA" in ami_type)
        or dig(props, "labels", GPU_PRESENT_LABEL) == "true"
    )


def _launch_settings(type_: str, props: dict[str, Any]) -> dict[str, Any]:
    """Where the launch settings sit: a launch template's own inputs, an EC2NodeClass's spec."""
    return as_dict(props.get("spec")) if type_ in karpenter.NODE_CLASS_TYPES else props


def _imdsv2(type_: str, props: dict[str, Any], _config: Mapping[str, Any]) -> list[str]:
    settings = _launch_settings(type_, props)
    tokens = dig(settings, "metadataOptions", "httpTokens")
    # An EC2NodeClass without metadataOptions gets Karpenter's default: httpTokens required.
    if tokens is None and type_ in karpenter.NODE_CLASS_TYPES and not is_unknown(settings.get("metadataOptions")):
        return []
    if is_unknown(tokens) or tokens == "required" or dig(settings, "metadataOptions", "httpEndpoint") == "disabled":
        return []
    return [f"metadataOptions.httpTokens={tokens!r}; set 'required' so only IMDSv2 sessions reach the node role"]


def _encrypted_volumes(type_: str, props: dict[str, Any], _config: Mapping[str, Any]) -> list[str]:
    settings = _launch_settings(type_, props)
    mappings = settings.get("blockDeviceMappings")
    if is_unknown(mappings) or is_unknown(props.get("spec")):
        return []
    # Without blockDeviceMappings Karpenter gives its nodes its own encrypted default volumes.
    if mappings is None and type_ in karpenter.NODE_CLASS_TYPES:
        return []
    if not as_list(mappings):
        return ["no blockDeviceMappings: the root volume's encryption is left to the AMI and account default"]
    problems = []
    for mapping in as_list(mappings):
        ebs = as_dict(dig(mapping, "ebs"))
        encrypted = ebs.get("encrypted")
        if ebs and not is_unknown(encrypted) and not is_true(encrypted):
            device = dig(mapping, "deviceName") or "?"
            problems.append(f"blockDeviceMappings {device}: ebs.encrypted is not true; encrypt every volume")
    return problems


def _tolerated_taint(taint: Any, effect: str) -> bool:
    return (
        dig(taint, "key") == GPU_TAINT_KEY
        and dig(taint, "effect") == effect
        and dig(taint, "value") in (GPU_TAINT_VALUE, None)
    )


def _gpu_taint(type_: str, props: dict[str, Any], _config: Mapping[str, Any]) -> list[str]:
    if type_ in karpenter.NODE_POOL_TYPES:
        # Kubernetes' own spelling of the effect, in the nodes' template.
        what, effect = "GPU NodePool", GPU_TAINT_EFFECT
        is_gpu, taints = karpenter.is_gpu_node_pool(props), dig(props, "spec", "template", "spec", "taints")
    else:
        what, effect = "GPU node group", EKS_GPU_TAINT_EFFECT
        is_gpu, taints = is_gpu_node_group(props), props.get("taints")
    if not is_gpu or is_unknown(taints) or any(_tolerated_taint(t, effect) for t in as_list(taints)):
        return []
    return [
        f"{what} lacks the taint {GPU_TAINT_KEY}={GPU_TAINT_VALUE}:{effect}; "
        "without it any pod lands on (and pays for) GPU nodes"
    ]


def _nvidia_ami(_type: str, props: dict[str, Any], _config: Mapping[str, Any]) -> list[str]:
    ami_type = props.get("amiType")
    if not is_gpu_node_group(props) or is_unknown(ami_type):
        return []
    if isinstance(ami_type, str) and "NVIDIA" in ami_type:
        return []
    return [f"GPU node group has amiType={ami_type!r}; use an NVIDIA AMI type (e.g. AL2023_x86_64_NVIDIA)"]


def _allowed_instance_types(type_: str, props: dict[str, Any], config: Mapping[str, Any]) -> list[str]:
    if type_ in karpenter.NODE_POOL_TYPES:
        is_gpu, types = karpenter.is_gpu_node_pool(props), karpenter.instance_types(props)
    else:
        is_gpu, types = is_gpu_node_group(props), props.get("instanceTypes")
    if not is_gpu or is_unknown(types):
        return []
    allowed = [str(t) for t in as_list(config.get("allowedInstanceTypes"))]
    if not allowed:
        return ["no allowedInstanceTypes in this environment's policy config; list the GPU types it may use"]
    if types is None:
        return [
            f"GPU NodePool has no {karpenter.INSTANCE_TYPE_LABEL} In requirement, so Karpenter may launch any "
            f"instance type; require one of: {', '.join(allowed)}"
        ]
    instance_types = [str(t) for t in as_list(types)] or ["(none)"]
    refused = [t for t in instance_types if t not in allowed]
    if not refused:
        return []
    return [f"instance types {refused} are not allowed in this environment; allowed: {', '.join(allowed)}"]


LAUNCH_TEMPLATE_IMDSV2 = ResourceRule(
    name="aws-ec2-launchtemplate-require-imdsv2",
    description="Launch templates require IMDSv2 (metadataOptions.httpTokens 'required').",
    why="With IMDSv1 a server-side request forgery in any pod can read the node role's credentials.",
    resource_types=LAUNCH_TEMPLATE_TYPES | karpenter.NODE_CLASS_TYPES,
    check=_imdsv2,
)
LAUNCH_TEMPLATE_ENCRYPTED_VOLUMES = ResourceRule(
    name="aws-ec2-launchtemplate-require-encrypted-volumes",
    description="Launch templates declare their EBS volumes, all encrypted.",
    why="Node volumes cache datasets, model weights and container images.",
    resource_types=LAUNCH_TEMPLATE_TYPES | karpenter.NODE_CLASS_TYPES,
    check=_encrypted_volumes,
)
NODE_GROUP_GPU_TAINT = ResourceRule(
    name="aws-eks-nodegroup-require-gpu-taint",
    description=f"GPU node groups carry the {GPU_TAINT_KEY} NoSchedule taint.",
    why="Only pods that tolerate it (GPU workloads, GPU node agents) are scheduled onto expensive GPU nodes.",
    resource_types=NODE_GROUP_TYPES | karpenter.NODE_POOL_TYPES,
    check=_gpu_taint,
)
NODE_GROUP_NVIDIA_AMI = ResourceRule(
    name="aws-eks-nodegroup-require-nvidia-ami",
    description="GPU node groups use an EKS NVIDIA AMI type.",
    why="Only the NVIDIA AMIs ship the driver and container toolkit; without them the GPUs are invisible to pods.",
    resource_types=NODE_GROUP_TYPES,
    check=_nvidia_ami,
)
NODE_GROUP_ALLOWED_GPU_TYPES = ResourceRule(
    name="aws-eks-nodegroup-allowed-gpu-instance-types",
    description="GPU node groups use only the instance types allowed in the environment (policy config).",
    why="Keeps p5-class instances out of dev and makes every new GPU type a reviewed decision.",
    resource_types=NODE_GROUP_TYPES | karpenter.NODE_POOL_TYPES,
    check=_allowed_instance_types,
    config_properties={
        "allowedInstanceTypes": {
            "type": "array",
            "items": {"type": "string", "enum": sorted(GPU_INSTANCE_TYPES)},
            "description": "GPU instance types this environment may use.",
        }
    },
)

RULES: list[Rule] = [
    LAUNCH_TEMPLATE_IMDSV2,
    LAUNCH_TEMPLATE_ENCRYPTED_VOLUMES,
    NODE_GROUP_GPU_TAINT,
    NODE_GROUP_NVIDIA_AMI,
    NODE_GROUP_ALLOWED_GPU_TYPES,
]
