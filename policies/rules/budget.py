"""Budget rules over all GPU node groups together, at their max size: GPU count and monthly on-demand cost.

The limits are the environment's own `modelplane:budget`, handed to the rules as policy config
(`maxGpus`, `maxMonthlyGpuCostUsd`, and negotiated `hourlyRates` by pool); see `modelplane.policies.rules.environment`.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from modelplane.policies.rules.nodes import NODE_GROUP_TYPES, is_gpu_node_group
from modelplane.policies.rules.props import as_dict, as_list, dig, is_unknown
from modelplane.policies.rules.rule import Finding, Rule, StackResource, StackRule
from modelplane.terms.gpu_catalog import GPU_INSTANCE_TYPES, monthly_cost_usd
from modelplane.terms.scheduling import POOL_LABEL


def _gpu_node_groups(resources: list[StackResource]) -> list[StackResource]:
    return [r for r in resources if r.type in NODE_GROUP_TYPES and is_gpu_node_group(r.props)]


def _max_size(group: StackResource) -> int | None:
    size = dig(group.props, "scalingConfig", "maxSize")
    return int(size) if isinstance(size, (int, float)) else None


def _uncatalogued(group: StackResource) -> list[str]:
    return [str(t) for t in as_list(group.props.get("instanceTypes")) if t not in GPU_INSTANCE_TYPES]


def _unbounded(groups: list[StackResource]) -> tuple[list[Finding], list[StackResource]]:
    """Groups the rule cannot count (unknown size or type: skipped; uncatalogued type: reported) and the rest."""
    findings, countable = [], []
    for group in groups:
        if _max_size(group) is None or is_unknown(group.props.get("instanceTypes")):
            continue
        unknown_types = _uncatalogued(group)
        if unknown_types:
            findings.append(
                Finding(
                    f"node group {group.name!r}: {unknown_types} not in the GPU catalog; cannot be counted", group.urn
                )
            )
        else:
            countable.append(group)
    return findings, countable


def _gpus(group: StackResource) -> int:
    per_node = max(GPU_INSTANCE_TYPES[str(t)].gpus for t in as_list(group.props["instanceTypes"]))
    return per_node * (_max_size(group) or 0)


def _monthly_cost(group: StackResource, rates: Mapping[str, Any]) -> float:
    rate = rates.get(str(dig(group.props, "labels", POOL_LABEL)))
    return max(
        monthly_cost_usd(GPU_INSTANCE_TYPES[str(t)], _max_size(group) or 0, float(rate) if rate is not None else None)
        for t in as_list(group.props["instanceTypes"])
    )


def _gpu_count(resources: list[StackResource], config: Mapping[str, Any]) -> list[Finding]:
    limit = config.get("maxGpus")
    if not _gpu_node_groups(resources):
        return []
    if not isinstance(limit, (int, float)):
        return [Finding("no maxGpus in the policy config: the environment's budget was not handed to the policy")]
    findings, groups = _unbounded(_gpu_node_groups(resources))
    total = sum(_gpus(g) for g in groups)
    if total > limit:
        pools = ", ".join(f"{g.name}={_gpus(g)}" for g in groups)
        findings.append(
            Finding(f"GPU node groups reach {total} GPUs at max size ({pools}); the budget is {int(limit)}")
        )
    return findings


def _gpu_cost(resources: list[StackResource], config: Mapping[str, Any]) -> list[Finding]:
    limit = config.get("maxMonthlyGpuCostUsd")
    if not _gpu_node_groups(resources):
        return []
    if not isinstance(limit, (int, float)):
        return [Finding("no maxMonthlyGpuCostUsd in the policy config: the environment's budget was not handed over")]
    rates = as_dict(config.get("hourlyRates"))
    findings, groups = _unbounded(_gpu_node_groups(resources))
    total = round(sum(_monthly_cost(g, rates) for g in groups), 2)
    if total > limit:
        findings.append(
            Finding(f"GPU node groups cost up to ${total:,.2f}/month at max size; the budget is ${limit:,.2f}")
        )
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
