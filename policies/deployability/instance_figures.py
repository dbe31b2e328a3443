"""What one node of an EC2 instance type offers pods: GPUs, EFA interfaces, vCPUs and memory, less a system reserve.

GPU types come from the GPU catalog (modelplane.terms.gpu_catalog). CPU types the platform runs its controllers and
CPU services on are listed here (EC2's published figures; families m7i, m6i, m5, c7i, c6i, r7i). Any other type is
unknown: a check that would need its figures skips it rather than guess.
"""

from __future__ import annotations

from dataclasses import dataclass

from modelplane.terms.gpu_catalog import GPU_INSTANCE_TYPES
from modelplane.terms.scheduling import EFA_RESOURCE, GPU_RESOURCE, NODE_RESERVED_MEMORY_FRACTION, NODE_RESERVED_VCPUS

GIB = 2.0**30


@dataclass(frozen=True)
class InstanceFigures:
    name: str
    vcpus: int
    memory_gib: float
    gpus: int = 0
    efa_interfaces: int = 0
    architecture: str = "amd64"
    """As Kubernetes spells it in kubernetes.io/arch."""

    def devices(self, resource: str) -> int | None:
        """How many of an extended resource the hardware holds; None for resources this table does not know."""
        if resource == GPU_RESOURCE:
            return self.gpus
        if resource == EFA_RESOURCE:
            return self.efa_interfaces
        return None


@dataclass(frozen=True)
class SystemReserve:
    """What every node keeps for the kubelet, system daemons and device plugins; pods may ask for the rest.
    The default is the platform's own figure (modelplane.terms.scheduling)."""

    vcpus: float = NODE_RESERVED_VCPUS
    memory_fraction: float = NODE_RESERVED_MEMORY_FRACTION

    def allocatable(self, figures: InstanceFigures) -> dict[str, float]:
        """Per resource, in base units (cores, bytes, devices), what one node leaves to pods."""
        return {
            "cpu": max(0.0, figures.vcpus - self.vcpus),
            "memory": figures.memory_gib * (1 - self.memory_fraction) * GIB,
            GPU_RESOURCE: float(figures.gpus),
            EFA_RESOURCE: float(figures.efa_interfaces),
        }


SYSTEM_RESERVE = SystemReserve()

_SIZES = {
    "large": 2,
    "xlarge": 4,
    "2xlarge": 8,
    "4xlarge": 16,
    "8xlarge": 32,
    "12xlarge": 48,
    "16xlarge": 64,
    "24xlarge": 96,
    "32xlarge": 128,
    "48xlarge": 192,
}
_TO_24XL = ("large", "xlarge", "2xlarge", "4xlarge", "8xlarge", "12xlarge", "16xlarge", "24xlarge")
_TO_32XL = (*_TO_24XL, "32xlarge")
_TO_48XL = (*_TO_24XL, "48xlarge")
# family: (GiB of memory per vCPU, the sizes it comes in, the size with an EFA interface)
_CPU_FAMILIES: dict[str, tuple[int, tuple[str, ...], str | None]] = {
    "m7i": (4, _TO_48XL, "48xlarge"),
    "m6i": (4, _TO_32XL, "32xlarge"),
    "m5": (4, _TO_24XL, None),
    "c7i": (2, _TO_48XL, "48xlarge"),
    "c6i": (2, _TO_32XL, "32xlarge"),
    "r7i": (8, _TO_48XL, "48xlarge"),
}

CPU_INSTANCE_TYPES: dict[str, InstanceFigures] = {
    f"{family}.{size}": InstanceFigures(
        f"{family}.{size}", _SIZES[size], _SIZES[size] * per_vcpu, efa_interfaces=1 if size == efa_size else 0
    )
    for family, (per_vcpu, sizes, efa_size) in _CPU_FAMILIES.items()
    for size in sizes
}
"""vCPUs and memory of the CPU types modelplane uses (EC2 instance type pages); EFA on the largest size."""

GPU_FIGURES: dict[str, InstanceFigures] = {
    name: InstanceFigures(
        name,
        t.vcpus,
        t.memory_gib,
        gpus=t.gpus,
        efa_interfaces=t.efa_interfaces,
        architecture="arm64" if t.architecture.value == "arm64" else "amd64",
    )
    for name, t in GPU_INSTANCE_TYPES.items()
}


def instance_figures(instance_type: str) -> InstanceFigures | None:
    """The figures of `instance_type`; None when neither the GPU catalog nor the CPU table knows it."""
    return GPU_FIGURES.get(instance_type) or CPU_INSTANCE_TYPES.get(instance_type)
