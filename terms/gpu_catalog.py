"""The GPU instance types modelplane knows: hardware facts and list prices.

One table drives config validation (is this a GPU type, does it support EFA, how
many GPUs does it hold), AMI choice (x86_64 or arm64) and the plan's cost table.
Hardware facts are checked in tests against EC2's own DescribeInstanceTypes data
(as moto ships it). Prices are on-demand Linux list prices in us-east-1; pools may
override them with a negotiated or reserved rate.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

PRICE_SOURCE = "AWS EC2 On-Demand pricing, Linux, us-east-1 (aws.amazon.com/ec2/pricing/on-demand)"
PRICE_DATE = "2025-06-30"
HOURS_PER_MONTH = 730


class CpuArchitecture(StrEnum):
    X86_64 = "x86_64"
    ARM64 = "arm64"


@dataclass(frozen=True)
class GpuInstanceType:
    """Hardware and price of one EC2 GPU instance type."""

    name: str
    gpus: int
    gpu_model: str
    gpu_memory_mib: int
    """Memory of one GPU, as EC2 reports it."""
    vcpus: int
    memory_gib: int
    efa_interfaces: int
    """Maximum EFA interfaces; 0 when the type does not support EFA."""
    on_demand_usd_per_hour: float
    architecture: CpuArchitecture = CpuArchitecture.X86_64

    @property
    def family(self) -> str:
        return self.name.split(".", 1)[0]

    @property
    def gpu_memory_gib(self) -> float:
        return round(self.gpu_memory_mib / 1024, 1)

    @property
    def supports_efa(self) -> bool:
        return self.efa_interfaces > 0


def _family(
    gpu_model: str,
    gpu_memory_mib: int,
    rows: list[tuple[str, int, int, int, int, float]],
    architecture: CpuArchitecture = CpuArchitecture.X86_64,
) -> list[GpuInstanceType]:
    return [
        GpuInstanceType(
            name=name,
            gpus=gpus,
            gpu_model=gpu_model,
            gpu_memory_mib=gpu_memory_mib,
            vcpus=vcpus,
            memory_gib=memory_gib,
            efa_interfaces=efa,
            on_demand_usd_per_hour=price,
            architecture=architecture,
        )
        for name, gpus, vcpus, memory_gib, efa, price in rows
    ]


# (name, GPUs, vCPUs, memory GiB, EFA interfaces, on-demand USD/hour)
_CATALOG: list[GpuInstanceType] = [
    *_family(
        "A10G",
        22888,
        [
            ("g5.xlarge", 1, 4, 16, 0, 1.006),
            ("g5.2xlarge", 1, 8, 32, 0, 1.212),
            ("g5.4xlarge", 1, 16, 64, 0, 1.624),
            ("g5.8xlarge", 1, 32, 128, 1, 2.448),
            ("g5.12xlarge", 4, 48, 192, 1, 5.672),
            ("g5.16xlarge", 1, 64, 256, 1, 4.096),
            ("g5.24xlarge", 4, 96, 384, 1, 8.144),
            ("g5.48xlarge", 8, 192, 768, 1, 16.288),
        ],
    ),
    *_family(
        "L4",
        22888,
        [
            ("g6.xlarge", 1, 4, 16, 0, 0.8048),
            ("g6.2xlarge", 1, 8, 32, 0, 0.9776),
            ("g6.4xlarge", 1, 16, 64, 0, 1.3232),
            ("g6.8xlarge", 1, 32, 128, 1, 2.0144),
            ("g6.12xlarge", 4, 48, 192, 1, 4.6016),
            ("g6.16xlarge", 1, 64, 256, 1, 3.3968),
            ("g6.24xlarge", 4, 96, 384, 1, 6.6752),
            ("g6.48xlarge", 8, 192, 768, 1, 13.3504),
        ],
    ),
    *_family(
        "L40S",
        45776,
        [
            ("g6e.xlarge", 1, 4, 32, 0, 1.861),
            ("g6e.2xlarge", 1, 8, 64, 0, 2.242),
            ("g6e.4xlarge", 1, 16, 128, 0, 3.004),
            ("g6e.8xlarge", 1, 32, 256, 1, 4.529),
            ("g6e.12xlarge", 4, 48, 384, 1, 10.493),
            ("g6e.16xlarge", 1, 64, 512, 1, 7.577),
            ("g6e.24xlarge", 4, 96, 768, 2, 15.066),
            ("g6e.48xlarge", 8, 192, 1536, 4, 30.131),
        ],
    ),
    *_family(
        "T4g",
        16384,
        [
            ("g5g.xlarge", 1, 4, 8, 0, 0.42),
            ("g5g.2xlarge", 1, 8, 16, 0, 0.556),
            ("g5g.4xlarge", 1, 16, 32, 0, 0.828),
            ("g5g.8xlarge", 1, 32, 64, 0, 1.372),
            ("g5g.16xlarge", 2, 64, 128, 0, 2.744),
        ],
        architecture=CpuArchitecture.ARM64,
    ),
    *_family("A100", 40960, [("p4d.24xlarge", 8, 96, 1152, 4, 21.958)]),
    *_family("A100", 81920, [("p4de.24xlarge", 8, 96, 1152, 4, 27.447)]),
    *_family("H100", 81920, [("p5.48xlarge", 8, 192, 2048, 32, 55.040)]),
    *_family("H200", 144384, [("p5e.48xlarge", 8, 192, 2048, 32, 60.000)]),
    *_family("H200", 144384, [("p5en.48xlarge", 8, 192, 2048, 16, 63.296)]),
]

GPU_INSTANCE_TYPES: dict[str, GpuInstanceType] = {t.name: t for t in _CATALOG}


def gpu_instance_type(name: str) -> GpuInstanceType:
    """The catalog entry for `name`; KeyError lists the known types."""
    try:
        return GPU_INSTANCE_TYPES[name]
    except KeyError:
        raise KeyError(f"unknown GPU instance type {name!r}; known: {known_types()}") from None


def known_types() -> str:
    return ", ".join(sorted(GPU_INSTANCE_TYPES))


def monthly_cost_usd(instance_type: GpuInstanceType, nodes: int, usd_per_hour: float | None = None) -> float:
    """Cost of running `nodes` instances for a whole month (730 hours)."""
    rate = instance_type.on_demand_usd_per_hour if usd_per_hour is None else usd_per_hour
    return round(rate * nodes * HOURS_PER_MONTH, 2)
