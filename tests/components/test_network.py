from __future__ import annotations

import pytest

from modelplane.components.network import Network, NetworkArgs
from modelplane.components.subnet_plan import NatGateways
from modelplane.plan.mocks import planned_id
from tests.conftest import ProgramRunner
from tests.resources import Registered

SUBNET = "aws:ec2/subnet:Subnet"
NAT = "aws:ec2/natGateway:NatGateway"
ROUTE = "aws:ec2/route:Route"
ENDPOINT = "aws:ec2/vpcEndpoint:VpcEndpoint"
ROUTE_TABLE = "aws:ec2/routeTable:RouteTable"


def network(run_program: ProgramRunner, **overrides: object) -> Registered:
    args: NetworkArgs = {"cluster_name": "demo", "tags": {"env": "dev"}}
    args.update(overrides)  # type: ignore[typeddict-item]
    return run_program(lambda: Network("net", args))


def test_every_child_is_named_after_and_parented_to_the_component(run_program: ProgramRunner) -> None:
    reg = network(run_program)
    component = reg.one("modelplane:network:Network", "net")
    children = reg.children_of(component)
    assert len(children) == len(reg) - 1
    assert all(c.name.startswith("net-") for c in children)


def test_vpc_resolves_dns_and_carries_the_tags(run_program: ProgramRunner) -> None:
    vpc = network(run_program).one("aws:ec2/vpc:Vpc", "net-vpc").inputs
    assert vpc["cidrBlock"] == "10.0.0.0/16"
    assert vpc["enableDnsHostnames"] is True and vpc["enableDnsSupport"] is True
    assert vpc["tags"] == {"env": "dev", "Name": "demo-vpc"}


def test_subnets_per_az_with_cidrs_zones_and_tags(run_program: ProgramRunner) -> None:
    reg = network(run_program, az_count=2)
    public = [reg.one(SUBNET, f"net-public-{i}").inputs for i in range(2)]
    private = [reg.one(SUBNET, f"net-private-{i}").inputs for i in range(2)]
    assert len(reg.of_type(SUBNET)) == 4
    assert [s["availabilityZone"] for s in private] == ["us-east-1a", "us-east-1b"]
    assert [s["cidrBlock"] for s in private] == ["10.0.0.0/19", "10.0.32.0/19"]
    assert [s["cidrBlock"] for s in public] == ["10.0.192.0/22", "10.0.196.0/22"]
    assert public[0]["tags"]["kubernetes.io/role/elb"] == "1"
    assert private[0]["tags"]["kubernetes.io/role/internal-elb"] == "1"
    assert private[0]["tags"]["karpenter.sh/discovery"] == "demo"
    assert all(s["tags"]["kubernetes.io/cluster/demo"] == "shared" for s in public + private)
    assert all(s["tags"]["env"] == "dev" for s in public + private)


def test_public_subnets_route_to_the_internet_gateway(run_program: ProgramRunner) -> None:
    reg = network(run_program)
    route = reg.one(ROUTE, "net-public-default").inputs
    gateway = reg.one("aws:ec2/internetGateway:InternetGateway", "net-igw")
    assert route["destinationCidrBlock"] == "0.0.0.0/0"
    assert route["gatewayId"].startswith("net-igw-")
    assert gateway.inputs["vpcId"] == planned_id("aws:ec2/vpc:Vpc", "net-vpc")
    assert len(reg.of_type("aws:ec2/routeTableAssociation:RouteTableAssociation")) == 6


def test_per_az_nat_gives_each_private_subnet_its_own_gateway(run_program: ProgramRunner) -> None:
    reg = network(run_program, nat_gateways=NatGateways.PER_AZ)
    nats = reg.of_type(NAT)
    assert sorted(n.name for n in nats) == ["net-nat-0", "net-nat-1", "net-nat-2"]
    assert all(
        reg.one(NAT, f"net-nat-{i}").inputs["subnetId"] == planned_id(SUBNET, f"net-public-{i}") for i in range(3)
    )
    assert len(reg.of_type("aws:ec2/eip:Eip")) == 3
    routes = [reg.one(ROUTE, f"net-private-default-{i}").inputs["natGatewayId"] for i in range(3)]
    assert [r.split("-")[2] for r in routes] == ["0", "1", "2"]


def test_single_nat_in_the_first_az_serves_every_private_subnet(run_program: ProgramRunner) -> None:
    reg = network(run_program, nat_gateways=NatGateways.SINGLE)
    nat = reg.one(NAT)
    assert nat.name == "net-nat-0"
    assert nat.inputs["subnetId"] == planned_id(SUBNET, "net-public-0")
    assert reg.one("aws:ec2/eip:Eip").inputs["domain"] == "vpc"
    routes = {reg.one(ROUTE, f"net-private-default-{i}").inputs["natGatewayId"] for i in range(3)}
    assert len(routes) == 1 and routes.pop().startswith("net-nat-0-")


def test_s3_traffic_from_private_subnets_skips_the_nat_gateways(run_program: ProgramRunner) -> None:
    reg = network(run_program)
    endpoint = reg.one(ENDPOINT, "net-s3-endpoint").inputs
    assert endpoint["serviceName"] == "com.amazonaws.us-east-1.s3"
    assert endpoint["vpcEndpointType"] == "Gateway"
    assert endpoint["vpcId"] == planned_id("aws:ec2/vpc:Vpc", "net-vpc")
    assert endpoint["routeTableIds"] == [planned_id(ROUTE_TABLE, f"net-private-rt-{i}") for i in range(3)]
    # Default (full access) policy: bucket policies and IAM decide; ECR's layer buckets stay reachable.
    assert "policy" not in endpoint


def test_without_private_cluster_endpoints_there_are_no_interface_endpoints(run_program: ProgramRunner) -> None:
    reg = network(run_program)
    assert [e.name for e in reg.of_type(ENDPOINT)] == ["net-s3-endpoint"]
    assert not reg.of_type("aws:ec2/securityGroup:SecurityGroup")


def test_private_cluster_endpoints_add_ecr_and_sts_interface_endpoints(run_program: ProgramRunner) -> None:
    reg = network(run_program, private_cluster_endpoints=True, cidr="10.20.0.0/16")
    group = reg.one("aws:ec2/securityGroup:SecurityGroup", "net-endpoints")
    rule = reg.one("aws:vpc/securityGroupIngressRule:SecurityGroupIngressRule", "net-endpoints-https").inputs
    assert rule["securityGroupId"] == planned_id(group.type, group.name)
    assert (rule["cidrIpv4"], rule["ipProtocol"], rule["fromPort"], rule["toPort"]) == ("10.20.0.0/16", "tcp", 443, 443)
    interface = {e.name: e.inputs for e in reg.of_type(ENDPOINT) if e.inputs["vpcEndpointType"] == "Interface"}
    assert sorted(interface) == ["net-ecr-api-endpoint", "net-ecr-dkr-endpoint", "net-sts-endpoint"]
    private_subnets = [planned_id(SUBNET, f"net-private-{i}") for i in range(3)]
    for name, service in [
        ("net-ecr-api-endpoint", "ecr.api"),
        ("net-ecr-dkr-endpoint", "ecr.dkr"),
        ("net-sts-endpoint", "sts"),
    ]:
        endpoint = interface[name]
        assert endpoint["serviceName"] == f"com.amazonaws.us-east-1.{service}"
        assert endpoint["subnetIds"] == private_subnets
        assert endpoint["securityGroupIds"] == [planned_id(group.type, group.name)]
        assert endpoint["privateDnsEnabled"] is True


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"az_count": 1}, "az_count=1: must be 2 to 6"),
        ({"az_count": 7}, "az_count=7: must be 2 to 6"),
        ({"cidr": "10.0.0.0/24"}, "cidr='10.0.0.0/24': prefix must be /16 to /20"),
    ],
)
def test_invalid_args_are_refused_before_any_resource(
    run_program: ProgramRunner, overrides: dict[str, object], message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        network(run_program, **overrides)
