from __future__ import annotations

import ipaddress
import itertools
import re

import pytest

from modelplane.components.subnet_plan import (
    NatGateways,
    endpoint_resource_suffix,
    endpoint_service_name,
    interface_endpoint_services,
    nat_gateway_azs,
    nat_gateway_for,
    plan_subnets,
    private_subnet_tags,
    public_subnet_tags,
)


def test_slash_16_gives_private_19s_and_public_22s() -> None:
    plan = plan_subnets("10.0.0.0/16", 3)
    assert [az.private_cidr for az in plan] == ["10.0.0.0/19", "10.0.32.0/19", "10.0.64.0/19"]
    assert [az.public_cidr for az in plan] == ["10.0.192.0/22", "10.0.196.0/22", "10.0.200.0/22"]


@pytest.mark.parametrize("cidr", ["10.0.0.0/16", "172.16.0.0/18", "192.168.16.0/20"])
def test_six_azs_fit_without_overlap_inside_the_vpc(cidr: str) -> None:
    vpc = ipaddress.IPv4Network(cidr)
    subnets = [ipaddress.IPv4Network(c) for az in plan_subnets(cidr, 6) for c in (az.public_cidr, az.private_cidr)]
    assert all(s.subnet_of(vpc) for s in subnets)
    assert not any(a.overlaps(b) for a, b in itertools.combinations(subnets, 2))


def test_private_subnets_are_larger_than_public() -> None:
    az = plan_subnets("10.0.0.0/20", 2)[0]
    assert (
        ipaddress.IPv4Network(az.private_cidr).num_addresses == 8 * ipaddress.IPv4Network(az.public_cidr).num_addresses
    )


def test_adding_an_az_keeps_the_existing_subnets() -> None:
    assert plan_subnets("10.0.0.0/16", 4)[:3] == plan_subnets("10.0.0.0/16", 3)


@pytest.mark.parametrize(
    ("cidr", "az_count", "message"),
    [
        ("10.0.0.0/24", 3, "cidr='10.0.0.0/24': prefix must be /16 to /20"),
        ("10.0.0.0/8", 3, "prefix must be /16 to /20"),
        ("10.0.0.1/16", 3, "not an IPv4 network"),
        ("10.0.0.0/16", 7, "az_count=7: must be 2 to 6"),
    ],
)
def test_invalid_layout_inputs_are_named(cidr: str, az_count: int, message: str) -> None:
    with pytest.raises(ValueError, match=re.escape(message)):
        plan_subnets(cidr, az_count)


def test_public_subnets_are_for_internet_facing_load_balancers() -> None:
    assert public_subnet_tags("demo") == {"kubernetes.io/cluster/demo": "shared", "kubernetes.io/role/elb": "1"}


def test_private_subnets_are_for_internal_load_balancers_and_karpenter() -> None:
    assert private_subnet_tags("demo") == {
        "kubernetes.io/cluster/demo": "shared",
        "kubernetes.io/role/internal-elb": "1",
        "karpenter.sh/discovery": "demo",
    }


def test_single_nat_sits_in_the_first_az_and_serves_every_az() -> None:
    assert nat_gateway_azs(3, NatGateways.SINGLE) == [0]
    assert [nat_gateway_for(i, NatGateways.SINGLE) for i in range(3)] == [0, 0, 0]


def test_per_az_nat_serves_its_own_az() -> None:
    assert nat_gateway_azs(3, NatGateways.PER_AZ) == [0, 1, 2]
    assert [nat_gateway_for(i, NatGateways.PER_AZ) for i in range(3)] == [0, 1, 2]


def test_interface_endpoints_only_for_a_private_cluster() -> None:
    assert interface_endpoint_services(False) == ()
    assert interface_endpoint_services(True) == ("ecr.api", "ecr.dkr", "sts")


def test_endpoint_service_names_and_resource_suffixes() -> None:
    assert endpoint_service_name("eu-west-1", "s3") == "com.amazonaws.eu-west-1.s3"
    assert endpoint_service_name("us-gov-west-1", "ecr.dkr") == "com.amazonaws.us-gov-west-1.ecr.dkr"
    assert endpoint_resource_suffix("ecr.api") == "ecr-api"
