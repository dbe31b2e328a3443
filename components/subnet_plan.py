"""How a VPC's address space is split into subnets, tagged and routed through NAT, and which AWS services
its private subnets reach through VPC endpoints instead.

Plain functions over plain data, so the layout is tested without Pulumi. The layout
of AZ `i` depends only on the VPC CIDR and `i`: adding an AZ never moves an existing
subnet (which would replace it and every node in it).
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from enum import StrEnum

MIN_VPC_PREFIX = 16
MAX_VPC_PREFIX = 20
MIN_AZ_COUNT = 2
"""EKS needs subnets in at least two AZs."""
MAX_AZ_COUNT = 6
# The VPC splits into 8 blocks: blocks 0-5 are the private subnets of AZs 0-5, block 6 is
# cut into 8 public subnets (AZs 0-5 use 6), block 7 is kept free for later use (e.g. pods).
_PRIVATE_BITS = 3
_PUBLIC_BLOCK = 6
_PUBLIC_BITS = 3

ELB_ROLE_TAG = "kubernetes.io/role/elb"
INTERNAL_ELB_ROLE_TAG = "kubernetes.io/role/internal-elb"
KARPENTER_DISCOVERY_TAG = "karpenter.sh/discovery"


class NatGateways(StrEnum):
    SINGLE = "single"
    """One NAT gateway for all AZs: cheaper, one AZ's outage cuts egress."""
    PER_AZ = "per_az"
    """One NAT gateway per AZ: what production needs."""


def network_problems(at: str, cidr: object, az_count: object) -> list[str]:
    """Every problem of a VPC's CIDR and AZ count, each naming `at` (the config path), the value and the fix."""
    problems = []
    try:
        vpc = ipaddress.IPv4Network(cidr)
    except (ValueError, TypeError) as exc:
        problems.append(f"{at}.cidr={cidr!r}: not an IPv4 network ({exc}); use e.g. '10.0.0.0/16'")
    else:
        if not MIN_VPC_PREFIX <= vpc.prefixlen <= MAX_VPC_PREFIX:
            problems.append(
                f"{at}.cidr={cidr!r}: prefix must be /{MIN_VPC_PREFIX} to /{MAX_VPC_PREFIX} "
                "to hold a subnet per AZ and role"
            )
    if isinstance(az_count, bool) or not isinstance(az_count, int) or not MIN_AZ_COUNT <= az_count <= MAX_AZ_COUNT:
        problems.append(f"{at}.az_count={az_count!r}: must be {MIN_AZ_COUNT} to {MAX_AZ_COUNT}")
    return problems


@dataclass(frozen=True)
class AzSubnets:
    """The public and private subnet of one availability zone."""

    az_index: int
    public_cidr: str
    private_cidr: str


def plan_subnets(vpc_cidr: str, az_count: int) -> list[AzSubnets]:
    """One public and one (8x larger) private subnet per AZ; for a /16: private /19s, public /22s."""
    problems = network_problems("network", vpc_cidr, az_count)
    if problems:
        raise ValueError("; ".join(problems))
    vpc = ipaddress.IPv4Network(vpc_cidr)
    blocks = list(vpc.subnets(prefixlen_diff=_PRIVATE_BITS))
    public = list(blocks[_PUBLIC_BLOCK].subnets(prefixlen_diff=_PUBLIC_BITS))
    return [AzSubnets(i, str(public[i]), str(blocks[i])) for i in range(az_count)]


def cluster_tag(cluster_name: str) -> dict[str, str]:
    """Marks a resource as usable by the cluster (the AWS load balancer controller looks for it)."""
    return {f"kubernetes.io/cluster/{cluster_name}": "shared"}


def public_subnet_tags(cluster_name: str) -> dict[str, str]:
    """Internet-facing load balancers go in the public subnets."""
    return {**cluster_tag(cluster_name), ELB_ROLE_TAG: "1"}


def private_subnet_tags(cluster_name: str) -> dict[str, str]:
    """Internal load balancers and nodes (Karpenter finds them by its discovery tag) go in the private subnets."""
    return {**cluster_tag(cluster_name), INTERNAL_ELB_ROLE_TAG: "1", KARPENTER_DISCOVERY_TAG: cluster_name}


def nat_gateway_azs(az_count: int, nat_gateways: NatGateways) -> list[int]:
    """The AZ indexes holding a NAT gateway (in the AZ's public subnet)."""
    return [0] if nat_gateways == NatGateways.SINGLE else list(range(az_count))


def nat_gateway_for(az_index: int, nat_gateways: NatGateways) -> int:
    """Which NAT gateway (index into `nat_gateway_azs`) the private subnet of `az_index` routes through."""
    return 0 if nat_gateways == NatGateways.SINGLE else az_index


GATEWAY_ENDPOINT_SERVICES = ("s3",)
"""Free gateway endpoints on the private route tables: datasets, checkpoints and ECR's image layers (stored in
S3) skip the NAT gateways and their per-GB charge."""
PRIVATE_CLUSTER_INTERFACE_ENDPOINT_SERVICES = ("ecr.api", "ecr.dkr", "sts")
"""Interface endpoints for a cluster whose API server is private: image pulls (ECR's API and registry) and
credentials (STS) stay inside the VPC. Each costs an hourly fee per AZ."""
ENDPOINT_PORT = 443


def interface_endpoint_services(private_cluster_endpoints: bool) -> tuple[str, ...]:
    """The AWS services reached through interface endpoints in the private subnets."""
    return PRIVATE_CLUSTER_INTERFACE_ENDPOINT_SERVICES if private_cluster_endpoints else ()


def endpoint_service_name(region: str, service: str) -> str:
    """The VPC endpoint service name of an AWS service in `region` (the commercial and GovCloud partitions)."""
    return f"com.amazonaws.{region}.{service}"


def endpoint_resource_suffix(service: str) -> str:
    """`ecr.api` -> `ecr-api`, for resource names."""
    return service.replace(".", "-")
