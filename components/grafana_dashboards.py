"""Grafana dashboards as code: the GPU fleet, one training run, one inference service.

Each dashboard is a JSON dict built from small panel functions; queries use only the metric names
the exporters and the alert rules define, so a renamed metric breaks a test rather than a chart.
Grafana's sidecar loads every ConfigMap labelled `grafana_dashboard: "1"` in its namespace.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

from modelplane.terms.metrics import MetricKind, MetricSpec

PROMETHEUS_DATASOURCE_UID = "prometheus"
"""The uid kube-prometheus-stack gives its Prometheus datasource (`grafana.sidecar.datasources.uid`)."""
DASHBOARD_LABEL = "grafana_dashboard"
DASHBOARD_LABEL_VALUE = "1"
DATASOURCE = {"type": "prometheus", "uid": "${datasource}"}
"""Panels name the datasource through a variable, so the same JSON works against any Prometheus."""
GRID_WIDTH = 24

DCGM_METRICS: dict[str, str] = {
    "DCGM_FI_DEV_GPU_UTIL": "GPU utilisation, percent.",
    "DCGM_FI_DEV_FB_USED": "Framebuffer memory used, MiB.",
    "DCGM_FI_DEV_FB_FREE": "Framebuffer memory free, MiB.",
    "DCGM_FI_DEV_GPU_TEMP": "GPU temperature, °C.",
    "DCGM_FI_DEV_POWER_USAGE": "Power draw, W.",
    "DCGM_FI_DEV_XID_ERRORS": "Last XID error code seen; 0 for none.",
}
"""dcgm-exporter metrics (default counters) the GPU dashboard reads; each series has `Hostname` and `gpu`."""

GPU_LEGEND = "{{Hostname}} GPU {{gpu}}"
GPU_FILTER = '{Hostname=~"$node"}'


def target(expr: str, legend: str = "", ref_id: str = "A") -> dict[str, Any]:
    return {"refId": ref_id, "datasource": DATASOURCE, "expr": expr, "legendFormat": legend}


def _panel(
    kind: str, title: str, targets: Sequence[dict[str, Any]], unit: str, width: int, height: int
) -> dict[str, Any]:
    refs = [t["refId"] for t in targets]
    if len(set(refs)) != len(refs):
        raise ValueError(f"panel {title!r}: targets repeat refIds {refs}; give each its own")
    return {
        "type": kind,
        "title": title,
        "datasource": DATASOURCE,
        "targets": list(targets),
        "fieldConfig": {"defaults": {"unit": unit}, "overrides": []},
        "gridPos": {"h": height, "w": width, "x": 0, "y": 0},
    }


def timeseries(title: str, targets: Sequence[dict[str, Any]], unit: str = "short", width: int = 12) -> dict[str, Any]:
    return _panel("timeseries", title, targets, unit, width, height=8)


def stat(title: str, expr: str, unit: str = "short", width: int = 6) -> dict[str, Any]:
    panel = _panel("stat", title, [target(expr)], unit, width, height=4)
    panel["options"] = {"reduceOptions": {"calcs": ["lastNotNull"], "fields": "", "values": False}}
    return panel


def datasource_variable() -> dict[str, Any]:
    return {
        "name": "datasource",
        "label": "Data source",
        "type": "datasource",
        "query": "prometheus",
        "current": {"text": "Prometheus", "value": PROMETHEUS_DATASOURCE_UID},
        "hide": 0,
    }


def label_variable(name: str, metric: str, label: str, *, include_all: bool = False) -> dict[str, Any]:
    """A dropdown of `label`'s values on `metric`; panels filter on `$name`."""
    return {
        "name": name,
        "label": label,
        "type": "query",
        "datasource": DATASOURCE,
        "query": {"query": f"label_values({metric}, {label})", "refId": f"{name}-values"},
        "refresh": 2,
        "sort": 1,
        "multi": include_all,
        "includeAll": include_all,
        "hide": 0,
    }


def _laid_out(panels: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """Panels placed left to right, wrapping at Grafana's 24 columns, with ids 1, 2, ..."""
    placed: list[dict[str, Any]] = []
    x = y = row_height = 0
    for panel_id, panel in enumerate(panels, start=1):
        width, height = panel["gridPos"]["w"], panel["gridPos"]["h"]
        if x + width > GRID_WIDTH:
            x, y, row_height = 0, y + row_height, 0
        placed.append({**panel, "id": panel_id, "gridPos": {"h": height, "w": width, "x": x, "y": y}})
        x, row_height = x + width, max(row_height, height)
    return placed


def dashboard(
    uid: str, title: str, panels: Sequence[dict[str, Any]], variables: Sequence[dict[str, Any]] = ()
) -> dict[str, Any]:
    """A complete dashboard: read-only in the UI, since the code is its source of truth."""
    if len(uid) > 40:
        raise ValueError(f"uid={uid!r}: Grafana allows at most 40 characters")
    return {
        "uid": uid,
        "title": title,
        "tags": ["modelplane"],
        "timezone": "utc",
        "editable": False,
        "schemaVersion": 39,
        "version": 1,
        "refresh": "30s",
        "time": {"from": "now-6h", "to": "now"},
        "templating": {"list": [datasource_variable(), *variables]},
        "panels": _laid_out(panels),
    }


def gpu_fleet_dashboard() -> dict[str, Any]:
    """Every GPU's utilisation, memory, temperature, power and XID errors, by node (Hostname) and GPU."""

    def per_gpu(metric: str) -> str:
        return f"max by (Hostname, gpu) ({metric}{GPU_FILTER})"

    panels = [
        stat("GPUs reporting", f"count(DCGM_FI_DEV_GPU_UTIL{GPU_FILTER})"),
        stat("Mean utilisation", f"avg(DCGM_FI_DEV_GPU_UTIL{GPU_FILTER})", unit="percent"),
        stat("Power draw", f"sum(DCGM_FI_DEV_POWER_USAGE{GPU_FILTER})", unit="watt"),
        stat("GPUs with XID errors", f"count(DCGM_FI_DEV_XID_ERRORS{GPU_FILTER} > 0) or vector(0)"),
        timeseries("Utilisation", [target(per_gpu("DCGM_FI_DEV_GPU_UTIL"), GPU_LEGEND)], unit="percent"),
        # dcgm-exporter reports framebuffer memory in MiB; Grafana's "mbytes" is MiB.
        timeseries("Framebuffer memory used", [target(per_gpu("DCGM_FI_DEV_FB_USED"), GPU_LEGEND)], unit="mbytes"),
        timeseries("Temperature", [target(per_gpu("DCGM_FI_DEV_GPU_TEMP"), GPU_LEGEND)], unit="celsius"),
        timeseries("Power", [target(per_gpu("DCGM_FI_DEV_POWER_USAGE"), GPU_LEGEND)], unit="watt"),
        timeseries(
            "Last XID error code (0: none)",
            [target(per_gpu("DCGM_FI_DEV_XID_ERRORS"), GPU_LEGEND)],
            width=GRID_WIDTH,
        ),
    ]
    node = label_variable("node", "DCGM_FI_DEV_GPU_UTIL", "Hostname", include_all=True)
    return dashboard("modelplane-gpu-fleet", "GPU fleet", panels, [node])


def unique_dashboards(dashboards: Sequence[Mapping[str, Any]]) -> list[Mapping[str, Any]]:
    """`dashboards` unchanged when every uid is unique (Grafana keeps only one dashboard per uid)."""
    uids = [d["uid"] for d in dashboards]
    if len(set(uids)) != len(uids):
        raise ValueError(f"dashboard uids {uids} repeat; Grafana keeps only one dashboard per uid")
    return list(dashboards)


def dashboard_configmap_data(board: Mapping[str, Any]) -> dict[str, str]:
    """The ConfigMap `data` the Grafana sidecar reads: one `<uid>.json` file."""
    return {f"{board['uid']}.json": json.dumps(board, indent=2, sort_keys=True)}


def metric_series(catalogue: Mapping[str, MetricSpec]) -> frozenset[str]:
    """The series names a catalogue's metrics appear under in queries (histograms as _bucket, _sum, _count)."""
    return frozenset(
        f"{name}{suffix}"
        for name, spec in catalogue.items()
        for suffix in (("_bucket", "_sum", "_count") if spec.kind is MetricKind.HISTOGRAM else ("",))
    )
