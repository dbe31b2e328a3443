"""Decisions for GPU (and system) nodes: AMI type, taint, labels and launch template settings.

Plain data tested without Pulumi, as pulumi-eks keeps its GPU AMI table; the node pool
components wire the results into EKS node groups and EC2 launch templates.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from enum import StrEnum

import pulumi
import pulumi_aws as aws

from modelplane.terms.gpu_catalog import GPU_INSTANCE_TYPES, CpuArchitecture, GpuInstanceType, gpu_instance_type
from modelplane.terms.scheduling import (
    EKS_GPU_TAINT_EFFECT,
    GPU_MODEL_LABEL,
    GPU_PRESENT_LABEL,
    GPU_TAINT_KEY,
    GPU_TAINT_VALUE,
    POOL_LABEL,
)


class CapacityType(StrEnum):
    ON_DEMAND = "ON_DEMAND"
    SPOT = "SPOT"
    CAPACITY_BLOCK = "CAPACITY_BLOCK"


class AmiFamily(StrEnum):
    AL2023 = "al2023"
    BOTTLEROCKET = "bottlerocket"


SYSTEM_AMI_TYPE = "AL2023_x86_64_STANDARD"
_GPU_AMI_TYPES: dict[tuple[CpuArchitecture, AmiFamily], str] = {
    (CpuArchitecture.X86_64, AmiFamily.AL2023): "AL2023_x86_64_NVIDIA",
    (CpuArchitecture.X86_64, AmiFamily.BOTTLEROCKET): "BOTTLEROCKET_x86_64_NVIDIA",
    (CpuArchitecture.ARM64, AmiFamily.AL2023): "AL2023_ARM_64_NVIDIA",
    (CpuArchitecture.ARM64, AmiFamily.BOTTLEROCKET): "BOTTLEROCKET_ARM_64_NVIDIA",
}

GPU_TAINT: aws.eks.NodeGroupTaintArgsDict = {
    "key": GPU_TAINT_KEY,
    "value": GPU_TAINT_VALUE,
    "effect": EKS_GPU_TAINT_EFFECT,
}
"""The EKS API spelling, for node groups: only pods tolerating it land on (and pay for) GPU nodes."""

IMDS_HOP_LIMIT = 1
"""1: only the node's own network namespace (kubelet, and host-network pods such as aws-node and the pod identity
agent) gets IMDS responses; a pod with its own network namespace is one hop further, so it cannot take the node
role's credentials. Pods get AWS credentials through EKS Pod Identity instead; IMDSv2 stays required."""
# AL2023 boots from /dev/xvda; Bottlerocket keeps its OS on /dev/xvda and images and pod data on /dev/xvdb.
_DATA_DEVICE = {AmiFamily.AL2023: "/dev/xvda", AmiFamily.BOTTLEROCKET: "/dev/xvdb"}


def ami_type_for(instance_type: str, ami_family: AmiFamily = AmiFamily.AL2023) -> str:
    """The EKS AMI type with NVIDIA drivers for the instance type's CPU architecture."""
    architecture = gpu_instance_type(instance_type).architecture
    return _GPU_AMI_TYPES[(architecture, AmiFamily(ami_family))]


def gpu_node_labels(
    pool_name: str, instance: GpuInstanceType, extra: Mapping[str, str] | None = None
) -> dict[str, str]:
    """Labels workloads select GPU nodes by; `extra` may not redefine them."""
    labels = {GPU_PRESENT_LABEL: "true", POOL_LABEL: pool_name, GPU_MODEL_LABEL: instance.gpu_model}
    clashes = sorted(set(labels) & set(extra or {}))
    if clashes:
        raise ValueError(f"labels={dict(extra or {})!r}: {', '.join(clashes)} set by modelplane; remove them")
    return {**(extra or {}), **labels}


def metadata_options() -> aws.ec2.LaunchTemplateMetadataOptionsArgsDict:
    """IMDSv2 only, and only from the node itself (IMDS_HOP_LIMIT): neither a forged IMDSv1 request nor a pod
    can fetch the node role's credentials."""
    return {
        "http_endpoint": "enabled",
        "http_tokens": "required",
        "http_put_response_hop_limit": IMDS_HOP_LIMIT,
    }


def block_device_mappings(
    ami_family: AmiFamily, disk_size_gib: int
) -> list[aws.ec2.LaunchTemplateBlockDeviceMappingArgsDict]:
    """One encrypted gp3 volume holding container images and pod data, sized from config."""
    return [
        {
            "device_name": _DATA_DEVICE[AmiFamily(ami_family)],
            "ebs": {
                "volume_size": disk_size_gib,
                "volume_type": "gp3",
                "encrypted": "true",
                "delete_on_termination": "true",
            },
        }
    ]


def efa_network_interfaces(
    instance: GpuInstanceType, security_group_ids: Sequence[pulumi.Input[str]]
) -> list[aws.ec2.LaunchTemplateNetworkInterfaceArgsDict]:
    """One EFA interface per network card the type has; the first is the primary interface."""
    if not instance.supports_efa:
        raise ValueError(f"efa=True: {instance.name} has no EFA")
    return [
        {
            "device_index": 0 if card == 0 else 1,
            "network_card_index": card,
            "interface_type": "efa",
            "delete_on_termination": "true",
            "security_groups": list(security_group_ids),
        }
        for card in range(instance.efa_interfaces)
    ]


def uses_placement_group(efa: bool, capacity_type: CapacityType) -> bool:
    """EFA pools pack nodes in a cluster placement group, except capacity blocks: AWS already
    places those, and a placement group makes their launches fail for insufficient capacity."""
    return efa and CapacityType(capacity_type) is not CapacityType.CAPACITY_BLOCK


@dataclass(frozen=True)
class CapacityBlockLaunch:
    """Launch template settings that launch instances into a capacity block."""

    instance_market_options: aws.ec2.LaunchTemplateInstanceMarketOptionsArgsDict
    capacity_reservation_specification: aws.ec2.LaunchTemplateCapacityReservationSpecificationArgsDict


def capacity_block_launch(capacity_type: CapacityType, reservation_id: str | None) -> CapacityBlockLaunch | None:
    """How to launch into the capacity block; None for other capacity types."""
    if CapacityType(capacity_type) is not CapacityType.CAPACITY_BLOCK:
        return None
    if not reservation_id:
        raise ValueError("capacity_reservation_id=None: CAPACITY_BLOCK needs the capacity block's id (cr-...)")
    return CapacityBlockLaunch(
        instance_market_options={"market_type": "capacity-block"},
        capacity_reservation_specification={"capacity_reservation_target": {"capacity_reservation_id": reservation_id}},
    )


CAPACITY_RESERVATION_ID = re.compile(r"^cr-[0-9a-f]{8,17}$")


def scaling_problems(at: str, min_size: int, max_size: int, desired_size: int | None) -> list[str]:
    """Every problem of a node pool's sizes, each naming `at` (the pool's path), the value and the fix."""
    problems = []
    if min_size < 0:
        problems.append(f"{at}.min_size={min_size}: must be at least 0")
    if max_size < min_size:
        problems.append(f"{at}.max_size={max_size}: must be at least min_size ({min_size})")
    elif max_size < 1:
        problems.append(f"{at}.max_size={max_size}: must be at least 1")
    if desired_size is not None and not min_size <= desired_size <= max_size:
        problems.append(
            f"{at}.desired_size={desired_size}: must lie within min_size..max_size ({min_size}..{max_size})"
        )
    return problems


def gpu_pool_problems(
    at: str,
    *,
    instance_type: str,
    capacity_type: str = CapacityType.ON_DEMAND,
    efa: bool = False,
    capacity_reservation_id: str | None = None,
) -> list[str]:
    """Every problem of a GPU pool's hardware and capacity settings (sizes: `scaling_problems`)."""
    try:
        instance = gpu_instance_type(instance_type)
    except KeyError as unknown:
        return [f"{at}.instance_type={instance_type!r}: {unknown.args[0]}"]
    problems = []
    if efa and not instance.supports_efa:
        efa_types = ", ".join(sorted(t.name for t in GPU_INSTANCE_TYPES.values() if t.supports_efa))
        problems.append(f"{at}.efa=True: {instance_type} has no EFA; use one of {efa_types} or set efa: false")
    if capacity_type == CapacityType.CAPACITY_BLOCK and not capacity_reservation_id:
        problems.append(
            f"{at}.capacity_reservation_id=None: CAPACITY_BLOCK needs the capacity block's reservation id (cr-...)"
        )
    if capacity_reservation_id and not CAPACITY_RESERVATION_ID.match(capacity_reservation_id):
        problems.append(f"{at}.capacity_reservation_id={capacity_reservation_id!r}: expected 'cr-' and hex digits")
    if capacity_reservation_id and capacity_type != CapacityType.CAPACITY_BLOCK:
        problems.append(f"{at}.capacity_reservation_id={capacity_reservation_id!r}: only with CAPACITY_BLOCK")
    return problems


def is_elastic(capacity_type: str) -> bool:
    """On-demand and spot pools scale with demand (Karpenter); a capacity block is a fixed reservation."""
    return capacity_type != CapacityType.CAPACITY_BLOCK


def provisioning_problems(
    at: str, capacity_type: str, min_size: int, max_size: int, desired_size: int | None
) -> list[str]:
    """What each way of provisioning a pool needs: an elastic pool scales from zero on demand, so it has no
    minimum of its own (a service's replicas keep its nodes up); a reserved pool is its reservation, never 0."""
    if is_elastic(capacity_type):
        problems = []
        if min_size != 0:
            problems.append(
                f"{at}.min_size={min_size}: {capacity_type} pools scale from zero with demand (Karpenter); set 0 "
                "and keep capacity up with the workloads' own minimum (an inference service's replicas.min)"
            )
        if desired_size is not None:
            problems.append(f"{at}.desired_size={desired_size}: only reserved (CAPACITY_BLOCK) pools have a size")
        return problems
    if not (min_size == max_size and (desired_size is None or desired_size == max_size)):
        return [
            f"{at}.min_size={min_size}, max_size={max_size}: a CAPACITY_BLOCK pool is its reservation; "
            "set min_size and max_size to the instances reserved"
        ]
    return []
