"""Budget rules over all GPU capacity together, at its largest: GPU count and monthly cost.

GPU capacity is counted wherever it is declared (see `deployability.cost.gpu_capacity`: node groups and their launch
templates, Karpenter NodePools bounded by their limits, Auto Scaling groups, instances), for every EC2 GPU type.
The limits are the environment's own `modelplane:budget`, handed to the rules as policy config (`maxGpus`,
`maxMonthlyGpuCostUsd`, and negotiated `hourlyRates` by pool). A type whose GPUs or price no table holds cannot be
counted or priced: the rule says so as advice rather than guessing.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from modelplane.policies.deployability.cost import (
    GpuCapacity,
    check_cost,
    gpu_capacity,
    max_gpus_by_source,
    uncounted_gpu_types,
)
from modelplane.policies.rules.gpu_pools import gpu_offers, planned_stack
from modelplane.policies.rules.props import as_dict
from modelplane.policies.rules.rule import Finding, Rule, StackResource, StackRule, Undecided
from modelplane.terms.gpu_catalog import GPU_INSTANCE_TYPES, HOURS_PER_MONTH
from modelplane.terms.scheduling import POOL_LABEL

HOW_TO_HAND_OVER = "run `modelplane plan ENV` and pass build/ENV/policy-config.json with --policy-pack-config"


def _names(planned: Sequence[Mapping[str, Any]]) -> dict[str, str]:
    return {str(resource.get("urn")): str(resource.get("name")) for resource in planned}


def _uncounted(planned: Sequence[Mapping[str, Any]]) -> list[Finding]:
    """GPU capacity nothing bounds (the budget cannot be kept whatever it is), and types no table counts."""
    names = _names(planned)
    unbounded = [Finding(f.message(), f.urn) for f in check_cost(planned)]
    return unbounded + [
        Finding(
            Undecided(
                f"{names.get(urn, urn)}: {types} look like GPU instance types but no table says how many GPUs "
                "they hold; they are left out of the count"
            ),
            urn,
        )
        for urn, types in uncounted_gpu_types(planned).items()
    ]


def _pool_names(planned: Sequence[Mapping[str, Any]]) -> dict[str, str]:
    """Each GPU source's `modelplane.io/pool` label, which negotiated rates are keyed by."""
    names = {}
    for gpu in gpu_offers(planned):
        values = gpu.offer.labels.values.get(POOL_LABEL)
        if values and len(values) == 1:
            names[gpu.offer.urn] = next(iter(values))
    return names


def _hourly_price(capacity: GpuCapacity, pool: str | None, rates: Mapping[str, Any]) -> float | None:
    rate = rates.get(pool) if pool is not None else None
    if isinstance(rate, (int, float)):
        return float(rate)
    catalogued = GPU_INSTANCE_TYPES.get(capacity.instance_type or "")
    return catalogued.on_demand_usd_per_hour if catalogued else None


def _gpu_count(resources: list[StackResource], config: Mapping[str, Any]) -> list[Finding]:
    limit = config.get("maxGpus")
    planned = planned_stack(resources)
    capacities = gpu_capacity(planned)
    findings = _uncounted(planned)
    if not capacities and not findings:
        return []
    if not isinstance(limit, (int, float)):
        return [
            *findings,
            Finding(
                f"no maxGpus in the policy config: the environment's budget was not handed over; {HOW_TO_HAND_OVER}"
            ),
        ]
    by_source = max_gpus_by_source(capacities)
    total = sum(by_source.values())
    if total > limit:
        names = _names(planned)
        pools = ", ".join(f"{names.get(urn, urn)}={gpus}" for urn, gpus in sorted(by_source.items()))
        findings.append(Finding(f"GPU capacity reaches {total} GPUs at max size ({pools}); the budget is {int(limit)}"))
    return findings


def _gpu_cost(resources: list[StackResource], config: Mapping[str, Any]) -> list[Finding]:
    limit = config.get("maxMonthlyGpuCostUsd")
    planned = planned_stack(resources)
    capacities = gpu_capacity(planned)
    findings = _uncounted(planned)
    if not capacities and not findings:
        return []
    if not isinstance(limit, (int, float)):
        return [
            *findings,
            Finding(
                f"no maxMonthlyGpuCostUsd in the policy config: the environment's budget was not "
                f"handed over; {HOW_TO_HAND_OVER}"
            ),
        ]
    rates, pools, names = as_dict(config.get("hourlyRates")), _pool_names(planned), _names(planned)
    most_by_source: dict[str, float] = {}
    for capacity in capacities:
        price = _hourly_price(capacity, pools.get(capacity.urn), rates)
        if price is None or capacity.max_nodes is None:
            what = capacity.instance_type or "its unpinned GPU types"
            findings.append(
                Finding(
                    Undecided(
                        f"{names.get(capacity.urn, capacity.urn)}: cannot price {what} (not in the GPU catalog); "
                        "give its pool a usd_per_hour (hourlyRates) or use a catalogued type"
                    ),
                    capacity.urn,
                )
            )
            continue
        monthly = price * capacity.max_nodes * HOURS_PER_MONTH
        most_by_source[capacity.urn] = max(most_by_source.get(capacity.urn, 0.0), monthly)
    total = round(sum(most_by_source.values()), 2)
    if total > limit:
        findings.append(
            Finding(f"GPU capacity costs up to ${total:,.2f}/month at max size; the budget is ${limit:,.2f}")
        )
    return findings


GPU_COUNT_WITHIN_BUDGET = StackRule(
    name="aws-eks-nodegroup-limit-total-gpus",
    description="All GPU capacity together (node groups, launch templates, NodePools, Auto Scaling groups, "
    "instances), at max size, holds no more GPUs than the environment's budget.",
    why="GPU quotas are scarce and a mistyped max_size can reserve a region's worth of H100s.",
    check=_gpu_count,
    config_properties={"maxGpus": {"type": "number", "description": "From modelplane:budget.max_gpus."}},
)
GPU_COST_WITHIN_BUDGET = StackRule(
    name="aws-eks-nodegroup-limit-monthly-gpu-cost",
    description="All GPU capacity together, at max size for a month, costs no more than the environment's budget.",
    why="The worst-case bill is known and agreed before the autoscaler can run it up.",
    check=_gpu_cost,
    config_properties={
        "maxMonthlyGpuCostUsd": {"type": "number", "description": "From modelplane:budget.max_monthly_gpu_cost_usd."},
        "hourlyRates": {"type": "object", "description": "Negotiated USD/hour by pool name (usd_per_hour)."},
    },
)

RULES: list[Rule] = [GPU_COUNT_WITHIN_BUDGET, GPU_COST_WITHIN_BUDGET]
