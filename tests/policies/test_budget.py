from __future__ import annotations

from typing import Any

from modelplane.policies.rules import budget
from tests.policies.harness import messages, resource

NODE_GROUP = "aws:eks/nodeGroup:NodeGroup"


def gpu_group(name: str, instance_type: str, max_size: float) -> dict[str, Any]:
    inputs = {
        "instanceTypes": [instance_type],
        "amiType": "AL2023_x86_64_NVIDIA",
        "labels": {"modelplane.io/pool": name},
        "scalingConfig": {"minSize": 0.0, "maxSize": max_size},
    }
    return resource(NODE_GROUP, f"gpu-{name}-nodes", inputs)


SYSTEM = resource(NODE_GROUP, "system-nodes", {"instanceTypes": ["m7i.large"], "scalingConfig": {"maxSize": 40.0}})
POOLS = [SYSTEM, gpu_group("train", "g6e.12xlarge", 2.0), gpu_group("infer", "g6.xlarge", 4.0)]  # 8 + 4 GPUs


def test_pools_within_the_gpu_budget_pass() -> None:
    assert messages(budget.GPU_COUNT_WITHIN_BUDGET, POOLS, {"maxGpus": 12}) == []


def test_pools_over_the_gpu_budget_fire() -> None:
    (message,) = messages(budget.GPU_COUNT_WITHIN_BUDGET, POOLS, {"maxGpus": 11})
    assert "12 GPUs" in message


def test_pools_within_the_cost_budget_pass() -> None:
    # 2 x 10.493 + 4 x 0.8048 USD/hour, 730 hours a month
    assert messages(budget.GPU_COST_WITHIN_BUDGET, POOLS, {"maxMonthlyGpuCostUsd": 17_670.0}) == []


def test_pools_over_the_cost_budget_fire() -> None:
    assert len(messages(budget.GPU_COST_WITHIN_BUDGET, POOLS, {"maxMonthlyGpuCostUsd": 17_000.0})) == 1


def test_negotiated_rates_count() -> None:
    config = {"maxMonthlyGpuCostUsd": 17_000.0, "hourlyRates": {"train": 9.0}}
    assert messages(budget.GPU_COST_WITHIN_BUDGET, POOLS, config) == []


def test_budget_rules_fail_closed_without_a_budget() -> None:
    assert len(messages(budget.GPU_COUNT_WITHIN_BUDGET, POOLS, {})) == 1
    assert len(messages(budget.GPU_COST_WITHIN_BUDGET, POOLS, None)) == 1


def test_stack_without_gpu_node_groups_needs_no_budget() -> None:
    assert messages(budget.GPU_COUNT_WITHIN_BUDGET, [SYSTEM], {}) == []


def test_group_whose_size_is_not_yet_known_is_not_counted() -> None:
    unknown = gpu_group("big", "p5.48xlarge", 1.0)
    unknown["inputs"]["scalingConfig"]["maxSize"] = "[unknown]"
    assert messages(budget.GPU_COUNT_WITHIN_BUDGET, [*POOLS, unknown], {"maxGpus": 12}) == []
