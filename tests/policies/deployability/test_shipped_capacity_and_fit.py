"""The shipped environments pass the cluster-model checks (devices, fit, capacity, cost), and the GPU capacity read
from their planned resources agrees with the cost table their config computes."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from functools import cache
from pathlib import Path
from typing import Any

import pytest

from modelplane.plan.engine import Plan, plan_environment
from modelplane.plan.policy_check import planned_resources, stack_validation_args
from modelplane.policies.deployability.capacity import check_capacity
from modelplane.policies.deployability.cost import check_cost, gpu_capacity, total_max_gpus
from modelplane.policies.deployability.devices import check_devices
from modelplane.policies.deployability.findings import Finding
from modelplane.policies.deployability.fit import check_fit
from modelplane.policies.rules.props import plain

STACKS = Path(__file__).resolve().parents[3] / "stacks"
ENVIRONMENTS = ("dev", "staging", "prod")
CHECKS: dict[str, Callable[[Sequence[Mapping[str, Any]]], list[Finding]]] = {
    "devices": check_devices,
    "fit": check_fit,
    "capacity": check_capacity,
    "cost": check_cost,
}


@cache
def shipped(environment: str) -> Plan:
    return plan_environment(environment, STACKS)


@pytest.mark.parametrize("check", sorted(CHECKS))
@pytest.mark.parametrize("environment", ENVIRONMENTS)
def test_shipped_environment_has_no_finding(environment: str, check: str) -> None:
    findings = CHECKS[check](planned_resources(shipped(environment)))
    assert [f"{f.urn}: {f.message()}" for f in findings] == []


def test_a_cpu_service_too_big_for_two_vcpu_system_nodes_is_found() -> None:
    """What dev's first system pool (m7i.large) did to its 1-CPU service: nothing left after the reserve."""
    resources = [
        {**r, "inputs": {**r["inputs"], "instanceTypes": ["m7i.large"]}}
        if r["type"] == "aws:eks/nodeGroup:NodeGroup"
        else r
        for r in planned_resources(shipped("dev"))
    ]
    (finding,) = check_fit(resources)
    assert finding.urn.endswith("kubernetes:apps/v1:Deployment::serve-sentiment-api-deployment")
    assert "it asks for 1 cpu; one m7i.large node leaves 0 after the 2-vCPU system reserve" in finding.missing


@pytest.mark.parametrize("environment", ENVIRONMENTS)
def test_gpu_capacity_from_the_plan_matches_the_cost_table(environment: str) -> None:
    plan = shipped(environment)
    assert total_max_gpus(gpu_capacity(planned_resources(plan))) == plan.cost.total_max_gpus


def as_the_pack_sees_them(resources: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """The resources as a stack rule of the policy pack reads them: through the engine's proxy, then `plain`, so
    unknown values arrive as the pack's UNKNOWN object rather than plan.json's "[unknown]"."""
    stack = stack_validation_args(resources, None)
    return [
        {
            "urn": r.urn,
            "type": r.resource_type,
            "name": r.name,
            "parent": r.parent.urn if r.parent else "",
            "inputs": plain(r.props),
            "dependencies": [d.urn for d in r.dependencies],
        }
        for r in stack.resources
    ]


@pytest.mark.parametrize("environment", ["dev", "prod"])
def test_the_policy_pack_gets_the_same_findings_as_the_plan(environment: str) -> None:
    resources = planned_resources(shipped(environment))
    pack_form = as_the_pack_sees_them(resources)
    for check in CHECKS.values():
        assert check(pack_form) == check(resources)
    assert gpu_capacity(pack_form) == gpu_capacity(resources)
