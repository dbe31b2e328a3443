"""GPU capacity and cost of an environment's pools at their maximum size, against its budget.

The catalog holds one price per instance type: the us-east-1 on-demand list price. A row is exact only for an
on-demand pool in us-east-1 or a pool with its own `usd_per_hour`; every other row says what it approximates.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from enum import StrEnum

from modelplane.components.gpu_nodes import CapacityType
from modelplane.config import EnvironmentConfig, GpuNodePoolConfig, pool_max_gpus, pool_max_monthly_cost
from modelplane.terms.gpu_catalog import HOURS_PER_MONTH, PRICE_DATE, PRICE_SOURCE, gpu_instance_type

PRICED_REGION = "us-east-1"


class PriceBasis(StrEnum):
    """Where a pool's hourly price comes from, and so how far to trust its row."""

    LIST = "list"
    """The us-east-1 on-demand list price, for an on-demand pool in us-east-1: exact (before discounts)."""
    CONFIGURED = "configured"
    """The pool's own `usd_per_hour` (a negotiated rate)."""
    SPOT_CEILING = "spot-ceiling"
    """Spot is billed at the spot price, which never exceeds on-demand: the row is an upper bound."""
    CAPACITY_BLOCK = "capacity-block"
    """A capacity block is billed at its reservation's price: the on-demand price stands in for it."""
    OTHER_REGION = "other-region"
    """An on-demand pool outside us-east-1: that region's prices differ (often higher)."""


PRICE_MARKS = {
    PriceBasis.LIST: "list",
    PriceBasis.CONFIGURED: "set",
    PriceBasis.SPOT_CEILING: "≤",
    PriceBasis.CAPACITY_BLOCK: "≈",
    PriceBasis.OTHER_REGION: "≈",
}
"""The short mark the cost table prints in each row's `price` column."""


def price_basis(pool: GpuNodePoolConfig, region: str) -> PriceBasis:
    if pool.usd_per_hour is not None:
        return PriceBasis.CONFIGURED
    if pool.capacity_type is CapacityType.SPOT:
        return PriceBasis.SPOT_CEILING
    if pool.capacity_type is CapacityType.CAPACITY_BLOCK:
        return PriceBasis.CAPACITY_BLOCK
    return PriceBasis.LIST if region == PRICED_REGION else PriceBasis.OTHER_REGION


def price_note(basis: PriceBasis, region: str) -> str:
    """One line saying what a row's price is, for the table's notes and plan.json."""
    elsewhere = "" if region == PRICED_REGION else f" ({region} is not priced: {PRICED_REGION}'s price stands in)"
    return {
        PriceBasis.LIST: f"{PRICED_REGION} on-demand list price",
        PriceBasis.CONFIGURED: "the pool's usd_per_hour",
        PriceBasis.SPOT_CEILING: f"upper bound: spot is billed at the spot price, at most on-demand{elsewhere}",
        PriceBasis.CAPACITY_BLOCK: f"approximation: a capacity block is billed at its reservation's price{elsewhere}",
        PriceBasis.OTHER_REGION: f"approximation: {PRICED_REGION} on-demand list price; {region} is not priced",
    }[basis]


@dataclass(frozen=True)
class PoolCost:
    pool: str
    instance_type: str
    capacity_type: str
    gpu_model: str
    gpus_per_node: int
    max_nodes: int
    max_gpus: int
    usd_per_hour: float
    max_monthly_usd: float
    region: str = PRICED_REGION
    price_basis: PriceBasis = PriceBasis.LIST
    price_note: str = ""

    @property
    def approximate(self) -> bool:
        return self.price_basis not in (PriceBasis.LIST, PriceBasis.CONFIGURED)


@dataclass(frozen=True)
class CostReport:
    pools: list[PoolCost]
    total_max_gpus: int
    total_max_monthly_usd: float
    budget_max_gpus: int
    budget_max_monthly_usd: float
    hours_per_month: int = HOURS_PER_MONTH
    price_source: str = PRICE_SOURCE
    price_date: str = PRICE_DATE

    @property
    def within_budget(self) -> bool:
        return self.total_max_gpus <= self.budget_max_gpus and self.total_max_monthly_usd <= self.budget_max_monthly_usd

    @property
    def approximate(self) -> bool:
        return any(pool.approximate for pool in self.pools)

    def to_json(self) -> dict[str, object]:
        document = asdict(self)
        for pool, row in zip(self.pools, document["pools"], strict=True):
            row["price_basis"] = pool.price_basis.value
            row["approximate"] = pool.approximate
        return {**document, "within_budget": self.within_budget, "approximate": self.approximate}


def cost_report(env: EnvironmentConfig) -> CostReport:
    pools = []
    for pool in env.gpu_node_pools:
        instance = gpu_instance_type(pool.instance_type)
        basis = price_basis(pool, env.region)
        pools.append(
            PoolCost(
                pool=pool.name,
                instance_type=pool.instance_type,
                capacity_type=pool.capacity_type.value,
                gpu_model=instance.gpu_model,
                gpus_per_node=instance.gpus,
                max_nodes=pool.max_size,
                max_gpus=pool_max_gpus(pool),
                usd_per_hour=pool.usd_per_hour or instance.on_demand_usd_per_hour,
                max_monthly_usd=pool_max_monthly_cost(pool),
                region=env.region,
                price_basis=basis,
                price_note=price_note(basis, env.region),
            )
        )
    return CostReport(
        pools=pools,
        total_max_gpus=sum(p.max_gpus for p in pools),
        total_max_monthly_usd=round(sum(p.max_monthly_usd for p in pools), 2),
        budget_max_gpus=env.budget.max_gpus,
        budget_max_monthly_usd=env.budget.max_monthly_gpu_cost_usd,
    )
