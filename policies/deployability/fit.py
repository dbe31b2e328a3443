"""Every pod fits on some node the plan can have, and each workload's pods all fit at once.

A pod fits a node shape when the nodes' labels satisfy its nodeSelector and required node affinity, it tolerates
the nodes' NoSchedule and NoExecute taints, and one node holds its requests: GPUs and EFA interfaces as the
instance type has them, CPU and memory less the system reserve (`SystemReserve`). A workload of GPU (or EFA) pods
then needs room for all its replicas (a TrainJob: numNodes pods) within the most nodes its pools may have. A
DaemonSet needs no node at all, but must fit every node it selects and tolerates.

Only what the plan proves is reported: a shape whose labels, taints, instance type or size are not known may fit.
A plan that declares no nodes at all targets a cluster made elsewhere and is not judged.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

from modelplane.policies.deployability.cluster_model import (
    FARGATE,
    NODE_POOL,
    ClusterModel,
    NodeShape,
    PodTemplate,
    cluster_model,
    scheduling_reasons,
)
from modelplane.policies.deployability.findings import Finding
from modelplane.policies.deployability.instance_figures import SYSTEM_RESERVE, SystemReserve
from modelplane.policies.deployability.placement import Refusal, Verdict, all_of
from modelplane.policies.deployability.quantities import format_quantity
from modelplane.terms.scheduling import EFA_RESOURCE, GPU_RESOURCE

CHECK = "fit"
TOLERANCE = 1e-6
"""Relative slack when comparing a request with what a node leaves (requests are often written to the reserve)."""


def resource_reasons(
    pod: PodTemplate, shape: NodeShape, reserve: SystemReserve = SYSTEM_RESERVE
) -> tuple[Verdict, list[Refusal]]:
    """Whether one node of `shape` holds one pod's requests, and what it lacks where it does not."""
    if shape.offer.kind == FARGATE:
        extended = pod.extended_resources()
        if extended:
            return False, [Refusal("hardware", f"Fargate runs no pod that asks for {', '.join(sorted(extended))}")]
        return None, []
    if shape.offer.kind == NODE_POOL and shape.max_nodes == 0:
        limits = ", ".join(f"{r}={format_quantity(r, v)}" for r, v in sorted((shape.offer.limits or {}).items()))
        return False, [
            Refusal("limits", f"its limits ({limits}) leave no room for a single {shape.instance_type} node")
        ]
    allocatable = shape.allocatable(reserve)
    verdicts: list[Verdict] = []
    refusals: list[Refusal] = []
    for resource, amount in sorted(pod.requests.items()):
        if amount <= 0:
            continue
        available = None if allocatable is None else allocatable.get(resource)
        if available is None:
            verdicts.append(None)
            continue
        fits = amount <= available * (1 + TOLERANCE) + TOLERANCE
        verdicts.append(fits)
        if not fits:
            refusals.append(
                Refusal("resources", f"{_asks(resource, amount)}; {_leaves(shape, resource, available, reserve)}")
            )
    return all_of(verdicts), refusals


def _asks(resource: str, amount: float) -> str:
    return f"it asks for {format_quantity(resource, amount)} {resource}"


def _leaves(shape: NodeShape, resource: str, available: float, reserve: SystemReserve) -> str:
    node = f"one {shape.instance_type} node"
    if resource == "cpu":
        return f"{node} leaves {available:g} after the {reserve.vcpus:g}-vCPU system reserve"
    if resource == "memory":
        left = format_quantity(resource, available)
        return f"{node} leaves {left} after the {reserve.memory_fraction:.0%} system reserve"
    return f"{node} has {available:g}"


def pods_per_node(pod: PodTemplate, shape: NodeShape, reserve: SystemReserve = SYSTEM_RESERVE) -> int | None:
    """How many of the pods one node of `shape` holds, by the requests it can count; None when none bounds it."""
    allocatable = shape.allocatable(reserve)
    if allocatable is None:
        return None
    counts = [
        math.floor(allocatable[r] / amount * (1 + TOLERANCE) + TOLERANCE)
        for r, amount in pod.requests.items()
        if amount > 0 and r in allocatable
    ]
    return min(counts) if counts else None


def _placement(pod: PodTemplate, shape: NodeShape, reserve: SystemReserve) -> tuple[Verdict, list[Refusal]]:
    scheduled, refusals = scheduling_reasons(pod, shape)
    fits, lacking = resource_reasons(pod, shape, reserve)
    return all_of([scheduled, fits]), [*refusals, *lacking]


def _fix(pod: PodTemplate, closest: NodeShape, refusals: Sequence[Refusal]) -> str:
    kinds = {r.kind for r in refusals}
    offer = closest.offer.describe()
    if kinds == {"taints"}:
        taints = ", ".join(r.subject for r in refusals)
        return f"add tolerations for {taints} to {pod.describe()}'s pod spec, or target nodes without that taint"
    if kinds == {"labels"}:
        return f"point {pod.describe()}'s nodeSelector/affinity at labels a node pool carries, or add them to {offer}"
    if kinds <= {"resources", "hardware"}:
        return (
            f"lower {pod.describe()}'s requests to what one {closest.instance_type} node leaves, "
            "or give it a node pool of a larger instance type"
        )
    if kinds == {"limits"}:
        return f"raise {offer}'s limits to hold at least one {closest.instance_type} node"
    if kinds == {"namespace"}:
        return f"run {pod.describe()} in a namespace of {offer}, or give it a node pool"
    return f"declare a node pool whose labels, taints and instance type suit {pod.describe()}"


def _never_fits(pod: PodTemplate, rows: list[tuple[NodeShape, list[Refusal]]]) -> Finding:
    closest, closest_refusals = min(rows, key=lambda row: len({r.kind for r in row[1]}))
    reasons = "; ".join(f"{shape.describe()}: {', '.join(r.text for r in refusals)}" for shape, refusals in rows)
    asks = ", ".join(f"{format_quantity(r, v)} {r}" for r, v in sorted(pod.requests.items()) if v > 0)
    return Finding(
        CHECK,
        pod.urn,
        needs=f"a node for each pod of {pod.describe()} ({asks or 'no requests'})",
        missing=f"no node the plan can have takes it: {reasons}",
        fix=_fix(pod, closest, closest_refusals),
    )


def _too_few(pod: PodTemplate, fitting: list[tuple[NodeShape, int, int]]) -> Finding | None:
    """A finding when the pools a GPU workload fits hold fewer of its pods than must run at once."""
    by_offer: dict[str, tuple[NodeShape, int, int]] = {}
    for shape, nodes, per_node in fitting:
        best = by_offer.get(shape.offer.urn)
        if best is None or nodes * per_node > best[1] * best[2]:
            by_offer[shape.offer.urn] = (shape, nodes, per_node)
    room = sum(nodes * per_node for _, nodes, per_node in by_offer.values())
    if pod.replicas is None or pod.replicas <= room:
        return None
    devices = {r: v for r, v in pod.extended_resources().items() if r in (GPU_RESOURCE, EFA_RESOURCE)}
    per_pod = ", ".join(f"{v:g} {r}" for r, v in sorted(devices.items()))
    pools = "; ".join(
        f"{shape.describe()} holds at most {nodes} nodes of {per_node} such pods each"
        for shape, nodes, per_node in by_offer.values()
    )
    if len(by_offer) == 1:
        shape, _, per_node = next(iter(by_offer.values()))
        nodes_needed = math.ceil(pod.replicas / max(per_node, 1))
        if shape.offer.kind == NODE_POOL:
            gpus = nodes_needed * (shape.figures.gpus if shape.figures else 0)
            grow = f"raise the limits of {shape.offer.describe()} to hold {nodes_needed} {shape.instance_type} nodes"
            grow += f" ({GPU_RESOURCE} >= {gpus})" if gpus else ""
        else:
            grow = f"raise the max size of {shape.offer.describe()} to at least {nodes_needed}"
    else:
        grow = "raise the sizes of the node pools it fits"
    return Finding(
        CHECK,
        pod.urn,
        needs=f"{pod.replicas} pods of {pod.describe()} at once, each with {per_pod}",
        missing=f"the node pools it fits hold {room}: {pools}",
        fix=f"{grow}, or lower {pod.describe()}'s replicas to {room}",
    )


def _daemon_set_findings(pod: PodTemplate, model: ClusterModel, reserve: SystemReserve) -> list[Finding]:
    """A DaemonSet puts a pod on every node it selects and tolerates (none at all is no failure); a node that
    cannot hold the pod leaves it Pending there."""
    rows = []
    for shape in model.candidates(pod):
        if scheduling_reasons(pod, shape)[0] is not True:
            continue
        fits, lacking = resource_reasons(pod, shape, reserve)
        if fits is False:
            rows.append((shape, lacking))
    if not rows:
        return []
    asks = ", ".join(f"{format_quantity(r, v)} {r}" for r, v in sorted(pod.requests.items()) if v > 0)
    where = "; ".join(f"{shape.describe()}: {', '.join(r.text for r in refusals)}" for shape, refusals in rows)
    return [
        Finding(
            CHECK,
            pod.urn,
            needs=f"room for a pod of {pod.describe()} ({asks}) on every node it selects",
            missing=f"its pod stays Pending on {where}",
            fix=f"lower {pod.describe()}'s requests to what one {rows[0][0].instance_type} node leaves, "
            "or keep it off those nodes with a nodeSelector",
        )
    ]


def pod_fit_findings(pod: PodTemplate, model: ClusterModel, reserve: SystemReserve = SYSTEM_RESERVE) -> list[Finding]:
    """Findings for one workload: its pod fits no node shape, or its GPU pods do not all fit at once."""
    if not model.shapes:
        return []
    if pod.per_node:
        return _daemon_set_findings(pod, model, reserve)
    fitting: list[tuple[NodeShape, int, int]] = []
    possible = unbounded = False
    for shape in model.candidates(pod):
        verdict, _ = _placement(pod, shape, reserve)
        if verdict is False:
            continue
        possible = True
        per_node = pods_per_node(pod, shape, reserve)
        if verdict is None or shape.max_nodes is None or per_node is None:
            unbounded = True
        else:
            fitting.append((shape, shape.max_nodes, per_node))
    if not possible:
        return [_never_fits(pod, [(shape, _placement(pod, shape, reserve)[1]) for shape in model.shapes])]
    if unbounded or not any(r in pod.requests for r in (GPU_RESOURCE, EFA_RESOURCE)):
        return []
    finding = _too_few(pod, fitting)
    return [finding] if finding else []


def check_fit(resources: Sequence[Mapping[str, Any]], reserve: SystemReserve = SYSTEM_RESERVE) -> list[Finding]:
    """Every workload's pod fits on a node the plan can have, and its GPU pods all fit at once."""
    model = cluster_model(resources)
    return [finding for pod in model.pods for finding in pod_fit_findings(pod, model, reserve)]
