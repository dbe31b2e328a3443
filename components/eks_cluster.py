"""An EKS control plane with encrypted secrets and logs, a deployer's path to its API server, API access
entries, the node IAM role and managed add-ons."""

from __future__ import annotations

import ipaddress
import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import date
from enum import StrEnum
from typing import Any, NotRequired, TypedDict

import pulumi
import pulumi_aws as aws
import yaml

from modelplane.components.cloudwatch_logs import log_key_policy, retention_problems
from modelplane.components.eks_versions import (
    default_kubernetes_version,
    kubernetes_version_problems,
    kubernetes_version_warnings,
)
from modelplane.components.iam import (
    ManagedPolicy,
    assume_role_policy,
    managed_policy_arn,
    pod_identity,
    pod_identity_role,
)

DEFAULT_KUBERNETES_VERSION = default_kubernetes_version()
"""The newest version in EKS standard support on the day this module is imported (see eks_versions). Only a
new cluster should take it: a stack that leaves its version unset would upgrade when the calendar gains a row."""
CONTROL_PLANE_LOG_TYPES = ("api", "audit", "authenticator", "controllerManager", "scheduler")
IAM_ROLE_ARN = re.compile(r"^arn:aws[-a-z]*:iam::\d{12}:role/.+$")
# The retention periods CloudWatch Logs accepts (0, never expire, is left out on purpose).
# fmt: off
DEFAULT_LOG_RETENTION_DAYS = 90
API_SERVER_PORT = 443
MAX_CIDR_PREFIX = 16
"""The broadest CIDR a deployer path may name: a deployer connects from a few addresses (a NAT's, a VPN pool)."""
MAX_PUBLIC_ACCESS_ADDRESSES = 2**24
"""The most public addresses `public_access_cidrs` may cover together: a /8's worth."""
PRIVATE_IPV4 = tuple(
    ipaddress.IPv4Network(cidr) for cidr in ("10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16", "100.64.0.0/10")
)
"""RFC 1918 and RFC 6598 (carrier-grade NAT): where a deployer reaching the private endpoint connects from, a VPN's
client pool or a peered VPC's runners."""
NON_PUBLIC_IPV4 = PRIVATE_IPV4 + tuple(
    ipaddress.IPv4Network(cidr)
    for cidr in (
        "0.0.0.0/8",  # "this network"
        "127.0.0.0/8",  # loopback
        "169.254.0.0/16",  # link-local
        "224.0.0.0/4",  # multicast
        "240.0.0.0/4",  # reserved, and the broadcast address
    )
)
"""Source addresses the internet never delivers to a public endpoint; every other IPv4 address counts as public."""


class EndpointAccess(StrEnum):
    PRIVATE = "private"
    """API server reachable only from inside the VPC (and peered networks)."""
    PUBLIC_AND_PRIVATE = "public_and_private"
    """Also reachable from `public_access_cidrs`; nodes still use the private endpoint."""


def _ipv4_networks(at: str, cidrs: Sequence[str], example: str) -> tuple[list[ipaddress.IPv4Network], list[str]]:
    networks, problems = [], []
    for cidr in cidrs:
        try:
            networks.append(ipaddress.IPv4Network(cidr))
        except ValueError:
            problems.append(f"{at}: {cidr!r} is not an IPv4 CIDR; use e.g. {example!r}")
    return networks, problems


def _public_addresses(network: ipaddress.IPv4Network) -> int:
    """How many of `network`'s addresses are public (CIDRs either nest or are disjoint)."""
    hidden = sum(min(network.num_addresses, n.num_addresses) for n in NON_PUBLIC_IPV4 if network.overlaps(n))
    return network.num_addresses - hidden


PUBLIC_IPV4_ADDRESSES = _public_addresses(ipaddress.IPv4Network("0.0.0.0/0"))


def public_access_problems(at: str, public_access_cidrs: Sequence[str]) -> list[str]:
    """The rule for the CIDRs allowed to reach a public endpoint, each problem naming `at`, the value and the fix.

    Each is an IPv4 CIDR of public addresses no broader than a /16, and together they cover at most a /8's worth of
    public addresses, never the whole public internet (['0.0.0.0/1', '128.0.0.0/1'] is 0.0.0.0/0 in two halves).
    Public means outside NON_PUBLIC_IPV4: a private source never reaches a public endpoint.
    """
    field = f"{at}.public_access_cidrs"
    networks, problems = _ipv4_networks(field, public_access_cidrs, "203.0.113.0/24")
    union = list(ipaddress.collapse_addresses(networks))
    covered = sum(_public_addresses(n) for n in union)
    if networks and covered == PUBLIC_IPV4_ADDRESSES:
        return [
            *problems,
            f"{field}={list(public_access_cidrs)!r}: covers the whole public internet, which opens the API server to "
            "the internet; list the deployer's egress CIDRs (a NAT gateway's /32, an office range) or set "
            "endpoint_access: private with deployer_cidrs",
        ]
    broad = False
    for network in networks:
        if network.prefixlen < MAX_CIDR_PREFIX:
            broad = True
            problems.append(
                f"{field}: {str(network)!r} spans {network.num_addresses} addresses, broader than a "
                f"/{MAX_CIDR_PREFIX}; list the deployer's egress CIDRs (a NAT gateway's /32, an office range)"
            )
        elif _public_addresses(network) == 0:
            problems.append(
                f"{field}: {str(network)!r} is not a public range, so no request from it reaches a public endpoint; "
                "for a VPN or peered network set endpoint_access: private and list it in deployer_cidrs"
            )
    if not broad and covered > MAX_PUBLIC_ACCESS_ADDRESSES:
        problems.append(
            f"{field}={list(public_access_cidrs)!r}: together cover {covered} public addresses, more than a /8's "
            f"worth ({MAX_PUBLIC_ACCESS_ADDRESSES}); list only the deployer's egress CIDRs"
        )
    return problems


def deployer_cidr_problems(at: str, deployer_cidrs: Sequence[str]) -> list[str]:
    """The rule for the CIDRs let through the cluster security group to the private endpoint: private IPv4 CIDRs
    (RFC 1918 or RFC 6598, as a VPN or a peered VPC delivers them), each no broader than a /16."""
    field = f"{at}.deployer_cidrs"
    networks, problems = _ipv4_networks(field, deployer_cidrs, "10.8.0.0/22")
    for network in networks:
        if not any(network.subnet_of(private) for private in PRIVATE_IPV4):
            problems.append(
                f"{field}: {str(network)!r} is not a private range ({', '.join(str(n) for n in PRIVATE_IPV4)}); "
                "the private endpoint is reached over a VPN, peering or a transit gateway with private addresses. "
                "A deployer on the internet needs endpoint_access: public_and_private with public_access_cidrs"
            )
        elif network.prefixlen < MAX_CIDR_PREFIX:
            problems.append(
                f"{field}: {str(network)!r} is broader than a /{MAX_CIDR_PREFIX}; name the VPN's client pool or the "
                "CI runners' subnets"
            )
    return problems


def deployer_reachability_problems(
    at: str,
    endpoint_access: object,
    public_access_cidrs: Sequence[str] = (),
    deployer_cidrs: Sequence[str] = (),
) -> list[str]:
    """Whether the machine running `pulumi up` can reach the API server (it must, to create Kubernetes resources),
    and through a path no wider than it needs: a public endpoint limited to `public_access_cidrs`, or the private
    endpoint with the cluster security group open on 443 to `deployer_cidrs`."""
    if endpoint_access not in set(EndpointAccess):
        return [f"{at}.endpoint_access={endpoint_access!r}: use one of {', '.join(EndpointAccess)}"]
    problems = public_access_problems(at, public_access_cidrs) + deployer_cidr_problems(at, deployer_cidrs)
    if endpoint_access == EndpointAccess.PUBLIC_AND_PRIVATE and not public_access_cidrs:
        problems.append(
            f"{at}.public_access_cidrs=[]: a public endpoint needs the CIDRs allowed to reach it, "
            "or set endpoint_access: private with deployer_cidrs"
        )
    if endpoint_access == EndpointAccess.PRIVATE:
        if public_access_cidrs:
            problems.append(
                f"{at}.public_access_cidrs={list(public_access_cidrs)!r}: a private endpoint has no public side; "
                "set endpoint_access: public_and_private, or move VPN and peered ranges to deployer_cidrs"
            )
        if not deployer_cidrs:
            problems.append(
                f"{at}.deployer_cidrs=[]: with endpoint_access: private the machine running pulumi up could not "
                "reach the API server; list the private CIDRs it connects from (a VPN's client pool, peered CI "
                "runners), or set endpoint_access: public_and_private with public_access_cidrs"
            )
    return problems


def log_retention_problems(at: str, log_retention_days: object) -> list[str]:
    """CloudWatch Logs takes only some retention periods; a wrong one fails the log group's creation."""
    return retention_problems(f"{at}.log_retention_days", log_retention_days)


def cluster_problems(
    at: str,
    *,
    kubernetes_version: object = DEFAULT_KUBERNETES_VERSION,
    endpoint_access: object = EndpointAccess.PRIVATE,
    public_access_cidrs: Sequence[str] = (),
    deployer_cidrs: Sequence[str] = (),
    control_plane_logging: Sequence[str] = CONTROL_PLANE_LOG_TYPES,
    log_retention_days: object = DEFAULT_LOG_RETENTION_DAYS,
    admin_role_arns: Sequence[str] = (),
    today: date | None = None,
) -> list[str]:
    """Every problem of a cluster's settings, each naming `at` (the config path), the value and the fix.

    `today` (default: the real today) decides which Kubernetes versions EKS still supports;
    `kubernetes_version_warnings` tells what a supported one costs.
    """
    problems = kubernetes_version_problems(at, kubernetes_version, today)
    problems += deployer_reachability_problems(at, endpoint_access, public_access_cidrs, deployer_cidrs)
    unknown = [t for t in control_plane_logging if t not in CONTROL_PLANE_LOG_TYPES]
    if unknown:
        problems.append(
            f"{at}.control_plane_logging={list(control_plane_logging)!r}: unknown log types {unknown}; "
            f"known: {', '.join(CONTROL_PLANE_LOG_TYPES)}"
        )
    problems += log_retention_problems(at, log_retention_days)
    for arn in admin_role_arns:
        if not IAM_ROLE_ARN.match(arn):
            problems.append(
                f"{at}.admin_role_arns: {arn!r} is not an IAM role ARN (arn:aws:iam::123456789012:role/NAME)"
            )
    return problems


def control_plane_log_group_name(cluster_name: str) -> str:
    """The log group EKS writes control-plane logs to; it creates it itself (no retention, no KMS) if missing."""
    return f"/aws/eks/{cluster_name}/cluster"


def control_plane_log_key_policy(
    partition: str, dns_suffix: str, region: str, account_id: str, log_group_name: str
) -> dict[str, Any]:
    """The control-plane logs key's policy: CloudWatch Logs uses it for this one log group only."""
    return log_key_policy(partition, dns_suffix, region, account_id, log_group_name, "TheControlPlaneLogs")


def deployer_rule_name(name: str, cidr: str) -> str:
    """`<name>-deployer-10-8-0-0-22`: named by its CIDR, so reordering deployer_cidrs replaces nothing."""
    return f"{name}-deployer-{cidr.replace('.', '-').replace('/', '-')}"


CLUSTER_ADMIN_ACCESS_POLICY = "AmazonEKSClusterAdminPolicy"
CLUSTER_POLICIES = ("AmazonEKSClusterPolicy",)
NODE_POLICIES = (
    "AmazonEKSWorkerNodePolicy",
    "AmazonEC2ContainerRegistryReadOnly",
    "AmazonSSMManagedInstanceCore",
)
"""No AmazonEKS_CNI_Policy: with it, any process holding the node's credentials could rewire pod networking.
The VPC CNI gets it through its own pod identity (VPC_CNI_POLICY)."""
VPC_CNI_ADDON = "vpc-cni"
VPC_CNI_POLICY = "AmazonEKS_CNI_Policy"
VPC_CNI_SERVICE_ACCOUNT = "aws-node"
POD_IDENTITY_AGENT_ADDON = "eks-pod-identity-agent"
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
    service_account: str | None = None
    """The add-on's ServiceAccount given `policy` through the add-on's own pod identity association."""
    policy: str | None = None
    """The AWS-managed policy (path under arn:aws:iam::aws:policy/) its pods get through pod identity."""


def managed_addons() -> list[ManagedAddon]:
    """The EKS-managed add-ons every cluster runs, in install order: the pod identity agent first, since the
    VPC CNI gets its credentials through it (without the agent, aws-node crash-loops and no pod gets an IP)."""
    return [
        ManagedAddon(POD_IDENTITY_AGENT_ADDON, needs_nodes=False),
        ManagedAddon(VPC_CNI_ADDON, needs_nodes=False, service_account=VPC_CNI_SERVICE_ACCOUNT, policy=VPC_CNI_POLICY),
        ManagedAddon("kube-proxy", needs_nodes=False),
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
    """Kubernetes minor version; default the newest in EKS standard support (eks_versions). Set it on a live
    cluster: the default moves when the release calendar gains a version, and the control plane would follow."""
    endpoint_access: NotRequired[EndpointAccess]
    """API server endpoint exposure; default private (reachable only from the VPC and `deployer_cidrs`)."""
    public_access_cidrs: NotRequired[Sequence[str]]
    """Public CIDRs allowed to reach a public endpoint; required with public_and_private (`public_access_problems`
    says which are refused)."""
    deployer_cidrs: NotRequired[Sequence[str]]
    """Private CIDRs (a VPN's client pool, peered CI runners) let through the cluster security group on 443, so
    `pulumi up` reaches the private endpoint; required with endpoint_access private."""
    control_plane_logging: NotRequired[Sequence[str]]
    """Control plane log types sent to CloudWatch; default all of them."""
    log_retention_days: NotRequired[int]
    """How long CloudWatch keeps the control-plane logs, one of RETENTION_DAYS; default 90."""
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
    """Resolves once the role's policies and the node-independent add-ons exist: a node pool taking it waits."""
    cluster_security_group_id: pulumi.Output[str]
    kms_key_arn: pulumi.Output[str]
    log_group_name: pulumi.Output[str]
    """The control-plane log group, created here with retention and its own KMS key."""

    def __init__(self, name: str, args: EksClusterArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__("modelplane:cluster:EksCluster", name, {}, opts)
        at = f"EksCluster {name!r}"
        endpoint_access = EndpointAccess(args.get("endpoint_access", EndpointAccess.PRIVATE))
        admin_role_arns = list(args.get("admin_role_arns", []))
        version = args.get("kubernetes_version", DEFAULT_KUBERNETES_VERSION)
        # A version only known at deploy time is EKS's to refuse.
        known_version = version if isinstance(version, str) else DEFAULT_KUBERNETES_VERSION
        deployer_cidrs = list(args.get("deployer_cidrs", []))
        log_retention_days = args.get("log_retention_days", DEFAULT_LOG_RETENTION_DAYS)
        problems = cluster_problems(
            at,
            kubernetes_version=known_version,
            endpoint_access=endpoint_access,
            public_access_cidrs=list(args.get("public_access_cidrs", [])),
            deployer_cidrs=deployer_cidrs,
            control_plane_logging=list(args.get("control_plane_logging", CONTROL_PLANE_LOG_TYPES)),
            log_retention_days=log_retention_days,
            admin_role_arns=admin_role_arns,
        )
        if problems:
            raise ValueError("; ".join(problems))
        for warning in kubernetes_version_warnings(at, known_version):
            pulumi.log.warn(warning, resource=self)
        self._name = name
        self._tags = dict(args.get("tags", {}))
        invoke = pulumi.InvokeOutputOptions(parent=self)
        partition = aws.get_partition_output(opts=invoke)
        self._partition = partition.partition
        region = aws.get_region_output(opts=invoke).region
        account_id = aws.get_caller_identity_output(opts=invoke).account_id

        key = aws.kms.Key(
            f"{name}-secrets-key",
            description=f"Envelope encryption of Kubernetes secrets in EKS cluster {args['cluster_name']}",
            enable_key_rotation=True,
            tags=self._tags,
            opts=pulumi.ResourceOptions(parent=self),
        )
        log_group_name = control_plane_log_group_name(args["cluster_name"])
        logs_key = aws.kms.Key(
            f"{name}-logs-key",
            description=f"Encryption of EKS cluster {args['cluster_name']}'s control-plane logs",
            enable_key_rotation=True,
            policy=pulumi.Output.all(partition.partition, partition.dns_suffix, region, account_id).apply(
                lambda values: json.dumps(
                    control_plane_log_key_policy(values[0], values[1], values[2], values[3], log_group_name)
                )
            ),
            tags=self._tags,
            opts=pulumi.ResourceOptions(parent=self),
        )
        # Created before the cluster: EKS would otherwise create it itself, unencrypted and kept forever.
        log_group = aws.cloudwatch.LogGroup(
            f"{name}-control-plane-logs",
            name=log_group_name,
            retention_in_days=log_retention_days,
            kms_key_id=logs_key.arn,
            tags=self._tags,
            opts=pulumi.ResourceOptions(parent=self),
        )
        cluster = self._control_plane(args, endpoint_access, key, admin_role_arns, log_group)
        cluster_security_group_id = cluster.vpc_config.apply(lambda vpc: vpc.cluster_security_group_id or "")
        self._open_to_deployers(cluster_security_group_id, deployer_cidrs)
        self._grant_admins(cluster, admin_role_arns)
        node_role, node_policies = self._node_role()
        addons = self._node_independent_addons(cluster)

        certificate_authority_data = cluster.certificate_authority.apply(lambda ca: ca.data or "")
        self.cluster_name = cluster.name
        self.endpoint = cluster.endpoint
        self.certificate_authority_data = certificate_authority_data
        self.kubeconfig = pulumi.Output.secret(
            pulumi.Output.all(cluster.name, cluster.endpoint, certificate_authority_data, region).apply(
                lambda values: kubeconfig_yaml(*values)
            )
        )
        # Node pools take the role from here, so no node joins before its role has its policies and the VPC CNI
        # its pod identity.
        self.node_role_arn = pulumi.Output.all(
            node_role.arn, *[policy.id for policy in node_policies], *[addon.arn for addon in addons]
        ).apply(lambda values: values[0])
        self.cluster_security_group_id = cluster_security_group_id
        self.kms_key_arn = key.arn
        self.log_group_name = log_group.name
        self.register_outputs(
            {
                "cluster_name": self.cluster_name,
                "endpoint": self.endpoint,
                "certificate_authority_data": self.certificate_authority_data,
                "kubeconfig": self.kubeconfig,
                "node_role_arn": self.node_role_arn,
                "cluster_security_group_id": self.cluster_security_group_id,
                "kms_key_arn": self.kms_key_arn,
                "log_group_name": self.log_group_name,
            }
        )

    def _aws_policy(self, path: str) -> pulumi.Output[str]:
        return managed_policy_arn(self._partition, path)

    def _control_plane(
        self,
        args: EksClusterArgs,
        endpoint_access: EndpointAccess,
        key: aws.kms.Key,
        admin_role_arns: list[str],
        log_group: aws.cloudwatch.LogGroup,
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
            opts=pulumi.ResourceOptions(parent=self, depends_on=[*cluster_policies, log_group]),
        )

    def _open_to_deployers(self, cluster_security_group_id: pulumi.Output[str], deployer_cidrs: list[str]) -> None:
        """HTTPS from each deployer CIDR to the cluster security group, which guards the private endpoint."""
        for cidr in deployer_cidrs:
            aws.vpc.SecurityGroupIngressRule(
                deployer_rule_name(self._name, cidr),
                security_group_id=cluster_security_group_id,
                cidr_ipv4=cidr,
                ip_protocol="tcp",
                from_port=API_SERVER_PORT,
                to_port=API_SERVER_PORT,
                description="pulumi up reaches the Kubernetes API server",
                tags=self._tags,
                opts=pulumi.ResourceOptions(parent=self),
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

    def _node_independent_addons(self, cluster: aws.eks.Cluster) -> list[aws.eks.Addon]:
        """The EBS CSI driver's pod identity, and the managed add-ons that run without nodes, each with its own
        pod identity where it calls AWS (the VPC CNI), and after the pod identity agent that serves it."""
        pod_identity(
            f"{self._name}-ebs-csi",
            parent=self,
            cluster_name=cluster.name,
            namespace=EBS_CSI_NAMESPACE,
            service_account=EBS_CSI_SERVICE_ACCOUNT,
            policy=ManagedPolicy(self._aws_policy(EBS_CSI_POLICY)),
            tags=self._tags,
        )
        created: dict[str, aws.eks.Addon] = {}
        for addon in managed_addons():
            if addon.needs_nodes:
                continue
            associations: list[aws.eks.AddonPodIdentityAssociationArgsDict] = []
            depends_on: list[pulumi.Resource] = []
            if addon.service_account and addon.policy:
                role, policy = pod_identity_role(
                    f"{self._name}-{addon.name}",
                    parent=self,
                    policy=ManagedPolicy(self._aws_policy(addon.policy)),
                    tags=self._tags,
                )
                associations.append({"role_arn": role.arn, "service_account": addon.service_account})
                depends_on = [policy, created[POD_IDENTITY_AGENT_ADDON]]
            created[addon.name] = _addon(
                self._name,
                addon.name,
                cluster.name,
                self._tags,
                pulumi.ResourceOptions(parent=self, depends_on=depends_on),
                pod_identity_associations=associations,
            )
        return list(created.values())


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
    name: str,
    addon_name: str,
    cluster_name: pulumi.Input[str],
    tags: Mapping[str, str],
    opts: pulumi.ResourceOptions,
    pod_identity_associations: Sequence[aws.eks.AddonPodIdentityAssociationArgsDict] = (),
) -> aws.eks.Addon:
    # No version pinned: EKS picks the default for the cluster's Kubernetes version.
    return aws.eks.Addon(
        f"{name}-{addon_name}",
        cluster_name=cluster_name,
        addon_name=addon_name,
        resolve_conflicts_on_create="OVERWRITE",
        resolve_conflicts_on_update="OVERWRITE",
        pod_identity_associations=list(pod_identity_associations) or None,
        tags=dict(tags),
        opts=opts,
    )
