"""Reading planned values: which are not yet known, and Kubernetes quantities ("500m", "16Gi", 8.0) as numbers.

A value the plan cannot know yet ("[unknown]" in plan.json, the policy engine's sentinels, or the pack's `UNKNOWN`
once its rules have read the inputs with `plain`) or may not show ("[secret]") reads as None here, exactly like a
missing one, so the checks skip it instead of guessing.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Any

from modelplane.policies.deployability.findings import field
from modelplane.policies.rules.props import ENGINE_UNKNOWNS, SECRET_PLACEHOLDER, UNKNOWN

PLAN_UNKNOWN = "[unknown]"
UNKNOWN_MARKERS = frozenset({PLAN_UNKNOWN, SECRET_PLACEHOLDER, *ENGINE_UNKNOWNS})

_SUFFIXES = {
    "n": 1e-9,
    "u": 1e-6,
    "m": 1e-3,
    "": 1.0,
    "k": 1e3,
    "M": 1e6,
    "G": 1e9,
    "T": 1e12,
    "P": 1e15,
    "E": 1e18,
    "Ki": 2.0**10,
    "Mi": 2.0**20,
    "Gi": 2.0**30,
    "Ti": 2.0**40,
    "Pi": 2.0**50,
    "Ei": 2.0**60,
}
_QUANTITY = re.compile(r"^([+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?)(Ki|Mi|Gi|Ti|Pi|Ei|n|u|m|k|M|G|T|P|E)?$")
GIB = 2.0**30


def is_unknown(value: Any) -> bool:
    """True for a value the plan cannot know yet, or a string built from one."""
    return value is UNKNOWN or (isinstance(value, str) and (value in UNKNOWN_MARKERS or "[unknown]" in value))


def value_at(props: Any, *path: str) -> Any:
    """The value at `path` (either spelling, as `field` reads it); PLAN_UNKNOWN where a step on the way is not known,
    so an unknown object is never mistaken for an absent one."""
    value = props
    for key in path:
        if is_unknown(value):
            return PLAN_UNKNOWN
        if not isinstance(value, Mapping):
            return None
        value = field(value, key)
    return PLAN_UNKNOWN if is_unknown(value) else value


def chart_name(chart: Any) -> str | None:
    """The chart's own name from a release's `chart` input: 'oci://ghcr.io/kubeflow/charts/kubeflow-trainer',
    'eks/aws-efa-k8s-device-plugin' and './charts/kueue' name kubeflow-trainer, aws-efa-k8s-device-plugin and
    kueue; None when not known."""
    if not isinstance(chart, str) or is_unknown(chart):
        return None
    return chart.rstrip("/").rsplit("/", 1)[-1]


def known(value: Any) -> Any:
    """`value`, or None when it is unknown."""
    return None if is_unknown(value) else value


def as_list(value: Any) -> list[Any]:
    """A list input; [] where it is missing or not a list (check `is_unknown` first where that matters)."""
    return list(value) if isinstance(value, Sequence) and not isinstance(value, (str, bytes)) else []


def as_mapping(value: Any) -> Mapping[str, Any]:
    return value if isinstance(value, Mapping) else {}


def quantity(value: Any) -> float | None:
    """A Kubernetes quantity in base units (cores, bytes, devices); None when unknown or unreadable."""
    if isinstance(value, bool) or value is None or is_unknown(value):
        return None
    if isinstance(value, (int, float)):
        return float(value)
    match = _QUANTITY.match(str(value).strip())
    if not match:
        return None
    return float(match.group(1)) * _SUFFIXES[match.group(2) or ""]


def whole_number(value: Any) -> int | None:
    """A count input (replicas, sizes: floats in plan.json); None when unknown or not a number."""
    if isinstance(value, bool) or value is None or is_unknown(value):
        return None
    if isinstance(value, (int, float)):
        return int(value)
    try:
        return int(str(value))
    except ValueError:
        return None


def format_quantity(resource: str, amount: float) -> str:
    """A request as a person writes it: memory in GiB, CPU in cores, devices as counts."""
    if resource == "memory" or resource.startswith("hugepages-") or resource == "ephemeral-storage":
        return f"{amount / GIB:g}Gi"
    return f"{amount:g}"
