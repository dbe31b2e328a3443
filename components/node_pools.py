"""EKS managed node groups: the system pool for cluster add-ons and tainted GPU pools for ML workloads."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, NotRequired, TypedDict

import pulumi
import pulumi_aws as aws

from modelplane.components.gpu_nodes import (
    GPU_TAINT,
    SYSTEM_AMI_TYPE,
    AmiFamily,
    CapacityType,
    ami_type_for,
    block_device_mappings,
    capacity_block_launch,
    efa_network_interfaces,
    gpu_node_labels,
    gpu_pool_problems,
    metadata_options,
    scaling_problems,
    uses_placement_group,
)
from modelplane.terms.aws import ec2_instance_types, instance_type_problems
from modelplane.terms.gpu_catalog import gpu_instance_type
from modelplane.terms.scheduling import POOL_LABEL, SYSTEM_POOL_NAME

SYSTEM_INSTANCE_TYPE = "m7i.xlarge"
"""4 vCPUs and 16 GiB: the platform's controllers (Prometheus, Grafana, Karpenter, Kueue, Kubeflow Trainer) and
CPU-only services, after a 2-vCPU system reserve; a 2-vCPU type would leave nothing to schedule."""

SYSTEM_ARCHITECTURE = "x86_64"
"""The system pool's AMI (SYSTEM_AMI_TYPE) runs on x86_64 instance types only."""


def system_instance_type_problems(at: str, instance_type: str) -> list[str]:
    """The system pool's instance type: one EC2 has, that its x86_64 AMI boots on."""
    problems = instance_type_problems(at, instance_type)
    known = ec2_instance_types().get(instance_type)
    if known is not None and SYSTEM_ARCHITECTURE not in known.architectures:
        problems.append(
            f"{at}={instance_type!r}: an {'/'.join(known.architectures)} type; the system pool's AMI "
            f"({SYSTEM_AMI_TYPE}) needs {SYSTEM_ARCHITECTURE}, e.g. {SYSTEM_INSTANCE_TYPE}"
        )
    return problems


# Autoscalers own the desired size after creation; a later `up` must not reset it.
_AUTOSCALED = ["scalingConfig.desiredSize"]


class SystemNodePoolArgs(TypedDict):
    cluster_name: pulumi.Input[str]
    """The EKS cluster the pool joins."""
    node_role_arn: pulumi.Input[str]
    """The nodes' IAM role (`EksCluster.node_role_arn`)."""
    subnet_ids: pulumi.Input[Sequence[str]]
    """Private subnets, one per AZ."""
    instance_type: NotRequired[str]
    """Default SYSTEM_INSTANCE_TYPE (m7i.xlarge)."""
    min_size: NotRequired[int]
    """Default 2, so add-ons survive a node's loss."""
    max_size: NotRequired[int]
    """Default 4."""
    desired_size: NotRequired[int]
    """Initial size only; default min_size."""
    disk_size_gib: NotRequired[int]
    """Root volume size; default 50."""
    labels: NotRequired[Mapping[str, str]]
    """Extra Kubernetes node labels."""
    tags: NotRequired[Mapping[str, str]]
    """Tags for every resource, and the nodes and their volumes."""


class GpuNodePoolArgs(TypedDict):
    cluster_name: pulumi.Input[str]
    """The EKS cluster the pool joins."""
    node_role_arn: pulumi.Input[str]
    """The nodes' IAM role (`EksCluster.node_role_arn`)."""
    subnet_ids: pulumi.Input[Sequence[str]]
    """Private subnets; with EFA only the first is used, so all nodes share one AZ."""
    pool_name: str
    """DNS label naming the pool; the `modelplane.io/pool` label workloads select."""
    instance_type: NotRequired[str]
    """A catalog GPU instance type; default g6.xlarge."""
    capacity_type: NotRequired[CapacityType]
    """Default ON_DEMAND."""
    min_size: NotRequired[int]
    """Default 0: an idle pool costs nothing."""
    max_size: NotRequired[int]
    """Default 1."""
    desired_size: NotRequired[int]
    """Initial size only (autoscaling owns it later); default min_size."""
    disk_size_gib: NotRequired[int]
    """Data volume size (images, datasets); default 200."""
    ami_family: NotRequired[AmiFamily]
    """Default al2023."""
    efa: NotRequired[bool]
    """Attach EFA interfaces and pack nodes together for multi-node training; default False."""
    vpc_id: NotRequired[pulumi.Input[str]]
    """The VPC of `subnet_ids`; required with efa (for the EFA security group)."""
    cluster_security_group_id: NotRequired[pulumi.Input[str]]
    """`EksCluster.cluster_security_group_id`; required with efa, whose interfaces must name every group."""
    capacity_reservation_id: NotRequired[str | None]
    """The capacity block's reservation (cr-...); required with CAPACITY_BLOCK."""
    labels: NotRequired[Mapping[str, str]]
    """Extra Kubernetes node labels."""
    tags: NotRequired[Mapping[str, str]]
    """Tags for every resource, and the nodes and their volumes."""


def _scaling(at: str, min_size: int, max_size: int, desired_size: int | None) -> dict[str, int]:
    problems = scaling_problems(at, min_size, max_size, desired_size)
    if problems:
        raise ValueError("; ".join(problems))
    desired = min_size if desired_size is None else desired_size
    return {"min_size": min_size, "max_size": max_size, "desired_size": desired}


def _tag_specifications(tags: Mapping[str, str]) -> list[aws.ec2.LaunchTemplateTagSpecificationArgsDict]:
    return [{"resource_type": kind, "tags": dict(tags)} for kind in ("instance", "volume", "network-interface")]


def _node_group(
    parent: pulumi.ComponentResource,
    name: str,
    args: SystemNodePoolArgs | GpuNodePoolArgs,
    template: aws.ec2.LaunchTemplate,
    **settings: Any,
) -> aws.eks.NodeGroup:
    return aws.eks.NodeGroup(
        f"{name}-nodes",
        cluster_name=args["cluster_name"],
        node_role_arn=args["node_role_arn"],
        launch_template={"id": template.id, "version": template.latest_version.apply(str)},
        update_config={"max_unavailable": 1},
        tags=dict(args.get("tags", {})),
        opts=pulumi.ResourceOptions(parent=parent, ignore_changes=_AUTOSCALED),
        **settings,
    )


class SystemNodePool(pulumi.ComponentResource):
    """Untainted on-demand nodes for CoreDNS, controllers and other cluster add-ons."""

    node_group_name: pulumi.Output[str]
    launch_template_id: pulumi.Output[str]

    def __init__(self, name: str, args: SystemNodePoolArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__("modelplane:compute:SystemNodePool", name, {}, opts)
        at = f"SystemNodePool {name!r}"
        scaling = _scaling(at, args.get("min_size", 2), args.get("max_size", 4), args.get("desired_size"))
        extra_labels = dict(args.get("labels", {}))
        if POOL_LABEL in extra_labels:
            raise ValueError(f"{at}.labels: {POOL_LABEL} is set by modelplane; remove it")
        tags = dict(args.get("tags", {}))
        template = aws.ec2.LaunchTemplate(
            f"{name}-launch-template",
            metadata_options=metadata_options(),
            block_device_mappings=block_device_mappings(AmiFamily.AL2023, args.get("disk_size_gib", 50)),
            tag_specifications=_tag_specifications({**tags, "Name": SYSTEM_POOL_NAME}),
            tags=tags,
            opts=pulumi.ResourceOptions(parent=self),
        )
        group = _node_group(
            self,
            name,
            args,
            template,
            subnet_ids=args["subnet_ids"],
            ami_type=SYSTEM_AMI_TYPE,
            capacity_type=CapacityType.ON_DEMAND.value,
            instance_types=[args.get("instance_type", SYSTEM_INSTANCE_TYPE)],
            scaling_config=scaling,
            labels={**extra_labels, POOL_LABEL: SYSTEM_POOL_NAME},
        )
        self.node_group_name = group.node_group_name
        self.launch_template_id = template.id
        self.register_outputs({"node_group_name": self.node_group_name, "launch_template_id": self.launch_template_id})


class GpuNodePool(pulumi.ComponentResource):
    """GPU nodes tainted `nvidia.com/gpu`, so only GPU workloads land on (and pay for) them."""

    node_group_name: pulumi.Output[str]
    launch_template_id: pulumi.Output[str]
    placement_group_name: pulumi.Output[str] | None
    """Set only for EFA pools outside capacity blocks."""

    def __init__(self, name: str, args: GpuNodePoolArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__("modelplane:compute:GpuNodePool", name, {}, opts)
        at = f"GpuNodePool {name!r}"
        capacity_type = CapacityType(args.get("capacity_type", CapacityType.ON_DEMAND))
        ami_family = AmiFamily(args.get("ami_family", AmiFamily.AL2023))
        efa = args.get("efa", False)
        reservation_id = args.get("capacity_reservation_id")
        problems = gpu_pool_problems(
            at,
            instance_type=args.get("instance_type", "g6.xlarge"),
            capacity_type=capacity_type,
            efa=efa,
            capacity_reservation_id=reservation_id,
        )
        if problems:
            raise ValueError("; ".join(problems))
        instance = gpu_instance_type(args.get("instance_type", "g6.xlarge"))
        scaling = _scaling(at, args.get("min_size", 0), args.get("max_size", 1), args.get("desired_size"))
        _check_efa_wiring(at, args)
        try:
            capacity_block = capacity_block_launch(capacity_type, reservation_id)
            labels = gpu_node_labels(args["pool_name"], instance, args.get("labels"))
        except ValueError as exc:
            raise ValueError(f"{at}.{exc}") from None
        tags = dict(args.get("tags", {}))
        child = pulumi.ResourceOptions(parent=self)

        placement: aws.ec2.LaunchTemplatePlacementArgsDict | None = None
        self.placement_group_name = None
        if uses_placement_group(efa, capacity_type):
            group = aws.ec2.PlacementGroup(f"{name}-placement", strategy="cluster", tags=tags, opts=child)
            placement = {"group_name": group.name}
            self.placement_group_name = group.name
        network_interfaces = None
        subnet_ids: pulumi.Input[Sequence[str]] = args["subnet_ids"]
        if efa:
            efa_group = efa_security_group(name, parent=self, vpc_id=args["vpc_id"], tags=tags)
            security_groups = [efa_group.id, args["cluster_security_group_id"]]
            network_interfaces = efa_network_interfaces(instance, security_groups)
            # EFA traffic does not cross AZs: keep every node in the first subnet's AZ.
            subnet_ids = pulumi.Output.from_input(args["subnet_ids"]).apply(lambda ids: list(ids[:1]))

        template = aws.ec2.LaunchTemplate(
            f"{name}-launch-template",
            metadata_options=metadata_options(),
            block_device_mappings=block_device_mappings(ami_family, args.get("disk_size_gib", 200)),
            tag_specifications=_tag_specifications({**tags, "Name": args["pool_name"]}),
            tags=tags,
            placement=placement,
            network_interfaces=network_interfaces,
            instance_market_options=capacity_block.instance_market_options if capacity_block else None,
            capacity_reservation_specification=(
                capacity_block.capacity_reservation_specification if capacity_block else None
            ),
            opts=child,
        )
        node_group = _node_group(
            self,
            name,
            args,
            template,
            subnet_ids=subnet_ids,
            ami_type=ami_type_for(instance.name, ami_family),
            capacity_type=capacity_type.value,
            instance_types=[instance.name],
            scaling_config=scaling,
            labels=labels,
            taints=[GPU_TAINT],
        )
        self.node_group_name = node_group.node_group_name
        self.launch_template_id = template.id
        outputs: dict[str, Any] = {
            "node_group_name": self.node_group_name,
            "launch_template_id": self.launch_template_id,
        }
        if self.placement_group_name is not None:
            outputs["placement_group_name"] = self.placement_group_name
        self.register_outputs(outputs)


def efa_security_group(
    name: str, *, parent: pulumi.Resource, vpc_id: pulumi.Input[str], tags: Mapping[str, str]
) -> aws.ec2.SecurityGroup:
    """The group EFA requires, allowing all traffic to and from itself: `<name>-efa` and its two rules."""
    child = pulumi.ResourceOptions(parent=parent)
    group = aws.ec2.SecurityGroup(
        f"{name}-efa", vpc_id=vpc_id, description="EFA traffic between the pool's nodes", tags=dict(tags), opts=child
    )
    aws.vpc.SecurityGroupIngressRule(
        f"{name}-efa-ingress",
        security_group_id=group.id,
        referenced_security_group_id=group.id,
        ip_protocol="-1",
        opts=child,
    )
    aws.vpc.SecurityGroupEgressRule(
        f"{name}-efa-egress",
        security_group_id=group.id,
        referenced_security_group_id=group.id,
        ip_protocol="-1",
        opts=child,
    )
    return group


def _check_efa_wiring(at: str, args: GpuNodePoolArgs) -> None:
    if not args.get("efa", False):
        return
    for needed in ("vpc_id", "cluster_security_group_id"):
        if args.get(needed) is None:
            raise ValueError(f"{at}.{needed}=None: required with efa=True")
