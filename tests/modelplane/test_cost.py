"""The plan's cost table: every GPU pool at its max size, however it is provisioned, against the budget."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from modelplane.config import EnvironmentConfig
from modelplane.plan.cost import cost_report
from modelplane.plan.engine import plan_environment
from modelplane.plan.policy_check import planned_resources
from modelplane.policies.rules import budget
from tests.policies.harness import messages

STACKS = Path(__file__).resolve().parents[2] / "stacks"
RESERVATION = "cr-0123456789abcdef0"


def environment(max_gpus: int, max_cost: float) -> EnvironmentConfig:
    # Elastic pools (on-demand, spot: Karpenter) and a reserved one (a capacity block: a node group).
    return EnvironmentConfig.model_validate(
        {
            "name": "dev",
            "region": "us-east-1",
            "gpu_node_pools": [
                {"name": "infer", "instance_type": "g6.xlarge", "capacity_type": "SPOT", "max_size": 4},
                {"name": "train", "instance_type": "g6e.12xlarge", "max_size": 2, "usd_per_hour": 9.0},
                {
                    "name": "reserved",
                    "instance_type": "p5.48xlarge",
                    "capacity_type": "CAPACITY_BLOCK",
                    "capacity_reservation_id": RESERVATION,
                    "min_size": 1,
                    "max_size": 1,
                },
            ],
            "budget": {"max_gpus": max_gpus, "max_monthly_gpu_cost_usd": max_cost},
        }
    )


def test_every_pool_counts_at_its_max_size_whatever_provisions_it() -> None:
    report = cost_report(environment(max_gpus=20, max_cost=100_000.0))
    by_pool = {p.pool: p for p in report.pools}
    assert (by_pool["infer"].capacity_type, by_pool["infer"].max_gpus) == ("SPOT", 4)
    assert by_pool["infer"].max_monthly_usd == round(0.8048 * 4 * 730, 2)
    assert (by_pool["train"].capacity_type, by_pool["train"].max_gpus) == ("ON_DEMAND", 8)
    assert by_pool["train"].max_monthly_usd == round(9.0 * 2 * 730, 2)
    assert (by_pool["reserved"].capacity_type, by_pool["reserved"].max_gpus) == ("CAPACITY_BLOCK", 8)
    assert report.total_max_gpus == 20
    assert report.within_budget


@pytest.mark.parametrize(("max_gpus", "max_cost"), [(19, 100_000.0), (20, 50_000.0)], ids=["gpus", "cost"])
def test_pools_over_either_budget_are_not_within_it(max_gpus: int, max_cost: float) -> None:
    report = cost_report(environment(max_gpus, max_cost))
    assert not report.within_budget
    assert report.to_json()["within_budget"] is False


@pytest.mark.parametrize("name", ["dev", "staging", "prod"])
def test_planned_pools_hold_exactly_what_the_cost_table_counts(name: str) -> None:
    """The budget policy, reading the planned node groups and NodePools, finds the cost table's totals:
    within them at exactly those totals, over them with one GPU or one dollar less."""
    plan = plan_environment(name, STACKS)
    resources: list[Any] = planned_resources(plan)
    report = plan.cost
    rates = {p.pool: p.usd_per_hour for p in report.pools}
    at_totals = {"maxGpus": report.total_max_gpus, "maxMonthlyGpuCostUsd": report.total_max_monthly_usd}
    assert messages(budget.GPU_COUNT_WITHIN_BUDGET, resources, at_totals) == []
    assert messages(budget.GPU_COST_WITHIN_BUDGET, resources, {**at_totals, "hourlyRates": rates}) == []
    if report.total_max_gpus:
        one_less = {"maxGpus": report.total_max_gpus - 1}
        assert len(messages(budget.GPU_COUNT_WITHIN_BUDGET, resources, one_less)) == 1
        cheaper = {"maxMonthlyGpuCostUsd": report.total_max_monthly_usd - 1, "hourlyRates": rates}
        assert len(messages(budget.GPU_COST_WITHIN_BUDGET, resources, cheaper)) == 1


def test_each_row_says_what_its_price_is() -> None:
    """One price per type (us-east-1 on-demand): exact only there, or when the pool sets its own rate."""
    from modelplane.plan.cost import PriceBasis

    report = cost_report(environment(max_gpus=20, max_cost=100_000.0))
    basis = {p.pool: (p.price_basis, p.approximate) for p in report.pools}
    assert basis == {
        "infer": (PriceBasis.SPOT_CEILING, True),
        "train": (PriceBasis.CONFIGURED, False),
        "reserved": (PriceBasis.CAPACITY_BLOCK, True),
    }
    document: dict[str, Any] = report.to_json()
    assert document["approximate"] is True
    assert [pool["price_basis"] for pool in document["pools"]] == ["spot-ceiling", "configured", "capacity-block"]
    assert "upper bound" in report.pools[0].price_note


def test_on_demand_outside_us_east_1_is_marked_an_approximation() -> None:
    from modelplane.plan.cost import PriceBasis

    env = EnvironmentConfig.model_validate(
        {
            "name": "eu",
            "region": "eu-west-1",
            "gpu_node_pools": [{"name": "train", "instance_type": "g6e.12xlarge", "max_size": 1}],
            "budget": {"max_gpus": 4, "max_monthly_gpu_cost_usd": 100_000.0},
        }
    )
    (pool,) = cost_report(env).pools
    assert (pool.price_basis, pool.approximate, pool.region) == (PriceBasis.OTHER_REGION, True, "eu-west-1")
    assert pool.price_note == "approximation: us-east-1 on-demand list price; eu-west-1 is not priced"
    in_us_east_1 = cost_report(env.model_copy(update={"region": "us-east-1"})).pools[0]
    assert (in_us_east_1.price_basis, in_us_east_1.approximate) == (PriceBasis.LIST, False)
