"""Every deployability check over one plan, in a fixed order: what `modelplane plan` prints and the pack enforces."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

from modelplane.policies.deployability.capacity import check_capacity
from modelplane.policies.deployability.cost import check_cost
from modelplane.policies.deployability.devices import check_devices
from modelplane.policies.deployability.findings import Finding
from modelplane.policies.deployability.fit import check_fit
from modelplane.policies.deployability.order import check_order
from modelplane.policies.deployability.wiring import check_wiring

Check = Callable[[Sequence[Mapping[str, Any]]], list[Finding]]

CHECKS: dict[str, tuple[Check, str, str]] = {
    "devices": (
        check_devices,
        "Every extended resource a pod requests (nvidia.com/gpu, vpc.amazonaws.com/efa) is advertised by a device "
        "plugin the stack installs, on nodes where that pod can land.",
        "A resource nobody advertises keeps the pod Pending forever.",
    ),
    "fit": (
        check_fit,
        "Every pod fits on a node the stack can create: GPUs, EFA, CPU and memory less the system reserve, taints "
        "tolerated, selectors matched; replicas fit within the pool's maximum.",
        "A pod that fits no node is found an hour into a failed `up`, or when the first job sits Pending.",
    ),
    "capacity": (
        check_capacity,
        "Every node pool that can sit at zero has something that scales it; every autoscaler's metrics have a source.",
        "A pool at zero with no autoscaler never gets a node; an HPA without metrics never scales.",
    ),
    "order": (
        check_order,
        "Every custom resource waits for what installs its CRD; every namespaced object's namespace exists first.",
        "`no matches for kind` and missing namespaces fail a first `up` halfway.",
    ),
    "wiring": (
        check_wiring,
        "Monitors and rules are selected by the Prometheus the stack runs; claims name existing storage classes; "
        "pods that use AWS have their pod identity; images come from the stack's registries or are pinned.",
        "Objects that exist but are never used look deployed and do nothing.",
    ),
    "cost": (
        check_cost,
        "All GPU capacity, wherever it is declared (node groups, launch templates, Karpenter pools, Auto Scaling "
        "groups, instances), has a bounded size the budget can count.",
        "Capacity the budget cannot see can run up a bill nobody agreed to.",
    ),
}


def deployability_findings(resources: Sequence[Mapping[str, Any]]) -> list[Finding]:
    """Every check's findings, sorted by check, resource and message."""
    return sorted(finding for check, _, _ in CHECKS.values() for finding in check(resources))
