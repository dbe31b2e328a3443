from __future__ import annotations

import itertools
from typing import Any

import boto3
import pytest
from moto import mock_aws

from modelplane.terms.gpu_catalog import (
    GPU_INSTANCE_TYPES,
    HOURS_PER_MONTH,
    CpuArchitecture,
    gpu_instance_type,
    monthly_cost_usd,
)

REQUIRED_FAMILIES = {"g5", "g6", "g6e", "p4d", "p4de", "p5", "p5e"}


@pytest.fixture(scope="module")
def ec2_instance_types() -> dict[str, dict[str, Any]]:
    """EC2's own DescribeInstanceTypes data, as moto ships it."""
    with mock_aws():
        ec2 = boto3.client("ec2", region_name="us-east-1")
        names = list(GPU_INSTANCE_TYPES)
        found: dict[str, dict[str, Any]] = {}
        for start in range(0, len(names), 20):
            response = ec2.describe_instance_types(InstanceTypes=names[start : start + 20])
            found.update({t["InstanceType"]: t for t in response["InstanceTypes"]})
        return found


def test_catalog_covers_the_families_users_pick() -> None:
    assert {t.family for t in GPU_INSTANCE_TYPES.values()} >= REQUIRED_FAMILIES


@pytest.mark.parametrize("name", sorted(GPU_INSTANCE_TYPES))
def test_hardware_facts_match_ec2(name: str, ec2_instance_types: dict[str, dict[str, Any]]) -> None:
    ours = GPU_INSTANCE_TYPES[name]
    ec2 = ec2_instance_types[name]
    gpus = ec2["GpuInfo"]["Gpus"]
    assert ours.gpus == sum(g["Count"] for g in gpus)
    assert ours.gpu_model == gpus[0]["Name"]
    assert ours.gpu_memory_mib == gpus[0]["MemoryInfo"]["SizeInMiB"]
    assert ours.vcpus == ec2["VCpuInfo"]["DefaultVCpus"]
    assert ours.memory_gib == ec2["MemoryInfo"]["SizeInMiB"] // 1024
    assert ours.efa_interfaces == ec2["NetworkInfo"].get("EfaInfo", {}).get("MaximumEfaInterfaces", 0)
    assert ours.supports_efa == ec2["NetworkInfo"]["EfaSupported"]
    assert ours.architecture.value in ec2["ProcessorInfo"]["SupportedArchitectures"]


def test_prices_are_positive_and_grow_with_size_within_a_family() -> None:
    for family in {t.family for t in GPU_INSTANCE_TYPES.values()}:
        members = sorted((t for t in GPU_INSTANCE_TYPES.values() if t.family == family), key=lambda t: t.vcpus)
        assert all(t.on_demand_usd_per_hour > 0 for t in members)
        prices_by_gpus = [(t.gpus, t.vcpus, t.on_demand_usd_per_hour) for t in members]
        for smaller, larger in itertools.pairwise(prices_by_gpus):
            if larger[0] >= smaller[0]:
                assert larger[2] > smaller[2], (family, smaller, larger)


def test_monthly_cost_uses_override_rate_when_given() -> None:
    g6 = gpu_instance_type("g6.xlarge")
    assert monthly_cost_usd(g6, 2) == round(g6.on_demand_usd_per_hour * 2 * HOURS_PER_MONTH, 2)
    assert monthly_cost_usd(g6, 3, usd_per_hour=0.5) == 0.5 * 3 * HOURS_PER_MONTH


def test_unknown_type_names_the_known_ones() -> None:
    with pytest.raises(KeyError, match=r"unknown GPU instance type 'p9\.huge'; known: .*g6\.xlarge"):
        gpu_instance_type("p9.huge")


def test_arm_types_are_marked() -> None:
    assert gpu_instance_type("g5g.xlarge").architecture is CpuArchitecture.ARM64
    assert gpu_instance_type("p5.48xlarge").architecture is CpuArchitecture.X86_64
