"""GPU capacity and cost of an environment's pools at their maximum size, against its budget."""

from __future__ import annotations

from dataclasses import asdict, dataclass

from modelplane.config import EnvironmentConfig, pool_max_gpus, pool_max_monthly_cost
from modelplane.terms.gpu_catalog import HOURS_PER_MONTH, PRICE_DATE, PRICE_SOURCE, gpu_instance_type


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

    def to_json(self) -> dict[str, object]:
        return {**asdict(self), "within_budget": self.within_budget}


def cost_report(env: EnvironmentConfig) -> CostReport:
    pools = []
    for pool in env.gpu_node_pools:
        instance = gpu_instance_type(pool.instance_type)
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
            )
        )
    return CostReport(
        pools=pools,
        total_max_gpus=sum(p.max_gpus for p in pools),
        total_max_monthly_usd=round(sum(p.max_monthly_usd for p in pools), 2),
        budget_max_gpus=env.budget.max_gpus,
        budget_max_monthly_usd=env.budget.max_monthly_gpu_cost_usd,
    )
