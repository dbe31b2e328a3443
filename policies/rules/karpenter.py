"""Reading Karpenter's objects as the engine hands them over: which instance types a NodePool may launch,
whether it is a GPU pool, how many GPUs its limits allow.

A NodePool is a `kubernetes:karpenter.sh/v1:NodePool` custom resource; its inputs are the object itself
(`apiVersion`, `kind`, `metadata`, `spec`), with numbers as floats and unknown values as UNKNOWN.
"""

from __future__ import annotations

import re
from typing import Any

from modelplane.policies.rules.props import UNKNOWN, as_dict, as_list, dig, is_unknown
from modelplane.policies.rules.workloads import GPU_RESOURCE
from modelplane.terms.scheduling import GPU_PRESENT_LABEL, POOL_LABEL

NODE_POOL_TYPES = frozenset({"kubernetes:karpenter.sh/v1:NodePool"})
NODE_CLASS_TYPES = frozenset({"kubernetes:karpenter.k8s.aws/v1:EC2NodeClass"})
INSTANCE_TYPE_LABEL = "node.kubernetes.io/instance-type"
# Requirements that can only be met by accelerated instances (GPU count, name, manufacturer, ...).
_GPU_REQUIREMENT_PREFIX = "karpenter.k8s.aws/instance-gpu"
_GPU_FAMILY = re.compile(r"^[gp]\d[a-z]*$")
_GPU_CATEGORIES = frozenset({"g", "p"})


def requirement_values(props: dict[str, Any], key: str) -> list[str] | Any | None:
    """What a NodePool's `In` requirements on `key` allow (their intersection); None when none constrains it
    (Karpenter may pick any value); UNKNOWN when the requirements are not yet known."""
    requirements = dig(props, "spec", "template", "spec", "requirements")
    if is_unknown(requirements):
        return UNKNOWN
    allowed: list[str] | None = None
    for requirement in as_list(requirements):
        if is_unknown(requirement) or is_unknown(dig(requirement, "key")):
            return UNKNOWN
        if dig(requirement, "key") != key or dig(requirement, "operator") != "In":
            continue
        values = dig(requirement, "values")
        if is_unknown(values) or any(is_unknown(v) for v in as_list(values)):
            return UNKNOWN
        found = [str(v) for v in as_list(values)]
        allowed = found if allowed is None else [v for v in allowed if v in found]
    return allowed


def instance_types(props: dict[str, Any]) -> list[str] | Any | None:
    """The instance types a NodePool may launch (see `requirement_values`)."""
    return requirement_values(props, INSTANCE_TYPE_LABEL)


def template_labels(props: dict[str, Any]) -> dict[str, Any]:
    return as_dict(dig(props, "spec", "template", "metadata", "labels"))


def pool_name(props: dict[str, Any]) -> str | None:
    """The `modelplane.io/pool` label the NodePool's nodes carry."""
    name = template_labels(props).get(POOL_LABEL)
    return name if isinstance(name, str) else None


def gpu_limit(props: dict[str, Any]) -> int | Any | None:
    """The NodePool's `nvidia.com/gpu` limit; None when it has none, UNKNOWN when not yet known."""
    limit = dig(props, "spec", "limits", GPU_RESOURCE)
    if limit is None or is_unknown(limit):
        return limit
    try:
        return int(float(limit))
    except (TypeError, ValueError):
        return None


def _families(props: dict[str, Any]) -> list[str]:
    types = instance_types(props)
    families = [t.split(".", 1)[0] for t in types] if isinstance(types, list) else []
    named = requirement_values(props, "karpenter.k8s.aws/instance-family")
    return families + (named if isinstance(named, list) else [])


def is_gpu_node_pool(props: dict[str, Any]) -> bool:
    """A NodePool is a GPU one if its instance types, families or categories are GPU ones, it requires GPUs,
    limits them, or labels its nodes as GPU nodes."""
    categories = requirement_values(props, "karpenter.k8s.aws/instance-category")
    requirements = dig(props, "spec", "template", "spec", "requirements")
    return (
        any(_GPU_FAMILY.match(family) for family in _families(props))
        or (isinstance(categories, list) and bool(_GPU_CATEGORIES & set(categories)))
        or any(str(dig(r, "key")).startswith(_GPU_REQUIREMENT_PREFIX) for r in as_list(requirements))
        or dig(props, "spec", "limits", GPU_RESOURCE) is not None
        or template_labels(props).get(GPU_PRESENT_LABEL) == "true"
    )
