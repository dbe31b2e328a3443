"""Karpenter: the controller that launches GPU nodes when pods need them and removes them when idle.

Its IAM (a controller role through EKS Pod Identity, and a node role of its own), the interruption queue that
warns it of spot reclaims and maintenance, the discovery tag on the cluster security group, and the pinned Helm
releases (CRDs, then controller). The pools it provisions are `KarpenterGpuPool`s.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, NotRequired, TypedDict

import pulumi
import pulumi_aws as aws
import pulumi_kubernetes as k8s

from modelplane.components.iam import InlinePolicy, assume_role_policy, managed_policy_arn, pod_identity
from modelplane.components.subnet_plan import KARPENTER_DISCOVERY_TAG
from modelplane.terms.scheduling import POOL_LABEL, SYSTEM_POOL_NAME

CHART = "oci://public.ecr.aws/karpenter/karpenter"
CRD_CHART = "oci://public.ecr.aws/karpenter/karpenter-crd"
CHART_VERSION = "1.14.1"
"""Both charts, pinned. The CRD schemas vendored in modelplane/plan/crd_schemas (KARPENTER_VERSION there) are this
release's: bump them together, or the plan validates NodePools against a schema the cluster does not serve."""
NAMESPACE = "kube-system"
SERVICE_ACCOUNT = "karpenter"
RELEASE_NAME = "karpenter"
NODE_POLICIES = (
    "AmazonEKSWorkerNodePolicy",
    "AmazonEC2ContainerRegistryPullOnly",
    "AmazonSSMManagedInstanceCore",
)
"""The node role's AWS-managed policies, as Karpenter's own CloudFormation template attaches them, less
AmazonEKS_CNI_Policy: the VPC CNI gets it through its own pod identity (eks_cluster.VPC_CNI_POLICY)."""
INTERRUPTION_QUEUE_RETENTION_SECONDS = 300
"""Karpenter acts on a message within seconds; an older one describes an instance already gone."""


class KarpenterArgs(TypedDict):
    cluster_name: str
    """The EKS cluster's name; plain, as the IAM conditions and the chart's settings name it."""
    cluster_security_group_id: pulumi.Input[str]
    """`EksCluster.cluster_security_group_id`: tagged for discovery, so every Karpenter node joins it."""
    node_selector: NotRequired[Mapping[str, str]]
    """Where the controller runs; default the system pool, never on nodes it manages itself."""
    tags: NotRequired[Mapping[str, str]]
    """Tags for every AWS resource."""


def controller_policy(
    partition: str, region: str, account_id: str, cluster_name: str, node_role_arn: str, queue_arn: str
) -> dict[str, Any]:
    """The controller's IAM policy: launch, tag and terminate only instances tagged for this cluster and a
    NodePool, pass only the node role, manage only its own instance profiles, read only this region."""
    ec2 = f"arn:{partition}:ec2:{region}"
    profiles = f"arn:{partition}:iam::{account_id}:instance-profile/*"
    owned = f"kubernetes.io/cluster/{cluster_name}"
    launched = [
        f"{ec2}:*:{kind}/*"
        for kind in ("fleet", "instance", "volume", "network-interface", "launch-template", "spot-instances-request")
    ]
    request_tags = {
        "StringEquals": {f"aws:RequestTag/{owned}": "owned", "aws:RequestTag/eks:eks-cluster-name": cluster_name},
        "StringLike": {"aws:RequestTag/karpenter.sh/nodepool": "*"},
    }
    resource_tags = {
        "StringEquals": {f"aws:ResourceTag/{owned}": "owned"},
        "StringLike": {"aws:ResourceTag/karpenter.sh/nodepool": "*"},
    }
    profile_tags = {
        "StringEquals": {f"aws:ResourceTag/{owned}": "owned", "aws:ResourceTag/topology.kubernetes.io/region": region},
        "StringLike": {"aws:ResourceTag/karpenter.k8s.aws/ec2nodeclass": "*"},
    }
    statements: list[dict[str, Any]] = [
        {
            "Sid": "AllowScopedEC2InstanceAccessActions",
            "Action": ["ec2:RunInstances", "ec2:CreateFleet"],
            "Resource": [
                f"{ec2}::image/*",
                f"{ec2}::snapshot/*",
                f"{ec2}:*:security-group/*",
                f"{ec2}:*:subnet/*",
                f"{ec2}:*:capacity-reservation/*",
                f"{ec2}:*:placement-group/*",
            ],
        },
        {
            "Sid": "AllowScopedEC2LaunchTemplateAccessActions",
            "Action": ["ec2:RunInstances", "ec2:CreateFleet"],
            "Resource": f"{ec2}:*:launch-template/*",
            "Condition": resource_tags,
        },
        {
            "Sid": "AllowScopedEC2InstanceActionsWithTags",
            "Action": ["ec2:RunInstances", "ec2:CreateFleet", "ec2:CreateLaunchTemplate"],
            "Resource": launched,
            "Condition": request_tags,
        },
        {
            "Sid": "AllowScopedResourceCreationTagging",
            "Action": "ec2:CreateTags",
            "Resource": launched,
            "Condition": {
                "StringEquals": {
                    **request_tags["StringEquals"],
                    "ec2:CreateAction": ["RunInstances", "CreateFleet", "CreateLaunchTemplate"],
                },
                "StringLike": request_tags["StringLike"],
            },
        },
        {
            "Sid": "AllowScopedResourceTagging",
            "Action": "ec2:CreateTags",
            "Resource": f"{ec2}:*:instance/*",
            "Condition": {
                **resource_tags,
                "StringEqualsIfExists": {"aws:RequestTag/eks:eks-cluster-name": cluster_name},
                "ForAllValues:StringEquals": {
                    "aws:TagKeys": ["eks:eks-cluster-name", "karpenter.sh/nodeclaim", "Name"]
                },
            },
        },
        {
            "Sid": "AllowScopedDeletion",
            "Action": ["ec2:TerminateInstances", "ec2:DeleteLaunchTemplate"],
            "Resource": [f"{ec2}:*:instance/*", f"{ec2}:*:launch-template/*"],
            "Condition": resource_tags,
        },
        {
            "Sid": "AllowRegionalReadActions",
            "Action": [
                "ec2:DescribeAvailabilityZones",
                "ec2:DescribeCapacityReservations",
                "ec2:DescribeImages",
                "ec2:DescribeInstances",
                "ec2:DescribeInstanceTypeOfferings",
                "ec2:DescribeInstanceTypes",
                "ec2:DescribeLaunchTemplates",
                "ec2:DescribePlacementGroups",
                "ec2:DescribeSecurityGroups",
                "ec2:DescribeSpotPriceHistory",
                "ec2:DescribeSubnets",
            ],
            "Resource": "*",
            "Condition": {"StringEquals": {"aws:RequestedRegion": region}},
        },
        {
            "Sid": "AllowSSMReadActions",
            "Action": "ssm:GetParameter",
            "Resource": f"arn:{partition}:ssm:{region}::parameter/aws/service/*",
        },
        {"Sid": "AllowPricingReadActions", "Action": "pricing:GetProducts", "Resource": "*"},
        {
            "Sid": "AllowInterruptionQueueActions",
            "Action": ["sqs:DeleteMessage", "sqs:GetQueueUrl", "sqs:ReceiveMessage"],
            "Resource": queue_arn,
        },
        {
            "Sid": "AllowPassingInstanceRole",
            "Action": "iam:PassRole",
            "Resource": node_role_arn,
            "Condition": {"StringEquals": {"iam:PassedToService": "ec2.amazonaws.com"}},
        },
        {
            "Sid": "AllowScopedInstanceProfileCreationActions",
            "Action": "iam:CreateInstanceProfile",
            "Resource": profiles,
            "Condition": {
                "StringEquals": {
                    f"aws:RequestTag/{owned}": "owned",
                    "aws:RequestTag/eks:eks-cluster-name": cluster_name,
                    "aws:RequestTag/topology.kubernetes.io/region": region,
                },
                "StringLike": {"aws:RequestTag/karpenter.k8s.aws/ec2nodeclass": "*"},
            },
        },
        {
            "Sid": "AllowScopedInstanceProfileTagActions",
            "Action": "iam:TagInstanceProfile",
            "Resource": profiles,
            "Condition": {
                "StringEquals": {
                    **profile_tags["StringEquals"],
                    f"aws:RequestTag/{owned}": "owned",
                    "aws:RequestTag/eks:eks-cluster-name": cluster_name,
                    "aws:RequestTag/topology.kubernetes.io/region": region,
                },
                "StringLike": {
                    **profile_tags["StringLike"],
                    "aws:RequestTag/karpenter.k8s.aws/ec2nodeclass": "*",
                },
            },
        },
        {
            "Sid": "AllowScopedInstanceProfileActions",
            "Action": [
                "iam:AddRoleToInstanceProfile",
                "iam:RemoveRoleFromInstanceProfile",
                "iam:DeleteInstanceProfile",
            ],
            "Resource": profiles,
            "Condition": profile_tags,
        },
        # ListInstanceProfiles takes instance-profile ARNs (IAM's privilege table), so no "*" is needed.
        {
            "Sid": "AllowInstanceProfileReadActions",
            "Action": ["iam:GetInstanceProfile", "iam:ListInstanceProfiles"],
            "Resource": profiles,
        },
        {
            "Sid": "AllowAPIServerEndpointDiscovery",
            "Action": "eks:DescribeCluster",
            "Resource": f"arn:{partition}:eks:{region}:{account_id}:cluster/{cluster_name}",
        },
    ]
    return {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", **s} for s in statements]}


def interruption_queue_policy(queue_arn: str) -> dict[str, Any]:
    """EventBridge (and SQS itself) may send to the queue; nothing may reach it without TLS."""
    return {
        "Version": "2012-10-17",
        "Id": "EC2InterruptionPolicy",
        "Statement": [
            {
                "Effect": "Allow",
                "Principal": {"Service": ["events.amazonaws.com", "sqs.amazonaws.com"]},
                "Action": "sqs:SendMessage",
                "Resource": queue_arn,
            },
            {
                "Sid": "DenyHTTP",
                "Effect": "Deny",
                "Principal": "*",
                "Action": "sqs:*",
                "Resource": queue_arn,
                "Condition": {"Bool": {"aws:SecureTransport": "false"}},
            },
        ],
    }


@dataclass(frozen=True)
class InterruptionEvent:
    """An EventBridge event Karpenter acts on before the instance goes: it cordons, drains and replaces the node."""

    role: str
    """Names the rule: `<name>-<role>`."""
    source: str
    detail_type: str

    def pattern(self) -> str:
        return json.dumps({"source": [self.source], "detail-type": [self.detail_type]})


INTERRUPTION_EVENTS = (
    InterruptionEvent("health-event", "aws.health", "AWS Health Event"),
    InterruptionEvent("spot-interruption", "aws.ec2", "EC2 Spot Instance Interruption Warning"),
    InterruptionEvent("rebalance", "aws.ec2", "EC2 Instance Rebalance Recommendation"),
    InterruptionEvent("state-change", "aws.ec2", "EC2 Instance State-change Notification"),
    InterruptionEvent("reservation-interruption", "aws.ec2", "EC2 Capacity Reservation Instance Interruption Warning"),
)


def karpenter_chart_values(
    cluster_name: str,
    queue_name: pulumi.Input[str],
    node_selector: Mapping[str, str],
    region: pulumi.Input[str] | None = None,
) -> dict[str, Any]:
    """Helm values for the controller: two replicas on `node_selector`'s nodes, with the interruption queue.

    The region is given, not discovered: nodes allow one IMDS hop, so the controller's pods cannot ask IMDS."""
    return {
        "settings": {"clusterName": cluster_name, "interruptionQueue": queue_name},
        "serviceAccount": {"name": SERVICE_ACCOUNT},
        "replicas": 2,
        "nodeSelector": dict(node_selector),
        # Karpenter's recommended sizing; a throttled controller launches nodes late.
        "controller": {
            "resources": {"requests": {"cpu": "1", "memory": "1Gi"}, "limits": {"memory": "1Gi"}},
            **({"env": [{"name": "AWS_REGION", "value": region}]} if region is not None else {}),
        },
    }


def _check_args(at: str, args: KarpenterArgs) -> dict[str, str]:
    cluster_name = args["cluster_name"]
    if not isinstance(cluster_name, str) or not cluster_name:
        raise ValueError(f"{at}.cluster_name={cluster_name!r}: give the EKS cluster's name as a plain string")
    node_selector = dict(args.get("node_selector", {POOL_LABEL: SYSTEM_POOL_NAME}))
    if not node_selector:
        raise ValueError(
            f"{at}.node_selector={{}}: the controller would run anywhere, even on nodes it removes; "
            f"select the system pool, e.g. {{{POOL_LABEL!r}: {SYSTEM_POOL_NAME!r}}}"
        )
    return node_selector


class Karpenter(pulumi.ComponentResource):
    """The Karpenter controller and everything it needs; pass the cluster's Kubernetes provider through opts.

    GPU pools (`KarpenterGpuPool`) go in with `depends_on=[karpenter.release]`: the release brings the CRDs,
    and waits for the node role's access entry, so the nodes it launches can join the cluster.
    """

    node_role_name: pulumi.Output[str]
    """The role Karpenter's nodes run as: every EC2NodeClass names it."""
    node_role_arn: pulumi.Output[str]
    interruption_queue_name: pulumi.Output[str]
    release: k8s.helm.v3.Release
    """The controller's release; NodePools and EC2NodeClasses depend on it."""

    def __init__(self, name: str, args: KarpenterArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__("modelplane:compute:Karpenter", name, {}, opts)
        at = f"Karpenter {name!r}"
        node_selector = _check_args(at, args)
        cluster_name = args["cluster_name"]
        tags = dict(args.get("tags", {}))
        child = pulumi.ResourceOptions(parent=self)
        invoke = pulumi.InvokeOutputOptions(parent=self)
        partition = aws.get_partition_output(opts=invoke).partition
        region = aws.get_region_output(opts=invoke).region
        account_id = aws.get_caller_identity_output(opts=invoke).account_id
        # The cluster's name, known now, resolved through its security group so what needs the cluster waits for it.
        cluster = pulumi.Output.from_input(args["cluster_security_group_id"]).apply(lambda _: cluster_name)

        node_role = aws.iam.Role(
            f"{name}-node-role", assume_role_policy=assume_role_policy("ec2.amazonaws.com"), tags=tags, opts=child
        )
        for policy in NODE_POLICIES:
            aws.iam.RolePolicyAttachment(
                f"{name}-node-{policy}",
                role=node_role.name,
                policy_arn=managed_policy_arn(partition, policy),
                opts=child,
            )
        # EKS creates access entries only for managed node groups' roles; Karpenter's nodes need their own.
        node_access = aws.eks.AccessEntry(
            f"{name}-node-access",
            cluster_name=cluster,
            principal_arn=node_role.arn,
            type="EC2_LINUX",
            tags=tags,
            opts=child,
        )

        queue = aws.sqs.Queue(
            f"{name}-interruption-queue",
            message_retention_seconds=INTERRUPTION_QUEUE_RETENTION_SECONDS,
            sqs_managed_sse_enabled=True,
            tags=tags,
            opts=child,
        )
        queue_policy = aws.sqs.QueuePolicy(
            f"{name}-interruption-queue-policy",
            queue_url=queue.id,
            policy=queue.arn.apply(lambda arn: json.dumps(interruption_queue_policy(arn))),
            opts=child,
        )
        for event in INTERRUPTION_EVENTS:
            rule = aws.cloudwatch.EventRule(
                f"{name}-{event.role}",
                description=f"{event.detail_type} events for Karpenter in {cluster_name}",
                event_pattern=event.pattern(),
                tags=tags,
                opts=child,
            )
            aws.cloudwatch.EventTarget(
                f"{name}-{event.role}-target",
                rule=rule.name,
                arn=queue.arn,
                target_id="KarpenterInterruptionQueueTarget",
                opts=child,
            )

        document = pulumi.Output.all(
            partition=partition, region=region, account_id=account_id, node_role_arn=node_role.arn, queue_arn=queue.arn
        ).apply(lambda values: json.dumps(controller_policy(cluster_name=cluster_name, **values)))
        controller = pod_identity(
            f"{name}-controller",
            parent=self,
            cluster_name=cluster,
            namespace=NAMESPACE,
            service_account=SERVICE_ACCOUNT,
            policy=InlinePolicy("policy", document),
            tags=tags,
        )
        discovery_tag = aws.ec2.Tag(
            f"{name}-discovery-tag",
            resource_id=args["cluster_security_group_id"],
            key=KARPENTER_DISCOVERY_TAG,
            value=cluster_name,
            opts=child,
        )

        # A separate chart for the CRDs: Helm installs a chart's own CRDs once and never upgrades them.
        crds = k8s.helm.v3.Release(
            f"{name}-crds",
            name=f"{RELEASE_NAME}-crd",
            chart=CRD_CHART,
            version=CHART_VERSION,
            namespace=NAMESPACE,
            atomic=True,
            opts=child,
        )
        self.release = k8s.helm.v3.Release(
            f"{name}-release",
            name=RELEASE_NAME,
            chart=CHART,
            version=CHART_VERSION,
            namespace=NAMESPACE,
            skip_crds=True,
            values=karpenter_chart_values(cluster_name, queue.name, node_selector, region),
            # A failed upgrade rolls back instead of leaving the cluster without an autoscaler.
            atomic=True,
            opts=pulumi.ResourceOptions(
                parent=self,
                depends_on=[
                    crds,
                    controller.policy,
                    *controller.pod_dependencies,
                    queue_policy,
                    discovery_tag,
                    node_access,
                ],
            ),
        )
        self.node_role_name = node_role.name
        self.node_role_arn = node_role.arn
        self.interruption_queue_name = queue.name
        self.register_outputs(
            {
                "node_role_name": self.node_role_name,
                "node_role_arn": self.node_role_arn,
                "interruption_queue_name": self.interruption_queue_name,
            }
        )
