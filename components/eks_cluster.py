"""An EKS control plane with encrypted secrets, API access entries, node IAM role and managed add-ons."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, NotRequired, TypedDict

import pulumi
import pulumi_aws as aws
import yaml

from components.iam import ManagedPolicy, assume_role_policy, managed_policy_arn, pod_identity
from modelplane.config import CONTROL_PLANE_LOG_TYPES, EndpointAccess

DEFAULT_KUBERNETES_VERSION = "1.33"
CLUSTER_ADMIN_ACCESS_POLICY = "AmazonEKSClusterAdminPolicy"
CLUSTER_POLICIES = ("AmazonEKSClusterPolicy",)
NODE_POLICIES = (
    "AmazonEKSWorkerNodePolicy",
    "AmazonEKS_CNI_Policy",
    "AmazonEC2ContainerRegistryReadOnly",
    "AmazonSSMManagedInstanceCore",
)
EBS_CSI_POLICY = "service-role/AmazonEBSCSIDriverPolicy"
EBS_CSI_NAMESPACE = "kube-system"
EBS_CSI_SERVICE_ACCOUNT = "ebs-csi-controller-sa"
FSX_CSI_ADDON = "aws-fsx-csi-driver"
FSX_CSI_POLICY = "AmazonFSxFullAccess"
FSX_CSI_SERVICE_ACCOUNT = "fsx-csi-controller-sa"


@dataclass(frozen=True)
class ManagedAddon:
    name: str
    needs_nodes: bool
    """Runs a Deployment: stays DEGRADED (and fails its create) until nodes exist."""


def managed_addons() -> list[ManagedAddon]:
    """The EKS-managed add-ons every cluster runs, in install order."""
    return [
        ManagedAddon("vpc-cni", needs_nodes=False),
        ManagedAddon("kube-proxy", needs_nodes=False),
        ManagedAddon("eks-pod-identity-agent", needs_nodes=False),
        ManagedAddon("coredns", needs_nodes=True),
        ManagedAddon("aws-ebs-csi-driver", needs_nodes=True),
    ]


def kubeconfig_yaml(cluster_name: str, endpoint: str, certificate_authority_data: str, region: str) -> str:
    """A kubeconfig that authenticates with `aws eks get-token`, so it holds no credential itself."""
    user = {
        "exec": {
            "apiVersion": "client.authentication.k8s.io/v1beta1",
            "command": "aws",
            "args": ["eks", "get-token", "--cluster-name", cluster_name, "--region", region, "--output", "json"],
            "interactiveMode": "Never",
        }
    }
    config: dict[str, Any] = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [
            {
                "name": cluster_name,
                "cluster": {"server": endpoint, "certificate-authority-data": certificate_authority_data},
            }
        ],
        "contexts": [{"name": cluster_name, "context": {"cluster": cluster_name, "user": cluster_name}}],
        "current-context": cluster_name,
        "users": [{"name": cluster_name, "user": user}],
    }
    return yaml.safe_dump(config, sort_keys=False)


class EksClusterArgs(TypedDict):
    cluster_name: str
    """The EKS cluster's name; plain, as subnet tags and the kubeconfig use it."""
    subnet_ids: pulumi.Input[Sequence[str]]
    """Private subnets for the control plane's network interfaces (one per AZ, at least two AZs)."""
    kubernetes_version: NotRequired[pulumi.Input[str]]
    """Kubernetes minor version; default 1.33."""
    endpoint_access: NotRequired[EndpointAccess]
    """API server endpoint exposure; default private (reachable only from the VPC)."""
    public_access_cidrs: NotRequired[Sequence[str]]
    """CIDRs allowed to reach a public endpoint; required with public_and_private."""
    control_plane_logging: NotRequired[Sequence[str]]
    """Control plane log types sent to CloudWatch; default all of them."""
    admin_role_arns: NotRequired[Sequence[str]]
    """IAM roles granted cluster admin through access entries; plain, one entry each."""
    tags: NotRequired[Mapping[str, str]]
    """Tags for every resource."""


class EksCluster(pulumi.ComponentResource):
    """The control plane and node-independent add-ons; `EksNodeAddons` adds the rest once nodes exist.

    No Kubernetes provider is created here: the stack builds one from `kubeconfig`.
    """

    cluster_name: pulumi.Output[str]
    endpoint: pulumi.Output[str]
    certificate_authority_data: pulumi.Output[str]
    kubeconfig: pulumi.Output[str]
    """Secret: it names the cluster's endpoint and CA."""
    node_role_arn: pulumi.Output[str]
    cluster_security_group_id: pulumi.Output[str]
    kms_key_arn: pulumi.Output[str]

    def __init__(self, name: str, args: EksClusterArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__("modelplane:cluster:EksCluster", name, {}, opts)
        endpoint_access = EndpointAccess(args.get("endpoint_access", EndpointAccess.PRIVATE))
        public_access_cidrs = list(args.get("public_access_cidrs", []))
        log_types = list(args.get("control_plane_logging", CONTROL_PLANE_LOG_TYPES))
        admin_role_arns = list(args.get("admin_role_arns", []))
        _validate(name, endpoint_access, public_access_cidrs, log_types)
        tags = dict(args.get("tags", {}))
        child = pulumi.ResourceOptions(parent=self)
        invoke = pulumi.InvokeOutputOptions(parent=self)
        partition = aws.get_partition_output(opts=invoke).partition
        region = aws.get_region_output(opts=invoke).region

        def aws_policy(path: str) -> pulumi.Output[str]:
            return managed_policy_arn(partition, path)

        cluster_role = aws.iam.Role(
            f"{name}-cluster-role",
            assume_role_policy=assume_role_policy("eks.amazonaws.com", ("sts:AssumeRole", "sts:TagSession")),
            tags=tags,
            opts=child,
        )
        cluster_policies = [
            aws.iam.RolePolicyAttachment(
                f"{name}-cluster-{policy}", role=cluster_role.name, policy_arn=aws_policy(policy), opts=child
            )
            for policy in CLUSTER_POLICIES
        ]
        key = aws.kms.Key(
            f"{name}-secrets-key",
            description=f"Envelope encryption of Kubernetes secrets in EKS cluster {args['cluster_name']}",
            enable_key_rotation=True,
            tags=tags,
            opts=child,
        )
        vpc_config: aws.eks.ClusterVpcConfigArgsDict = {
            "subnet_ids": args["subnet_ids"],
            # Nodes reach the API server privately even when it is also public.
            "endpoint_private_access": True,
            "endpoint_public_access": endpoint_access is EndpointAccess.PUBLIC_AND_PRIVATE,
        }
        if endpoint_access is EndpointAccess.PUBLIC_AND_PRIVATE:
            vpc_config["public_access_cidrs"] = public_access_cidrs
        cluster = aws.eks.Cluster(
            f"{name}-cluster",
            name=args["cluster_name"],
            version=args.get("kubernetes_version", DEFAULT_KUBERNETES_VERSION),
            role_arn=cluster_role.arn,
            vpc_config=vpc_config,
            access_config={
                "authentication_mode": "API",
                # Named admins replace the creator's implicit, invisible admin grant. Without any, the
                # creator keeps it, or nobody could administer the cluster. EKS fixes this at creation.
                "bootstrap_cluster_creator_admin_permissions": not admin_role_arns,
            },
            encryption_config={"provider": {"key_arn": key.arn}, "resources": ["secrets"]},
            enabled_cluster_log_types=log_types,
            # The managed add-ons below replace the unmanaged defaults EKS would otherwise install.
            bootstrap_self_managed_addons=False,
            tags=tags,
            opts=pulumi.ResourceOptions(parent=self, depends_on=cluster_policies),
        )

        for index, role_arn in enumerate(admin_role_arns):
            entry = aws.eks.AccessEntry(
                f"{name}-admin-{index}", cluster_name=cluster.name, principal_arn=role_arn, tags=tags, opts=child
            )
            aws.eks.AccessPolicyAssociation(
                f"{name}-admin-{index}-policy",
                cluster_name=cluster.name,
                principal_arn=entry.principal_arn,
                policy_arn=partition.apply(
                    lambda p: f"arn:{p}:eks::aws:cluster-access-policy/{CLUSTER_ADMIN_ACCESS_POLICY}"
                ),
                access_scope={"type": "cluster"},
                opts=child,
            )

        node_role = aws.iam.Role(
            f"{name}-node-role", assume_role_policy=assume_role_policy("ec2.amazonaws.com"), tags=tags, opts=child
        )
        node_policies = [
            aws.iam.RolePolicyAttachment(
                f"{name}-node-{policy}", role=node_role.name, policy_arn=aws_policy(policy), opts=child
            )
            for policy in NODE_POLICIES
        ]

        pod_identity(
            f"{name}-ebs-csi",
            parent=self,
            cluster_name=cluster.name,
            namespace=EBS_CSI_NAMESPACE,
            service_account=EBS_CSI_SERVICE_ACCOUNT,
            policy=ManagedPolicy(aws_policy(EBS_CSI_POLICY)),
            tags=tags,
        )
        for addon in managed_addons():
            if not addon.needs_nodes:
                _addon(
                    name, addon.name, cluster.name, tags, pulumi.ResourceOptions(parent=self, depends_on=node_policies)
                )

        certificate_authority_data = cluster.certificate_authority.apply(lambda ca: ca.data or "")
        self.cluster_name = cluster.name
        self.endpoint = cluster.endpoint
        self.certificate_authority_data = certificate_authority_data
        self.kubeconfig = pulumi.Output.secret(
            pulumi.Output.all(cluster.name, cluster.endpoint, certificate_authority_data, region).apply(
                lambda values: kubeconfig_yaml(*values)
            )
        )
        self.node_role_arn = node_role.arn
        self.cluster_security_group_id = cluster.vpc_config.apply(lambda vpc: vpc.cluster_security_group_id or "")
        self.kms_key_arn = key.arn
        self.register_outputs(
            {
                "cluster_name": self.cluster_name,
                "endpoint": self.endpoint,
                "certificate_authority_data": self.certificate_authority_data,
                "kubeconfig": self.kubeconfig,
                "node_role_arn": self.node_role_arn,
                "cluster_security_group_id": self.cluster_security_group_id,
                "kms_key_arn": self.kms_key_arn,
            }
        )


class EksNodeAddonsArgs(TypedDict):
    cluster_name: pulumi.Input[str]
    """The cluster (`EksCluster.cluster_name`) whose nodes run the add-ons."""
    fsx_csi_driver: NotRequired[bool]
    """Also run the FSx for Lustre CSI driver, with its own pod identity; default False."""
    tags: NotRequired[Mapping[str, str]]
    """Tags for every resource."""


class EksNodeAddons(pulumi.ComponentResource):
    """The managed add-ons that run Deployments (CoreDNS, EBS CSI controller).

    Create it with `depends_on` the system node pool: without nodes these add-ons stay DEGRADED
    and their creation fails. The EBS CSI driver's pod identity comes from `EksCluster`.
    """

    addon_names: pulumi.Output[list[str]]

    def __init__(self, name: str, args: EksNodeAddonsArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__("modelplane:cluster:EksNodeAddons", name, {}, opts)
        tags = dict(args.get("tags", {}))
        addons = [
            _addon(name, addon.name, args["cluster_name"], tags, pulumi.ResourceOptions(parent=self))
            for addon in managed_addons()
            if addon.needs_nodes
        ]
        if args.get("fsx_csi_driver", False):
            partition = aws.get_partition_output(opts=pulumi.InvokeOutputOptions(parent=self)).partition
            fsx = pod_identity(
                f"{name}-fsx-csi",
                parent=self,
                cluster_name=args["cluster_name"],
                namespace=EBS_CSI_NAMESPACE,
                service_account=FSX_CSI_SERVICE_ACCOUNT,
                policy=ManagedPolicy(managed_policy_arn(partition, FSX_CSI_POLICY)),
                tags=tags,
            )
            addons.append(
                _addon(
                    name,
                    FSX_CSI_ADDON,
                    args["cluster_name"],
                    tags,
                    pulumi.ResourceOptions(parent=self, depends_on=[fsx.policy, *fsx.pod_dependencies]),
                )
            )
        self.addon_names = pulumi.Output.all(*[addon.addon_name for addon in addons])
        self.register_outputs({"addon_names": self.addon_names})


def _addon(
    name: str, addon_name: str, cluster_name: pulumi.Input[str], tags: Mapping[str, str], opts: pulumi.ResourceOptions
) -> aws.eks.Addon:
    # No version pinned: EKS picks the default for the cluster's Kubernetes version.
    return aws.eks.Addon(
        f"{name}-{addon_name}",
        cluster_name=cluster_name,
        addon_name=addon_name,
        resolve_conflicts_on_create="OVERWRITE",
        resolve_conflicts_on_update="OVERWRITE",
        tags=dict(tags),
        opts=opts,
    )


def _validate(name: str, endpoint_access: EndpointAccess, public_access_cidrs: list[str], log_types: list[str]) -> None:
    at = f"EksCluster {name!r}"
    if endpoint_access is EndpointAccess.PUBLIC_AND_PRIVATE and not public_access_cidrs:
        raise ValueError(
            f"{at}: public_access_cidrs=[]: a public endpoint needs the CIDRs allowed to reach it, "
            "or set endpoint_access=private"
        )
    if "0.0.0.0/0" in public_access_cidrs:
        raise ValueError(f"{at}: public_access_cidrs: '0.0.0.0/0' opens the API server to the internet")
    unknown = [t for t in log_types if t not in CONTROL_PLANE_LOG_TYPES]
    if unknown:
        raise ValueError(
            f"{at}: control_plane_logging={log_types!r}: unknown {unknown}; use {', '.join(CONTROL_PLANE_LOG_TYPES)}"
        )
