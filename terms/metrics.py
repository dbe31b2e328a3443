"""How a workload declares the metrics it exports: the contract between its exporter and its alert rules."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


class MetricKind(StrEnum):
    COUNTER = "counter"
    GAUGE = "gauge"
    HISTOGRAM = "histogram"


@dataclass(frozen=True)
class MetricSpec:
    """One metric a workload must export for its rules to work."""

    kind: MetricKind
    help: str
    labels: tuple[str, ...]
    """Label names the workload sets itself (scrape-time labels such as `service` are not listed)."""
