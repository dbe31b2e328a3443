"""Budget rules over all GPU pools together, at their max size: GPU count and monthly on-demand cost.

A pool is a GPU node group (at `scalingConfig.maxSize` nodes) or a Karpenter GPU NodePool (as many nodes as its
`nvidia.com/gpu` limit holds: Karpenter launches no node that would exceed it). The limits are the environment's
own `modelplane:budget`, handed to the rules as policy config (`maxGpus`, `maxMonthlyGpuCostUsd`, and negotiated
`hourlyRates` by pool); see `modelplane.policies.rules.environment`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from modelplane.policies.rules import karpenter
from modelplane.policies.rules.nodes import NODE_GROUP_TYPES, is_gpu_node_group
from modelplane.policies.rules.props import as_dict, as_list, dig, is_unknown
from modelplane.policies.rules.rule import Finding, Rule, StackResource, StackRule
from modelplane.terms.gpu_catalog import GPU_INSTANCE_TYPES, monthly_cost_usd
from modelplane.terms.scheduling import POOL_LABEL


@dataclass(frozen=True)
class GpuPoolBound:
    """The most one GPU pool can run: for each instance type it may launch, how many nodes of it."""

    resource: StackResource
    pool: str | None
    """Its `modelplane.io/pool` label, which negotiated rates are keyed by."""
    max_nodes: Mapping[str, int]

    @property
    def max_gpus(self) -> int:
        return max((GPU_INSTANCE_TYPES[t].gpus * n for t, n in self.max_nodes.items()), default=0)

    def max_monthly_cost(self, rates: Mapping[str, Any]) -> float:
        rate = rates.get(str(self.pool))
        hourly = float(rate) if isinstance(rate, (int, float)) else None
        return max((monthly_cost_usd(GPU_INSTANCE_TYPES[t], n, hourly) for t, n in self.max_nodes.items()), default=0.0)


def _uncatalogued(what: str, resource: StackResource, types: list[str]) -> Finding | None:
    unknown_types = [t for t in types if t not in GPU_INSTANCE_TYPES]
    if not unknown_types:
        return None
    return Finding(f"{what} {resource.name!r}: {unknown_types} not in the GPU catalog; cannot be counted", resource.urn)


def _node_group_bound(group: StackResource) -> Finding | GpuPoolBound | None:
    size, types = dig(group.props, "scalingConfig", "maxSize"), group.props.get("instanceTypes")
    if not isinstance(size, (int, float)) or is_unknown(types):
        return None
    names = [str(t) for t in as_list(types)]
    pool = dig(group.props, "labels", POOL_LABEL)
    return _uncatalogued("node group", group, names) or GpuPoolBound(
        group, pool if isinstance(pool, str) else None, {t: int(size) for t in names}
    )


def _node_pool_bound(node_pool: StackResource) -> Finding | GpuPoolBound | None:
    limit, types = karpenter.gpu_limit(node_pool.props), karpenter.instance_types(node_pool.props)
    if is_unknown(limit) or is_unknown(types):
        return None
    if limit is None:
        return Finding(
            f"NodePool {node_pool.name!r} has no limits[{karpenter.GPU_RESOURCE!r}], so Karpenter may grow it "
            "without bound; set it to the GPUs the pool may hold",
            node_pool.urn,
        )
    if types is None:
        return Finding(
            f"NodePool {node_pool.name!r} has no {karpenter.INSTANCE_TYPE_LABEL} In requirement; "
            "cannot be priced or counted",
            node_pool.urn,
        )
    names = [str(t) for t in as_list(types)]
    return _uncatalogued("NodePool", node_pool, names) or GpuPoolBound(
        node_pool, karpenter.pool_name(node_pool.props), {t: int(limit) // GPU_INSTANCE_TYPES[t].gpus for t in names}
    )


def gpu_pool_bounds(resources: list[StackResource]) -> tuple[list[Finding], list[GpuPoolBound]]:
    """Every GPU pool's bound, and findings for pools that cannot be counted (uncatalogued types, no GPU limit).
    Pools whose size or types are not yet known are skipped."""
    findings: list[Finding] = []
    bounds: list[GpuPoolBound] = []
    for resource in resources:
        if resource.type in NODE_GROUP_TYPES and is_gpu_node_group(resource.props):
            bound = _node_group_bound(resource)
        elif resource.type in karpenter.NODE_POOL_TYPES and karpenter.is_gpu_node_pool(resource.props):
            bound = _node_pool_bound(resource)
        else:
            continue
        if isinstance(bound, Finding):
            findings.append(bound)
        elif bound is not None:
            bounds.append(bound)
    return findings, bounds


def _has_gpu_pools(resources: list[StackResource]) -> bool:
    return any(
        (r.type in NODE_GROUP_TYPES and is_gpu_node_group(r.props))
        or (r.type in karpenter.NODE_POOL_TYPES and karpenter.is_gpu_node_pool(r.props))
        for r in resources
    )


def _gpu_count(resources: list[StackResource], config: Mapping[str, Any]) -> list[Finding]:
    limit = config.get("maxGpus")
    if not _has_gpu_pools(resources):
        return []
    if not isinstance(limit, (int, float)):
        return [Finding("no maxGpus in the policy config: the environment's budget was not handed to the policy")]
    findings, bounds = gpu_pool_bounds(resources)
    total = sum(b.max_gpus for b in bounds)
    if total > limit:
        pools = ", ".join(f"{b.resource.name}={b.max_gpus}" for b in bounds)
        findings.append(Finding(f"GPU pools reach {total} GPUs at max size ({pools}); the budget is {int(limit)}"))
    return findings


def _gpu_cost(resources: list[StackResource], config: Mapping[str, Any]) -> list[Finding]:
    limit = config.get("maxMonthlyGpuCostUsd")
    if not _has_gpu_pools(resources):
        return []
    if not isinstance(limit, (int, float)):
        return [Finding("no maxMonthlyGpuCostUsd in the policy config: the environment's budget was not handed over")]
    rates = as_dict(config.get("hourlyRates"))
    findings, bounds = gpu_pool_bounds(resources)
    total = round(sum(b.max_monthly_cost(rates) for b in bounds), 2)
    if total > limit:
        findings.append(Finding(f"GPU pools cost up to ${total:,.2f}/month at max size; the budget is ${limit:,.2f}"))
    return findings


GPU_COUNT_WITHIN_BUDGET = StackRule(
    name="aws-eks-nodegroup-limit-total-gpus",
    description="All GPU node groups together, at max size, hold no more GPUs than the environment's budget.",
    why="GPU quotas are scarce and a mistyped max_size can reserve a region's worth of H100s.",
    check=_gpu_count,
    config_properties={"maxGpus": {"type": "number", "description": "From modelplane:budget.max_gpus."}},
)
GPU_COST_WITHIN_BUDGET = StackRule(
    name="aws-eks-nodegroup-limit-monthly-gpu-cost",
    description="All GPU node groups together, at max size for a month, cost no more than the environment's budget.",
    why="The worst-case bill is known and agreed before the autoscaler can run it up.",
    check=_gpu_cost,
    config_properties={
        "maxMonthlyGpuCostUsd": {"type": "number", "description": "From modelplane:budget.max_monthly_gpu_cost_usd."},
        "hourlyRates": {"type": "object", "description": "Negotiated USD/hour by pool name (usd_per_hour)."},
    },
)

RULES: list[Rule] = [GPU_COUNT_WITHIN_BUDGET, GPU_COST_WITHIN_BUDGET]
