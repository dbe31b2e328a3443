"""A GPU pool Karpenter provisions on demand: an EC2NodeClass, a NodePool and, for EFA, its placement and group."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, NotRequired, TypedDict

import pulumi
import pulumi_aws as aws

from modelplane.components.custom_object import custom_object
from modelplane.components.gpu_nodes import AmiFamily, CapacityType
from modelplane.components.karpenter_pools import (
    GPU_RESOURCE,
    PoolKind,
    ec2_node_class_manifest,
    karpenter_pool_problems,
    node_pool_manifest,
    pool_limits,
)
from modelplane.components.node_pools import efa_security_group


class KarpenterGpuPoolArgs(TypedDict):
    cluster_name: str
    """The EKS cluster; plain, as the discovery tag that selects subnets and security groups names it."""
    node_role_name: pulumi.Input[str]
    """`Karpenter.node_role_name`: the role the nodes run as."""
    pool_name: str
    """DNS label naming the pool: the NodePool's and EC2NodeClass's name and the `modelplane.io/pool` label."""
    instance_type: NotRequired[str]
    """A catalog GPU instance type; default g6.xlarge."""
    capacity_type: NotRequired[CapacityType]
    """ON_DEMAND (default) or SPOT; a capacity block is a `GpuNodePool`."""
    max_size: NotRequired[int]
    """Most nodes at once; default 1. Held as the NodePool's cpu, memory and nvidia.com/gpu limits."""
    kind: NotRequired[PoolKind]
    """How Karpenter may disrupt the nodes; default training (only once empty: the cautious choice)."""
    ami_family: NotRequired[AmiFamily]
    """Default al2023."""
    disk_size_gib: NotRequired[int]
    """Data volume size (images, datasets); default 200."""
    efa: NotRequired[bool]
    """Pack nodes in a cluster placement group in one AZ with an EFA security group; default False.
    Karpenter attaches the EFA interfaces when pods request `vpc.amazonaws.com/efa`."""
    vpc_id: NotRequired[pulumi.Input[str]]
    """The cluster's VPC; required with efa (for the EFA security group)."""
    zone: NotRequired[pulumi.Input[str]]
    """The AZ all nodes start in; required with efa, whose traffic does not cross AZs."""
    labels: NotRequired[Mapping[str, str]]
    """Extra Kubernetes node labels."""
    tags: NotRequired[Mapping[str, str]]
    """Tags for every AWS resource, and the instances and volumes Karpenter launches."""


class KarpenterGpuPool(pulumi.ComponentResource):
    """GPU nodes Karpenter launches for pending pods and removes when idle, up to `max_size` nodes' worth of GPUs.

    Pass the cluster's Kubernetes provider through opts, with `depends_on=[karpenter.release]` (the CRDs).
    """

    node_pool_name: pulumi.Output[str]
    gpu_limit: pulumi.Output[int]
    """The NodePool's nvidia.com/gpu limit: the most GPUs the pool holds at once."""
    placement_group_name: pulumi.Output[str] | None
    """Set only for EFA pools."""

    def __init__(self, name: str, args: KarpenterGpuPoolArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__("modelplane:compute:KarpenterGpuPool", name, {}, opts)
        at = f"KarpenterGpuPool {name!r}"
        instance_type = args.get("instance_type", "g6.xlarge")
        capacity_type = CapacityType(args.get("capacity_type", CapacityType.ON_DEMAND))
        max_size = args.get("max_size", 1)
        efa = args.get("efa", False)
        labels = dict(args.get("labels", {}))
        tags = dict(args.get("tags", {}))
        problems = karpenter_pool_problems(
            at,
            pool_name=args["pool_name"],
            instance_type=instance_type,
            capacity_type=capacity_type,
            max_size=max_size,
            efa=efa,
            zone_given=args.get("zone") is not None,
            labels=labels,
            tags=tags,
        )
        if efa and args.get("vpc_id") is None:
            problems.append(f"{at}.vpc_id=None: required with efa=True (for the EFA security group)")
        if problems:
            raise ValueError("; ".join(problems))
        pool_name = args["pool_name"]
        kind = PoolKind(args.get("kind", PoolKind.TRAINING))
        ami_family = AmiFamily(args.get("ami_family", AmiFamily.AL2023))
        disk_size_gib = args.get("disk_size_gib", 200)
        try:
            node_pool = node_pool_manifest(
                pool_name=pool_name,
                instance_type=instance_type,
                capacity_type=capacity_type,
                max_size=max_size,
                kind=kind,
                node_class_name=pool_name,
                zone=args.get("zone"),
                efa=efa,
                labels=labels,
            )
        except ValueError as exc:
            raise ValueError(f"{at}.{exc}") from None
        child = pulumi.ResourceOptions(parent=self)

        security_group_ids: list[pulumi.Input[str]] = []
        placement: pulumi.Output[str] | None = None
        if efa:
            placement = aws.ec2.PlacementGroup(f"{name}-placement", strategy="cluster", tags=tags, opts=child).name
            security_group_ids.append(efa_security_group(name, parent=self, vpc_id=args["vpc_id"], tags=tags).id)
        self.placement_group_name = placement
        node_class = ec2_node_class_manifest(
            name=pool_name,
            cluster_name=args["cluster_name"],
            node_role_name=args["node_role_name"],
            ami_family=ami_family,
            disk_size_gib=disk_size_gib,
            security_group_ids=security_group_ids,
            placement_group_name=placement,
            tags=tags,
        )
        node_class_resource = custom_object(f"{name}-node-class", node_class, child)
        node_pool_resource = custom_object(
            f"{name}-node-pool", node_pool, pulumi.ResourceOptions(parent=self, depends_on=[node_class_resource])
        )
        gpu_limit = int(pool_limits(instance_type, max_size)[GPU_RESOURCE])
        self.node_pool_name = node_pool_resource.id.apply(lambda _: pool_name)
        self.gpu_limit = node_pool_resource.id.apply(lambda _: gpu_limit)
        outputs: dict[str, Any] = {"node_pool_name": self.node_pool_name, "gpu_limit": self.gpu_limit}
        if self.placement_group_name is not None:
            outputs["placement_group_name"] = self.placement_group_name
        self.register_outputs(outputs)
