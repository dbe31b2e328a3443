"""An EKS control plane with encrypted secrets, API access entries, node IAM role and managed add-ons."""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Any, NotRequired, TypedDict

import pulumi
import pulumi_aws as aws
import yaml

from modelplane.components.iam import ManagedPolicy, assume_role_policy, managed_policy_arn, pod_identity

DEFAULT_KUBERNETES_VERSION = "1.33"
SUPPORTED_KUBERNETES_VERSIONS = ("1.31", "1.32", "1.33", "1.34")
CONTROL_PLANE_LOG_TYPES = ("api", "audit", "authenticator", "controllerManager", "scheduler")
IAM_ROLE_ARN = re.compile(r"^arn:aws[-a-z]*:iam::\d{12}:role/.+$")


class EndpointAccess(StrEnum):
    PRIVATE = "private"
    """API server reachable only from inside the VPC (and peered networks)."""
    PUBLIC_AND_PRIVATE = "public_and_private"
    """Also reachable from `public_access_cidrs`; nodes still use the private endpoint."""


def cluster_problems(
    at: str,
    *,
    kubernetes_version: object = DEFAULT_KUBERNETES_VERSION,
    endpoint_access: object = EndpointAccess.PRIVATE,
    public_access_cidrs: Sequence[str] = (),
    control_plane_logging: Sequence[str] = CONTROL_PLANE_LOG_TYPES,
    admin_role_arns: Sequence[str] = (),
) -> list[str]:
    """Every problem of a cluster's settings, each naming `at` (the config path), the value and the fix."""
    problems = []
    if kubernetes_version not in SUPPORTED_KUBERNETES_VERSIONS:
        problems.append(
            f"{at}.kubernetes_version={kubernetes_version!r}: unsupported; use one of "
            f"{', '.join(SUPPORTED_KUBERNETES_VERSIONS)} (quote it in YAML: '1.33')"
        )
    if endpoint_access not in set(EndpointAccess):
        problems.append(f"{at}.endpoint_access={endpoint_access!r}: use one of {', '.join(EndpointAccess)}")
    for cidr in public_access_cidrs:
        try:
            network = ipaddress.IPv4Network(cidr)
        except ValueError:
            problems.append(f"{at}.public_access_cidrs: {cidr!r} is not an IPv4 CIDR; use e.g. '203.0.113.0/24'")
            continue
        if network.prefixlen == 0:
            problems.append(f"{at}.public_access_cidrs: {cidr!r} opens the API server to the internet; list your CIDRs")
    if endpoint_access == EndpointAccess.PUBLIC_AND_PRIVATE and not public_access_cidrs:
        problems.append(
            f"{at}.public_access_cidrs=[]: a public endpoint needs the CIDRs allowed to reach it, "
            "or set endpoint_access: private"
        )
    unknown = [t for t in control_plane_logging if t not in CONTROL_PLANE_LOG_TYPES]
    if unknown:
        problems.append(
            f"{at}.control_plane_logging={list(control_plane_logging)!r}: unknown log types {unknown}; "
            f"known: {', '.join(CONTROL_PLANE_LOG_TYPES)}"
        )
    for arn in admin_role_arns:
        if not IAM_ROLE_ARN.match(arn):
            problems.append(
                f"{at}.admin_role_arns: {arn!r} is not an IAM role ARN (arn:aws:iam::123456789012:role/NAME)"
            )
    return problems


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
        # Resource metrics for the HorizontalPodAutoscalers (a community add-on, no IAM).
        ManagedAddon("metrics-server", needs_nodes=True),
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
        admin_role_arns = list(args.get("admin_role_arns", []))
        version = args.get("kubernetes_version", DEFAULT_KUBERNETES_VERSION)
        problems = cluster_problems(
            f"EksCluster {name!r}",
            kubernetes_version=version if isinstance(version, str) else DEFAULT_KUBERNETES_VERSION,
            endpoint_access=endpoint_access,
            public_access_cidrs=list(args.get("public_access_cidrs", [])),
            control_plane_logging=list(args.get("control_plane_logging", CONTROL_PLANE_LOG_TYPES)),
            admin_role_arns=admin_role_arns,
        )
        if problems:
            raise ValueError("; ".join(problems))
        self._name = name
        self._tags = dict(args.get("tags", {}))
        invoke = pulumi.InvokeOutputOptions(parent=self)
        self._partition = aws.get_partition_output(opts=invoke).partition
        region = aws.get_region_output(opts=invoke).region

        key = aws.kms.Key(
            f"{name}-secrets-key",
            description=f"Envelope encryption of Kubernetes secrets in EKS cluster {args['cluster_name']}",
            enable_key_rotation=True,
            tags=self._tags,
            opts=pulumi.ResourceOptions(parent=self),
        )
        cluster = self._control_plane(args, endpoint_access, key, admin_role_arns)
        self._grant_admins(cluster, admin_role_arns)
        node_role, node_policies = self._node_role()
        self._node_independent_addons(cluster, node_policies)

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

    def _aws_policy(self, path: str) -> pulumi.Output[str]:
        return managed_policy_arn(self._partition, path)

    def _control_plane(
        self, args: EksClusterArgs, endpoint_access: EndpointAccess, key: aws.kms.Key, admin_role_arns: list[str]
    ) -> aws.eks.Cluster:
        """The cluster's IAM role and the control plane itself."""
        name, child = self._name, pulumi.ResourceOptions(parent=self)
        cluster_role = aws.iam.Role(
            f"{name}-cluster-role",
            assume_role_policy=assume_role_policy("eks.amazonaws.com", ("sts:AssumeRole", "sts:TagSession")),
            tags=self._tags,
            opts=child,
        )
        cluster_policies = [
            aws.iam.RolePolicyAttachment(
                f"{name}-cluster-{policy}", role=cluster_role.name, policy_arn=self._aws_policy(policy), opts=child
            )
            for policy in CLUSTER_POLICIES
        ]
        vpc_config: aws.eks.ClusterVpcConfigArgsDict = {
            "subnet_ids": args["subnet_ids"],
            # Nodes reach the API server privately even when it is also public.
            "endpoint_private_access": True,
            "endpoint_public_access": endpoint_access is EndpointAccess.PUBLIC_AND_PRIVATE,
        }
        if endpoint_access is EndpointAccess.PUBLIC_AND_PRIVATE:
            vpc_config["public_access_cidrs"] = list(args.get("public_access_cidrs", []))
        return aws.eks.Cluster(
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
            enabled_cluster_log_types=list(args.get("control_plane_logging", CONTROL_PLANE_LOG_TYPES)),
            # The managed add-ons below replace the unmanaged defaults EKS would otherwise install.
            bootstrap_self_managed_addons=False,
            tags=self._tags,
            opts=pulumi.ResourceOptions(parent=self, depends_on=cluster_policies),
        )

    def _grant_admins(self, cluster: aws.eks.Cluster, admin_role_arns: list[str]) -> None:
        """One access entry with the cluster-admin policy per named admin role."""
        name, child = self._name, pulumi.ResourceOptions(parent=self)
        for index, role_arn in enumerate(admin_role_arns):
            entry = aws.eks.AccessEntry(
                f"{name}-admin-{index}", cluster_name=cluster.name, principal_arn=role_arn, tags=self._tags, opts=child
            )
            aws.eks.AccessPolicyAssociation(
                f"{name}-admin-{index}-policy",
                cluster_name=cluster.name,
                principal_arn=entry.principal_arn,
                policy_arn=self._partition.apply(
                    lambda p: f"arn:{p}:eks::aws:cluster-access-policy/{CLUSTER_ADMIN_ACCESS_POLICY}"
                ),
                access_scope={"type": "cluster"},
                opts=child,
            )

    def _node_role(self) -> tuple[aws.iam.Role, list[aws.iam.RolePolicyAttachment]]:
        """The IAM role every node pool's instances run as, with its managed policies."""
        name, child = self._name, pulumi.ResourceOptions(parent=self)
        node_role = aws.iam.Role(
            f"{name}-node-role", assume_role_policy=assume_role_policy("ec2.amazonaws.com"), tags=self._tags, opts=child
        )
        node_policies = [
            aws.iam.RolePolicyAttachment(
                f"{name}-node-{policy}", role=node_role.name, policy_arn=self._aws_policy(policy), opts=child
            )
            for policy in NODE_POLICIES
        ]
        return node_role, node_policies

    def _node_independent_addons(
        self, cluster: aws.eks.Cluster, node_policies: list[aws.iam.RolePolicyAttachment]
    ) -> None:
        """The EBS CSI driver's pod identity, and the managed add-ons that run without nodes."""
        pod_identity(
            f"{self._name}-ebs-csi",
            parent=self,
            cluster_name=cluster.name,
            namespace=EBS_CSI_NAMESPACE,
            service_account=EBS_CSI_SERVICE_ACCOUNT,
            policy=ManagedPolicy(self._aws_policy(EBS_CSI_POLICY)),
            tags=self._tags,
        )
        for addon in managed_addons():
            if not addon.needs_nodes:
                _addon(
                    self._name,
                    addon.name,
                    cluster.name,
                    self._tags,
                    pulumi.ResourceOptions(parent=self, depends_on=node_policies),
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
