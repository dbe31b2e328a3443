from __future__ import annotations

from typing import Any

from modelplane.components.gpu_nodes import CapacityType
from modelplane.components.karpenter_pools import PoolKind, node_pool_manifest
from modelplane.policies.rules import budget
from tests.policies.harness import advice, messages, resource

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


NODE_POOL = "kubernetes:karpenter.sh/v1:NodePool"


def karpenter_pool(name: str, instance_type: str, max_size: int, **limits: Any) -> dict[str, Any]:
    """A GPU NodePool as the engine sends it: limits are quantity strings, other numbers floats."""
    manifest = node_pool_manifest(
        pool_name=name,
        instance_type=instance_type,
        capacity_type=CapacityType.SPOT,
        max_size=max_size,
        kind=PoolKind.INFERENCE,
        node_class_name=name,
    )
    manifest["spec"]["limits"].update(limits)
    return resource(NODE_POOL, f"gpu-{name}-node-pool", manifest)


# 2 x g6e.12xlarge in a node group (8 GPUs) + 4 x g6.xlarge in a NodePool (4 GPUs): the same as POOLS.
MIXED = [SYSTEM, gpu_group("train", "g6e.12xlarge", 2.0), karpenter_pool("infer", "g6.xlarge", 4)]


def test_node_pools_count_like_node_groups() -> None:
    assert messages(budget.GPU_COUNT_WITHIN_BUDGET, MIXED, {"maxGpus": 12}) == []
    (message,) = messages(budget.GPU_COUNT_WITHIN_BUDGET, MIXED, {"maxGpus": 11})
    assert "12 GPUs" in message and "gpu-infer-node-pool=4" in message
    assert messages(budget.GPU_COST_WITHIN_BUDGET, MIXED, {"maxMonthlyGpuCostUsd": 17_670.0}) == []
    assert len(messages(budget.GPU_COST_WITHIN_BUDGET, MIXED, {"maxMonthlyGpuCostUsd": 17_000.0})) == 1


def test_node_pool_alone_over_the_budget_fires() -> None:
    big = karpenter_pool("big", "p5.48xlarge", 2)  # 16 H100s
    (message,) = messages(budget.GPU_COUNT_WITHIN_BUDGET, [big], {"maxGpus": 8})
    assert "16 GPUs" in message
    assert messages(budget.GPU_COUNT_WITHIN_BUDGET, [big], {"maxGpus": 16}) == []


def test_node_pool_holds_only_whole_nodes_within_its_gpu_limit() -> None:
    # 20 GPUs of 8-GPU nodes: Karpenter stops at two nodes, 16 GPUs.
    pool = karpenter_pool("big", "p5.48xlarge", 2, **{"nvidia.com/gpu": 20.0})
    assert messages(budget.GPU_COUNT_WITHIN_BUDGET, [pool], {"maxGpus": 16}) == []


def test_negotiated_rates_count_for_node_pools_by_their_pool_label() -> None:
    pool = [karpenter_pool("infer", "g6.xlarge", 4)]  # 4 x 0.8048 x 730 = 2350.02
    assert len(messages(budget.GPU_COST_WITHIN_BUDGET, pool, {"maxMonthlyGpuCostUsd": 2_000.0})) == 1
    config = {"maxMonthlyGpuCostUsd": 2_000.0, "hourlyRates": {"infer": 0.5}}
    assert messages(budget.GPU_COST_WITHIN_BUDGET, pool, config) == []


def test_node_pool_without_limits_fires() -> None:
    unbounded = karpenter_pool("infer", "g6.xlarge", 4)
    del unbounded["inputs"]["spec"]["limits"]
    (message,) = messages(budget.GPU_COUNT_WITHIN_BUDGET, [unbounded], {"maxGpus": 100})
    assert "spec.limits sets no nvidia.com/gpu" in message


def test_node_pool_of_an_uncatalogued_type_is_counted_and_its_price_is_advice() -> None:
    pool = karpenter_pool("infer", "g6.xlarge", 1)
    pool["inputs"]["spec"]["template"]["spec"]["requirements"][0]["values"] = ["g4dn.xlarge"]
    assert messages(budget.GPU_COST_WITHIN_BUDGET, [pool], {"maxMonthlyGpuCostUsd": 1e6}) == []
    (said,) = advice(budget.GPU_COST_WITHIN_BUDGET, [pool], {"maxMonthlyGpuCostUsd": 1e6})
    assert "cannot price g4dn.xlarge" in said
    assert len(messages(budget.GPU_COUNT_WITHIN_BUDGET, [pool], {"maxGpus": 0.0})) == 1


def test_node_pool_whose_limit_is_not_yet_known_is_not_counted() -> None:
    unknown = karpenter_pool("big", "p5.48xlarge", 1, **{"nvidia.com/gpu": "[unknown]"})
    assert messages(budget.GPU_COUNT_WITHIN_BUDGET, [*POOLS, unknown], {"maxGpus": 12}) == []


def test_stack_with_only_a_node_pool_still_needs_a_budget() -> None:
    assert len(messages(budget.GPU_COUNT_WITHIN_BUDGET, [karpenter_pool("infer", "g6.xlarge", 1)], {})) == 1
