"""The VPC an EKS cluster lives in: public and private subnets per AZ, internet and NAT egress, and VPC endpoints
that keep S3 traffic (and, for a private cluster, ECR and STS) off the NAT gateways."""

from __future__ import annotations

import functools
from collections.abc import Mapping, Sequence
from typing import NotRequired, TypedDict

import pulumi
import pulumi_aws as aws

from modelplane.components.subnet_plan import (
    ENDPOINT_PORT,
    GATEWAY_ENDPOINT_SERVICES,
    NatGateways,
    endpoint_resource_suffix,
    endpoint_service_name,
    interface_endpoint_services,
    nat_gateway_azs,
    nat_gateway_for,
    network_problems,
    plan_subnets,
    private_subnet_tags,
    public_subnet_tags,
)

DEFAULT_CIDR = "10.0.0.0/16"
DEFAULT_AZ_COUNT = 3


class NetworkArgs(TypedDict):
    cluster_name: str
    """The EKS cluster using the subnets; plain, as it is part of tag keys."""
    cidr: NotRequired[str]
    """VPC CIDR, /16 to /20; default 10.0.0.0/16."""
    az_count: NotRequired[int]
    """Availability zones to span, 2 to 6 (EKS needs 2); default 3."""
    nat_gateways: NotRequired[NatGateways]
    """NAT gateway per AZ (default, survives an AZ outage) or a single one (cheaper)."""
    private_cluster_endpoints: NotRequired[bool]
    """Also create interface endpoints for ECR (API and registry) and STS in the private subnets, with private DNS,
    for a cluster whose API server endpoint is private; default False. The S3 gateway endpoint is always there."""
    tags: NotRequired[Mapping[str, str]]
    """Tags for every resource."""


def _zone_name(names: Sequence[str], index: int, az_count: int) -> str:
    if index >= len(names):
        raise ValueError(f"az_count={az_count}: the region has only {len(names)} available AZs; lower az_count")
    return names[index]


class Network(pulumi.ComponentResource):
    vpc_id: pulumi.Output[str]
    public_subnet_ids: pulumi.Output[list[str]]
    private_subnet_ids: pulumi.Output[list[str]]
    availability_zones: pulumi.Output[list[str]]

    def __init__(self, name: str, args: NetworkArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__("modelplane:network:Network", name, {}, opts)
        cluster_name = args["cluster_name"]
        az_count = args.get("az_count", DEFAULT_AZ_COUNT)
        problems = network_problems(f"Network {name!r}", args.get("cidr", DEFAULT_CIDR), az_count)
        if problems:
            raise ValueError("; ".join(problems))
        nat_mode = NatGateways(args.get("nat_gateways", NatGateways.PER_AZ))
        layout = plan_subnets(args.get("cidr", DEFAULT_CIDR), az_count)
        tags = dict(args.get("tags", {}))
        child = pulumi.ResourceOptions(parent=self)

        def tagged(role: str, extra: Mapping[str, str] | None = None) -> dict[str, str]:
            return {**tags, **(extra or {}), "Name": f"{cluster_name}-{role}"}

        zone_names = aws.get_availability_zones_output(state="available", opts=pulumi.InvokeOutputOptions(parent=self))
        zones = [
            zone_names.names.apply(functools.partial(_zone_name, index=i, az_count=az_count)) for i in range(az_count)
        ]

        vpc = aws.ec2.Vpc(
            f"{name}-vpc",
            cidr_block=args.get("cidr", DEFAULT_CIDR),
            enable_dns_hostnames=True,
            enable_dns_support=True,
            tags=tagged("vpc"),
            opts=child,
        )
        gateway = aws.ec2.InternetGateway(f"{name}-igw", vpc_id=vpc.id, tags=tagged("igw"), opts=child)

        public_subnets = [
            aws.ec2.Subnet(
                f"{name}-public-{az.az_index}",
                vpc_id=vpc.id,
                cidr_block=az.public_cidr,
                availability_zone=zones[az.az_index],
                tags=tagged(f"public-{az.az_index}", public_subnet_tags(cluster_name)),
                opts=child,
            )
            for az in layout
        ]
        private_subnets = [
            aws.ec2.Subnet(
                f"{name}-private-{az.az_index}",
                vpc_id=vpc.id,
                cidr_block=az.private_cidr,
                availability_zone=zones[az.az_index],
                tags=tagged(f"private-{az.az_index}", private_subnet_tags(cluster_name)),
                opts=child,
            )
            for az in layout
        ]

        public_routes = aws.ec2.RouteTable(f"{name}-public-rt", vpc_id=vpc.id, tags=tagged("public"), opts=child)
        aws.ec2.Route(
            f"{name}-public-default",
            route_table_id=public_routes.id,
            destination_cidr_block="0.0.0.0/0",
            gateway_id=gateway.id,
            opts=child,
        )
        for index, subnet in enumerate(public_subnets):
            aws.ec2.RouteTableAssociation(
                f"{name}-public-rta-{index}", route_table_id=public_routes.id, subnet_id=subnet.id, opts=child
            )

        nat_gateways = []
        for az_index in nat_gateway_azs(az_count, nat_mode):
            address = aws.ec2.Eip(
                f"{name}-nat-eip-{az_index}", domain="vpc", tags=tagged(f"nat-{az_index}"), opts=child
            )
            nat_gateways.append(
                aws.ec2.NatGateway(
                    f"{name}-nat-{az_index}",
                    allocation_id=address.id,
                    subnet_id=public_subnets[az_index].id,
                    tags=tagged(f"nat-{az_index}"),
                    opts=pulumi.ResourceOptions(parent=self, depends_on=[gateway]),
                )
            )

        # One private route table per AZ, so switching to per-AZ NAT only changes routes.
        private_route_tables = []
        for index, subnet in enumerate(private_subnets):
            routes = aws.ec2.RouteTable(
                f"{name}-private-rt-{index}", vpc_id=vpc.id, tags=tagged(f"private-{index}"), opts=child
            )
            private_route_tables.append(routes)
            aws.ec2.Route(
                f"{name}-private-default-{index}",
                route_table_id=routes.id,
                destination_cidr_block="0.0.0.0/0",
                nat_gateway_id=nat_gateways[nat_gateway_for(index, nat_mode)].id,
                opts=child,
            )
            aws.ec2.RouteTableAssociation(
                f"{name}-private-rta-{index}", route_table_id=routes.id, subnet_id=subnet.id, opts=child
            )

        region = aws.get_region_output(opts=pulumi.InvokeOutputOptions(parent=self)).region
        # The default (full access) endpoint policy: any principal's S3 traffic from the private subnets, ECR's
        # layer buckets included, goes through it; bucket policies and IAM still decide what each may do.
        for service in GATEWAY_ENDPOINT_SERVICES:
            aws.ec2.VpcEndpoint(
                f"{name}-{endpoint_resource_suffix(service)}-endpoint",
                vpc_id=vpc.id,
                service_name=region.apply(functools.partial(endpoint_service_name, service=service)),
                vpc_endpoint_type="Gateway",
                route_table_ids=[routes.id for routes in private_route_tables],
                tags=tagged(f"{endpoint_resource_suffix(service)}-endpoint"),
                opts=child,
            )
        interface_services = interface_endpoint_services(args.get("private_cluster_endpoints", False))
        if interface_services:
            endpoints_group = aws.ec2.SecurityGroup(
                f"{name}-endpoints",
                vpc_id=vpc.id,
                description=f"HTTPS from the VPC to the interface endpoints of {cluster_name}",
                tags=tagged("endpoints"),
                opts=child,
            )
            aws.vpc.SecurityGroupIngressRule(
                f"{name}-endpoints-https",
                security_group_id=endpoints_group.id,
                cidr_ipv4=args.get("cidr", DEFAULT_CIDR),
                ip_protocol="tcp",
                from_port=ENDPOINT_PORT,
                to_port=ENDPOINT_PORT,
                description="HTTPS from the VPC",
                opts=child,
            )
            for service in interface_services:
                aws.ec2.VpcEndpoint(
                    f"{name}-{endpoint_resource_suffix(service)}-endpoint",
                    vpc_id=vpc.id,
                    service_name=region.apply(functools.partial(endpoint_service_name, service=service)),
                    vpc_endpoint_type="Interface",
                    subnet_ids=[subnet.id for subnet in private_subnets],
                    security_group_ids=[endpoints_group.id],
                    # The service's usual name resolves to the endpoint inside the VPC: SDKs need no setting.
                    private_dns_enabled=True,
                    tags=tagged(f"{endpoint_resource_suffix(service)}-endpoint"),
                    opts=child,
                )

        self.vpc_id = vpc.id
        self.public_subnet_ids = pulumi.Output.all(*[s.id for s in public_subnets])
        self.private_subnet_ids = pulumi.Output.all(*[s.id for s in private_subnets])
        self.availability_zones = pulumi.Output.all(*zones)
        self.register_outputs(
            {
                "vpc_id": self.vpc_id,
                "public_subnet_ids": self.public_subnet_ids,
                "private_subnet_ids": self.private_subnet_ids,
                "availability_zones": self.availability_zones,
            }
        )
