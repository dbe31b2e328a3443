"""Alerts on the cluster the GPU workloads run on: nodes, node pool capacity, volumes.

The pool alert counts nodes by their `modelplane.io/pool` label, which kube-state-metrics
exposes only when allowed: run it with `--metric-labels-allowlist=nodes=[modelplane.io/pool]`.
"""

from __future__ import annotations

from collections.abc import Mapping

from modelplane.components.alerting.rules import AlertRule, RuleGroup, Severity, promql_number, runbook_url
from modelplane.terms.names import check_kubernetes_name
from modelplane.terms.scheduling import POOL_LABEL

# kube-state-metrics turns a node label into `label_` + the name with every non-alphanumeric as '_'.
POOL_METRIC_LABEL = "label_" + "".join(c if c.isalnum() else "_" for c in POOL_LABEL)


def platform_rules(
    pool_max_sizes: Mapping[str, int],
    *,
    node_not_ready_minutes: int = 10,
    pool_at_max_minutes: int = 15,
    volume_free_fraction: float = 0.1,
) -> RuleGroup:
    """Node readiness, one at-maximum alert per GPU node pool (`pool_max_sizes`: pool name -> max size), volumes."""
    if not 0 < volume_free_fraction < 1:
        raise ValueError(f"volume_free_fraction={volume_free_fraction}: must be between 0 and 1, e.g. 0.1")
    for minutes_name, minutes in (
        ("node_not_ready_minutes", node_not_ready_minutes),
        ("pool_at_max_minutes", pool_at_max_minutes),
    ):
        if minutes < 1:
            raise ValueError(f"{minutes_name}={minutes}: must be at least 1")
    rules: list[AlertRule] = [
        AlertRule(
            alert="KubeNodeNotReady",
            expr='kube_node_status_condition{condition="Ready",status="true"} == 0',
            for_=f"{node_not_ready_minutes}m",
            severity=Severity.WARNING,
            summary="Node {{ $labels.node }} is not Ready",
            description=(
                f"The node has not been Ready for {node_not_ready_minutes} minutes; its pods are being evicted. "
                "On GPU nodes check the kubelet and the NVIDIA device plugin; if the instance is unhealthy, "
                "terminate it and let the node group replace it."
            ),
            runbook_url=runbook_url("KubeNodeNotReady"),
        ),
        AlertRule(
            alert="PersistentVolumeNearlyFull",
            expr=(
                "kubelet_volume_stats_available_bytes / kubelet_volume_stats_capacity_bytes"
                f" < {promql_number(volume_free_fraction)}"
            ),
            for_="5m",
            severity=Severity.WARNING,
            summary=(
                "Volume {{ $labels.namespace }}/{{ $labels.persistentvolumeclaim }} has "
                "{{ $value | humanizePercentage }} free"
            ),
            description=(
                "Checkpoints and caches fail to write when the volume fills, and a half-written checkpoint "
                "loses the run's progress. Delete old checkpoints or grow the claim."
            ),
            runbook_url=runbook_url("PersistentVolumeNearlyFull"),
        ),
    ]
    for pool, max_size in sorted(pool_max_sizes.items()):
        check_kubernetes_name("pool_max_sizes key", pool)
        if max_size < 1:
            raise ValueError(f"pool_max_sizes[{pool!r}]={max_size}: must be at least 1")
        rules.append(
            AlertRule(
                alert="GpuNodePoolAtMaxSize",
                expr=f'count(kube_node_labels{{{POOL_METRIC_LABEL}="{pool}"}}) >= {max_size}',
                for_=f"{pool_at_max_minutes}m",
                severity=Severity.WARNING,
                summary=f"GPU node pool {pool} is at its maximum of {max_size} nodes",
                description=(
                    "Karpenter (or, for a reserved pool, its fixed size) cannot add nodes, so new GPU pods stay "
                    "Pending. Raise the pool's max_size (Karpenter's limit) and the account's GPU quota, or move "
                    "work to another pool."
                ),
                runbook_url=runbook_url("GpuNodePoolAtMaxSize"),
                labels={"pool": pool},
            )
        )
    return RuleGroup(name="modelplane-platform", rules=tuple(rules))
