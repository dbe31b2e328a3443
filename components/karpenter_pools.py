"""Decisions for GPU pools Karpenter provisions: the NodePool and EC2NodeClass objects, their limits and disruption.

Plain data tested without Pulumi (the manifests are also checked against the CRD schemas of the pinned Karpenter);
`KarpenterGpuPool` wires the results into the cluster. On-demand and spot pools scale with demand through
Karpenter; a capacity block is a fixed reservation and stays a managed node group (`GpuNodePool`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from enum import StrEnum
from typing import TYPE_CHECKING, Any

from modelplane.components.gpu_nodes import (
    _DATA_DEVICE,
    IMDS_HOP_LIMIT,
    AmiFamily,
    CapacityType,
    gpu_node_labels,
    gpu_pool_problems,
    is_elastic,
    scaling_problems,
)
from modelplane.components.subnet_plan import KARPENTER_DISCOVERY_TAG
from modelplane.terms.gpu_catalog import gpu_instance_type
from modelplane.terms.names import check_pool_name
from modelplane.terms.scheduling import EFA_LABEL, GPU_TAINT_EFFECT, GPU_TAINT_KEY, GPU_TAINT_VALUE

if TYPE_CHECKING:
    # Only for the values a component wires in from other resources' outputs: each is placed into the object
    # as it is, so the rest of the object stays known to previews and policies while that value is not.
    import pulumi

NODE_POOL_API_VERSION = "karpenter.sh/v1"
NODE_CLASS_API_VERSION = "karpenter.k8s.aws/v1"
NODE_CLASS_GROUP = "karpenter.k8s.aws"
GPU_RESOURCE = "nvidia.com/gpu"
"""The extended resource the NVIDIA device plugin advertises, and the NodePool limit that holds the GPU budget."""

INSTANCE_TYPE_LABEL = "node.kubernetes.io/instance-type"
CAPACITY_TYPE_LABEL = "karpenter.sh/capacity-type"
ARCH_LABEL = "kubernetes.io/arch"
ZONE_LABEL = "topology.kubernetes.io/zone"
_KARPENTER_CAPACITY_TYPES = {CapacityType.ON_DEMAND: "on-demand", CapacityType.SPOT: "spot"}
_ARCH = {"x86_64": "amd64", "arm64": "arm64"}
_AMI_ALIASES = {AmiFamily.AL2023: "al2023@latest", AmiFamily.BOTTLEROCKET: "bottlerocket@latest"}
"""Karpenter picks the NVIDIA variant of either for GPU instance types; a new release drifts the nodes."""
_BOTTLEROCKET_OS_VOLUME_GIB = 4
"""Bottlerocket's OS volume (/dev/xvda), Karpenter's own default size; images and pod data go on /dev/xvdb."""

# Karpenter refuses node labels in these domains (and their subdomains) except the exceptions below.
_RESTRICTED_LABEL_DOMAINS = ("kubernetes.io", "k8s.io", "karpenter.sh", "karpenter.k8s.aws")
_LABEL_DOMAIN_EXCEPTIONS = ("node.kubernetes.io", "node-restriction.kubernetes.io", "kops.k8s.io")
# Tags Karpenter sets on what it launches itself; the EC2NodeClass CRD rejects them in spec.tags.
_RESTRICTED_TAGS = ("eks:eks-cluster-name", "karpenter.sh/nodepool", "karpenter.sh/nodeclaim")
_RESTRICTED_TAG_PREFIXES = ("kubernetes.io/cluster", "karpenter.k8s.aws/ec2nodeclass")


class PoolKind(StrEnum):
    """How Karpenter may take a pool's nodes away."""

    TRAINING = "training"
    """Long jobs: a node goes only once empty, never under running pods for drift, age or low use."""
    INFERENCE = "inference"
    """Replicated services: underused nodes are repacked and drifted or old ones replaced, a tenth at a time."""


def pool_limits(instance_type: str, max_size: int) -> dict[str, str]:
    """The pool's resources at `max_size` nodes. Karpenter launches no node that would exceed them, so the
    GPU limit is what holds the pool to its share of the GPU budget (a NodePool has no node count of its own)."""
    instance = gpu_instance_type(instance_type)
    if max_size < 1:
        raise ValueError(f"max_size={max_size}: must be at least 1")
    return {
        "cpu": str(instance.vcpus * max_size),
        "memory": f"{instance.memory_gib * max_size}Gi",
        GPU_RESOURCE: str(instance.gpus * max_size),
    }


def disruption_for(kind: PoolKind) -> dict[str, Any]:
    """When Karpenter may remove or replace a pool's nodes (NodePool `spec.disruption`)."""
    if PoolKind(kind) is PoolKind.TRAINING:
        return {
            # Only empty nodes go; ten minutes lets the next queued job start on a warm node.
            "consolidationPolicy": "WhenEmpty",
            "consolidateAfter": "10m",
            # A new AMI release (al2023@latest) drifts every node: never replace one under a running job.
            # No budget names "Empty", so idle GPU nodes are all released.
            "budgets": [{"nodes": "0", "reasons": ["Drifted", "Underutilized"]}],
        }
    return {
        "consolidationPolicy": "WhenEmptyOrUnderutilized",
        "consolidateAfter": "5m",
        "budgets": [{"nodes": "10%"}],
    }


def expire_after_for(kind: PoolKind) -> str:
    """How long a node lives before Karpenter replaces it: never under a training job (expiry ignores
    disruption budgets and would kill a multi-day run); 30 days for inference, so nodes stay patched."""
    return "Never" if PoolKind(kind) is PoolKind.TRAINING else "720h"


def _label_domain(key: str) -> str:
    return key.split("/", 1)[0] if "/" in key else ""


def _in_domain(domain: str, parent: str) -> bool:
    return domain == parent or domain.endswith(f".{parent}")


def _restricted_label(key: str) -> bool:
    domain = _label_domain(key)
    if any(_in_domain(domain, allowed) for allowed in _LABEL_DOMAIN_EXCEPTIONS):
        return False
    return any(_in_domain(domain, restricted) for restricted in _RESTRICTED_LABEL_DOMAINS)


def _restricted_tag(key: str) -> bool:
    return key in _RESTRICTED_TAGS or key.startswith(_RESTRICTED_TAG_PREFIXES)


def karpenter_pool_problems(
    at: str,
    *,
    pool_name: str,
    instance_type: str,
    capacity_type: str = CapacityType.ON_DEMAND,
    max_size: int = 1,
    efa: bool = False,
    zone_given: bool = False,
    labels: Mapping[str, str] | None = None,
    tags: Mapping[str, str] | None = None,
) -> list[str]:
    """Every problem of a Karpenter GPU pool's settings, each naming `at` (the pool's path), the value and the fix."""
    problems = []
    try:
        check_pool_name(pool_name)
    except ValueError as invalid:
        problems.append(f"{at}.pool_name={pool_name!r}: {invalid}")
    problems += gpu_pool_problems(at, instance_type=instance_type, efa=efa)
    if capacity_type not in set(CapacityType) or not is_elastic(capacity_type):
        problems.append(
            f"{at}.capacity_type={str(capacity_type)!r}: Karpenter pools are ON_DEMAND or SPOT; "
            "a capacity block stays a fixed-size managed node group (GpuNodePool)"
        )
    problems += scaling_problems(at, 0, max_size, None)
    if efa and not zone_given:
        problems.append(
            f"{at}.zone=None: required with efa=True; EFA traffic does not cross AZs, so give the one "
            "the pool's nodes start in (e.g. 'us-east-1a')"
        )
    restricted_labels = sorted(key for key in labels or {} if _restricted_label(key))
    if restricted_labels:
        problems.append(
            f"{at}.labels: {', '.join(restricted_labels)} in a domain Karpenter reserves "
            f"({', '.join(_RESTRICTED_LABEL_DOMAINS)}); use your own domain, e.g. 'example.com/team'"
        )
    problems += node_class_tag_problems(f"{at}.tags", tags or {})
    return problems


def node_class_tag_problems(at: str, tags: Mapping[str, str]) -> list[str]:
    """Tags an EC2NodeClass refuses (Karpenter sets them on what it launches); `at` names the tags."""
    restricted_tags = sorted(key for key in tags if _restricted_tag(key))
    if restricted_tags:
        return [f"{at}: {', '.join(restricted_tags)} set by Karpenter itself; remove them"]
    return []


def _requirement(key: str, *values: pulumi.Input[str]) -> dict[str, Any]:
    return {"key": key, "operator": "In", "values": list(values)}


def node_pool_manifest(
    *,
    pool_name: str,
    instance_type: str,
    capacity_type: CapacityType,
    max_size: int,
    kind: PoolKind,
    node_class_name: str,
    zone: pulumi.Input[str] | None = None,
    efa: bool = False,
    labels: Mapping[str, str] | None = None,
) -> dict[str, Any]:
    """A karpenter.sh/v1 NodePool of one GPU instance type, tainted so only GPU workloads land on its nodes.

    `labels` may not redefine the labels modelplane sets (pool, GPU model, GPU present, EFA).
    """
    instance = gpu_instance_type(instance_type)
    capacity_type = CapacityType(capacity_type)
    if not is_elastic(capacity_type):
        raise ValueError(f"capacity_type={capacity_type.value!r}: Karpenter pools are ON_DEMAND or SPOT")
    extra = dict(labels or {})
    if EFA_LABEL in extra:
        raise ValueError(f"labels={extra!r}: {EFA_LABEL} set by modelplane (from efa); remove it")
    node_labels = gpu_node_labels(pool_name, instance, extra)
    if efa:
        node_labels[EFA_LABEL] = "true"
    requirements = [
        _requirement(INSTANCE_TYPE_LABEL, instance.name),
        _requirement(CAPACITY_TYPE_LABEL, _KARPENTER_CAPACITY_TYPES[capacity_type]),
        _requirement(ARCH_LABEL, _ARCH[instance.architecture]),
    ]
    if zone is not None:
        requirements.append(_requirement(ZONE_LABEL, zone))
    return {
        "apiVersion": NODE_POOL_API_VERSION,
        "kind": "NodePool",
        "metadata": {"name": pool_name},
        "spec": {
            "template": {
                "metadata": {"labels": node_labels},
                "spec": {
                    "nodeClassRef": {"group": NODE_CLASS_GROUP, "kind": "EC2NodeClass", "name": node_class_name},
                    "taints": [{"key": GPU_TAINT_KEY, "value": GPU_TAINT_VALUE, "effect": GPU_TAINT_EFFECT}],
                    "requirements": requirements,
                    "expireAfter": expire_after_for(kind),
                },
            },
            "limits": pool_limits(instance.name, max_size),
            "disruption": disruption_for(kind),
        },
    }


def _ebs(size: str) -> dict[str, Any]:
    return {"volumeSize": size, "volumeType": "gp3", "encrypted": True, "deleteOnTermination": True}


def node_block_devices(ami_family: AmiFamily, disk_size_gib: int) -> list[dict[str, Any]]:
    """Encrypted gp3 volumes: the data volume sized from config (images, pod data) and, for Bottlerocket,
    its small OS volume. Listed explicitly because the NodeClass's mappings replace the AMI's, which
    would otherwise leave the OS volume's encryption to the account default."""
    ami_family = AmiFamily(ami_family)
    data = {"deviceName": _DATA_DEVICE[ami_family], "ebs": _ebs(f"{disk_size_gib}Gi")}
    if ami_family is AmiFamily.BOTTLEROCKET:
        return [{"deviceName": "/dev/xvda", "ebs": _ebs(f"{_BOTTLEROCKET_OS_VOLUME_GIB}Gi")}, data]
    return [data]


def ec2_node_class_manifest(
    *,
    name: str,
    cluster_name: str,
    node_role_name: pulumi.Input[str],
    ami_family: AmiFamily = AmiFamily.AL2023,
    disk_size_gib: int = 200,
    security_group_ids: Sequence[pulumi.Input[str]] = (),
    placement_group_name: pulumi.Input[str] | None = None,
    tags: Mapping[str, str] | None = None,
) -> dict[str, Any]:
    """A karpenter.k8s.aws/v1 EC2NodeClass: how the pool's instances launch.

    Subnets and security groups are those tagged with the cluster's discovery tag (the private subnets
    and the cluster security group), plus `security_group_ids` (an EFA pool's own group).
    """
    tags = dict(tags or {})
    restricted = sorted(key for key in tags if _restricted_tag(key))
    if restricted:
        raise ValueError(f"tags: {', '.join(restricted)} set by Karpenter itself; remove them")
    discovery = {"tags": {KARPENTER_DISCOVERY_TAG: cluster_name}}
    spec: dict[str, Any] = {
        "role": node_role_name,
        "amiSelectorTerms": [{"alias": _AMI_ALIASES[AmiFamily(ami_family)]}],
        "subnetSelectorTerms": [discovery],
        "securityGroupSelectorTerms": [discovery, *({"id": group} for group in security_group_ids)],
        # IMDSv2 only, reachable from the node itself and not from its pods, as on every other node (IMDS_HOP_LIMIT).
        "metadataOptions": {
            "httpEndpoint": "enabled",
            "httpProtocolIPv6": "disabled",
            "httpPutResponseHopLimit": IMDS_HOP_LIMIT,
            "httpTokens": "required",
        },
        "blockDeviceMappings": node_block_devices(ami_family, disk_size_gib),
        "tags": tags,
    }
    if placement_group_name is not None:
        spec["placementGroupSelector"] = {"name": placement_group_name}
    return {"apiVersion": NODE_CLASS_API_VERSION, "kind": "EC2NodeClass", "metadata": {"name": name}, "spec": spec}
