"""Alerts on GPU health and waste, from NVIDIA dcgm-exporter's metrics."""

from __future__ import annotations

from modelplane.components.alerting.rules import AlertRule, RuleGroup, Severity, promql_number, runbook_url

GPU_CAPACITY = 'kube_node_status_capacity{resource="nvidia_com_gpu"}'
"""kube-state-metrics' GPU count per node, used to tell 'no GPU nodes' from 'exporter missing'."""


def gpu_rules(
    *,
    dcgm_job: str = "dcgm-exporter",
    max_temperature_celsius: float = 85,
    idle_utilization_percent: float = 5,
    idle_minutes: int = 60,
) -> RuleGroup:
    """GPU health (XID, memory errors, heat), exporter presence, and GPUs held by pods but left idle."""
    if not 0 < idle_utilization_percent < 100:
        raise ValueError(f"idle_utilization_percent={idle_utilization_percent}: must be between 0 and 100")
    if idle_minutes < 1:
        raise ValueError(f"idle_minutes={idle_minutes}: must be at least 1")
    gpu = "GPU {{ $labels.gpu }} on {{ $labels.Hostname }}"
    rules = (
        AlertRule(
            alert="GpuXidError",
            # The gauge holds the last XID code seen; 0 means none since the exporter started.
            expr="DCGM_FI_DEV_XID_ERRORS > 0",
            for_="0s",
            severity=Severity.WARNING,
            summary=f"{gpu} reported XID error {{{{ $value }}}}",
            description=(
                "The NVIDIA driver reported an XID error. Look the code up in NVIDIA's XID catalog: "
                "13/31/43 are usually the application's fault; 48, 63, 64, 74, 79, 94 and 95 mean the GPU "
                "or its link is failing and the node should be drained."
            ),
            runbook_url=runbook_url("GpuXidError"),
        ),
        AlertRule(
            alert="GpuTemperatureHigh",
            expr=f"DCGM_FI_DEV_GPU_TEMP > {promql_number(max_temperature_celsius)}",
            for_="5m",
            severity=Severity.WARNING,
            summary=f"{gpu} is at {{{{ $value }}}}°C",
            description=(
                f"The GPU stayed above {promql_number(max_temperature_celsius)}°C for 5 minutes and will "
                "throttle its clocks. Check the node's cooling and fans; several hot GPUs on one node "
                "point at the chassis."
            ),
            runbook_url=runbook_url("GpuTemperatureHigh"),
        ),
        AlertRule(
            alert="GpuDoubleBitEccErrors",
            expr="DCGM_FI_DEV_ECC_DBE_VOL_TOTAL > 0",
            for_="0s",
            severity=Severity.CRITICAL,
            summary=f"{gpu} has {{{{ $value }}}} uncorrectable ECC errors since the driver loaded",
            description=(
                "Double-bit ECC errors corrupt what the GPU computes; jobs on it may crash or produce wrong "
                "results. Cordon and drain the node, then reset the GPU or replace the node."
            ),
            runbook_url=runbook_url("GpuDoubleBitEccErrors"),
        ),
        AlertRule(
            alert="GpuRowRemapPending",
            # The count is kept for the GPU's life, so only a rise is news.
            expr="increase(DCGM_FI_DEV_UNCORRECTABLE_REMAPPED_ROWS[1h]) > 0",
            for_="0s",
            severity=Severity.WARNING,
            summary=f"{gpu} remapped memory rows after uncorrectable errors",
            description=(
                "The GPU retired faulty memory rows; the remap takes effect only after a GPU reset. "
                "Drain the node and reboot it at the next quiet moment."
            ),
            runbook_url=runbook_url("GpuRowRemapPending"),
        ),
        AlertRule(
            alert="GpuRowRemapFailure",
            expr="DCGM_FI_DEV_ROW_REMAP_FAILURE > 0",
            for_="0s",
            severity=Severity.CRITICAL,
            summary=f"{gpu} could not remap faulty memory rows",
            description=(
                "The GPU has no spare memory rows left and its memory can no longer be trusted. "
                "Cordon and drain the node now and replace the instance."
            ),
            runbook_url=runbook_url("GpuRowRemapFailure"),
        ),
        AlertRule(
            alert="GpuAllocatedButIdle",
            # dcgm-exporter sets `pod` only on GPUs that a pod holds.
            expr=(f'avg_over_time(DCGM_FI_DEV_GPU_UTIL{{pod!=""}}[15m]) < {promql_number(idle_utilization_percent)}'),
            for_=f"{idle_minutes}m",
            severity=Severity.WARNING,
            summary=(
                f"Pod {{{{ $labels.namespace }}}}/{{{{ $labels.pod }}}} holds {gpu} at {{{{ $value }}}}% utilization"
            ),
            description=(
                f"The GPU has been allocated but under {promql_number(idle_utilization_percent)}% busy for "
                f"{idle_minutes} minutes: it is billed and does nothing. Ask the owner to release it, or "
                "check whether the job hangs (data loading, a deadlock in collectives)."
            ),
            runbook_url=runbook_url("GpuAllocatedButIdle"),
        ),
        AlertRule(
            alert="DcgmExporterDown",
            expr=f'up{{job="{dcgm_job}"}} == 0',
            for_="5m",
            severity=Severity.WARNING,
            summary="dcgm-exporter on {{ $labels.instance }} cannot be scraped",
            description=(
                "GPU health on this node is not being watched: XID and memory errors go unnoticed. "
                "Check the dcgm-exporter pod on the node (crash loops often follow a driver upgrade)."
            ),
            runbook_url=runbook_url("DcgmExporterDown"),
        ),
        AlertRule(
            alert="DcgmExporterAbsent",
            # GPU pools scale to zero; an absent exporter matters only while GPU nodes exist.
            expr=f'absent(up{{job="{dcgm_job}"}}) and on() (sum({GPU_CAPACITY}) > 0)',
            for_="15m",
            severity=Severity.WARNING,
            summary=f"No {dcgm_job} target while the cluster has GPU nodes",
            description=(
                "Prometheus has no dcgm-exporter target at all, so no GPU is watched. Check that the "
                "dcgm-exporter DaemonSet tolerates the GPU nodes' taints and that its ServiceMonitor is selected."
            ),
            runbook_url=runbook_url("DcgmExporterAbsent"),
        ),
    )
    return RuleGroup(name="modelplane-gpu", rules=rules)
