"""Which EC2 instance types carry GPUs, and how many: every type EC2 lists with GpuInfo, not only the catalog's.

The GPU catalog (`gpu_catalog`) holds the types modelplane prices and plans pools with. Rules that guard GPU
capacity must also see GPU types outside it (g4dn, gr6, p6-b200, ...), so EC2's own DescribeInstanceTypes data
(`terms.aws.ec2_instance_types`, vendored with its source) answers "is this a GPU type, with how many
GPUs". A type newer than the table, or one that holds a fraction of a GPU (g6f), is recognised by its family name
and its GPU count is not known.
"""

from __future__ import annotations

import re
from functools import cache

from modelplane.terms.aws import ec2_instance_types
from modelplane.terms.gpu_catalog import GPU_INSTANCE_TYPES

GPU_FAMILY_NAME = re.compile(r"^(g|gr|p)\d[a-z0-9-]*\.")
"""EC2's GPU families: g (graphics and inference), gr (graphics, ARM), p (training); with a size after the dot."""


@cache
def _ec2_gpu_counts() -> dict[str, int]:
    return {name: row.gpus for name, row in ec2_instance_types().items() if row.gpus}


@cache
def _gpu_families() -> frozenset[str]:
    return frozenset(name.split(".", 1)[0] for name in (*GPU_INSTANCE_TYPES, *_ec2_gpu_counts()))


def gpu_count(instance_type: str) -> int | None:
    """GPUs in one instance of `instance_type`: 0 for a type EC2 lists without GPUs or that no GPU family names,
    None for a type that looks like a GPU type but is in neither table (its count is not known)."""
    if instance_type in GPU_INSTANCE_TYPES:
        return GPU_INSTANCE_TYPES[instance_type].gpus
    if instance_type in _ec2_gpu_counts():
        return _ec2_gpu_counts()[instance_type]
    return None if GPU_FAMILY_NAME.match(instance_type) else 0


def is_gpu_instance_type(instance_type: str) -> bool:
    return gpu_count(instance_type) != 0


def is_gpu_family(family: str) -> bool:
    """An instance family (the part before the dot, as Karpenter's instance-family label holds it) with GPUs."""
    return family in _gpu_families() or GPU_FAMILY_NAME.match(f"{family}.") is not None


def known_gpu_instance_types() -> list[str]:
    """Every GPU instance type either table holds (fractional-GPU types too), sorted."""
    return sorted({*GPU_INSTANCE_TYPES, *(name for name in ec2_instance_types() if is_gpu_instance_type(name))})
