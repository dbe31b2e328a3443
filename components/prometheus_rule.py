"""Typed helpers for the Prometheus operator's CRDs: PrometheusRule, ServiceMonitor and PodMonitor.

Spec builders are plain functions (tested without Pulumi); the Pulumi wrappers only turn their
result into a `CustomResource`. Workloads declare what to scrape through these, never raw dicts.
The operator's CRDs come with kube-prometheus-stack: pass `depends_on` that release in `opts`.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import pulumi
import pulumi_kubernetes as k8s

from modelplane.components.alerting.rules import DURATION, RuleGroup, prometheus_rule_manifest
from modelplane.terms.names import check_kubernetes_name

API_VERSION = "monitoring.coreos.com/v1"
MODELPLANE_LABELS: Mapping[str, str] = {"app.kubernetes.io/part-of": "modelplane"}
"""Labels on every monitoring object modelplane creates; the Prometheus selects all objects, so
these are for people and `kubectl -l`, not for the operator."""
_PORT_NAME = re.compile(r"^[a-z0-9]([-a-z0-9]{0,13}[a-z0-9])?$")


@dataclass(frozen=True)
class ScrapeEndpoint:
    """One port Prometheus scrapes on each selected Service or Pod."""

    port: str
    """The container or Service port's name (IANA_SVC_NAME), e.g. "metrics"; names survive port renumbering."""
    path: str = "/metrics"
    interval: str = "30s"
    """How often to scrape; also bounds how fresh alert rules can be."""

    def __post_init__(self) -> None:
        if not _PORT_NAME.match(self.port):
            raise ValueError(
                f"port={self.port!r}: must be a port name (lowercase, digits, '-', at most 15), e.g. 'metrics'"
            )
        if not self.path.startswith("/"):
            raise ValueError(f"path={self.path!r}: must be an absolute HTTP path such as '/metrics'")
        if not DURATION.match(self.interval):
            raise ValueError(f"interval={self.interval!r}: must be a Prometheus duration such as '30s'")

    def as_spec(self) -> dict[str, str]:
        return {"port": self.port, "path": self.path, "interval": self.interval}


def _selector(what: str, match_labels: Mapping[str, str]) -> dict[str, Any]:
    # An empty selector selects every object in the namespace: almost never what a workload means.
    if not match_labels:
        raise ValueError(
            f"{what}: match_labels is empty; give the labels of the objects to scrape, e.g. {{'app': 'x'}}"
        )
    return {"matchLabels": dict(match_labels)}


def _namespace_selector(namespaces: Sequence[str]) -> dict[str, Any]:
    return {"matchNames": [check_kubernetes_name("namespaces[]", n) for n in namespaces]}


def _endpoints(what: str, endpoints: Sequence[ScrapeEndpoint]) -> list[dict[str, str]]:
    if not endpoints:
        raise ValueError(f"{what}: endpoints is empty; give at least one ScrapeEndpoint")
    return [endpoint.as_spec() for endpoint in endpoints]


def service_monitor_spec(
    match_labels: Mapping[str, str],
    endpoints: Sequence[ScrapeEndpoint],
    *,
    namespaces: Sequence[str] = (),
    target_labels: Sequence[str] = (),
    pod_target_labels: Sequence[str] = (),
) -> dict[str, Any]:
    """Scrape the Services labelled `match_labels`; `namespaces` empty means the monitor's own namespace.

    Each series gets the Service's name as `service`; `target_labels` copies more Service labels onto it,
    `pod_target_labels` labels of the scraped Pod.
    """
    spec: dict[str, Any] = {
        "selector": _selector("ServiceMonitor", match_labels),
        "endpoints": _endpoints("ServiceMonitor", endpoints),
    }
    if namespaces:
        spec["namespaceSelector"] = _namespace_selector(namespaces)
    if target_labels:
        spec["targetLabels"] = list(target_labels)
    if pod_target_labels:
        spec["podTargetLabels"] = list(pod_target_labels)
    return spec


def pod_monitor_spec(
    match_labels: Mapping[str, str],
    endpoints: Sequence[ScrapeEndpoint],
    *,
    namespaces: Sequence[str] = (),
    pod_target_labels: Sequence[str] = (),
) -> dict[str, Any]:
    """Scrape the Pods labelled `match_labels` (pods without a Service, such as training workers)."""
    spec: dict[str, Any] = {
        "selector": _selector("PodMonitor", match_labels),
        "podMetricsEndpoints": _endpoints("PodMonitor", endpoints),
    }
    if namespaces:
        spec["namespaceSelector"] = _namespace_selector(namespaces)
    if pod_target_labels:
        spec["podTargetLabels"] = list(pod_target_labels)
    return spec


def _metadata(name: str, namespace: str, labels: Mapping[str, str] | None) -> k8s.meta.v1.ObjectMetaArgs:
    return k8s.meta.v1.ObjectMetaArgs(
        name=check_kubernetes_name("name", name),
        namespace=check_kubernetes_name("namespace", namespace),
        labels={**MODELPLANE_LABELS, **(labels or {})},
    )


def monitor(
    resource_name: str,
    *,
    kind: str,
    name: str,
    namespace: str,
    spec: dict[str, Any],
    labels: Mapping[str, str] | None = None,
    opts: pulumi.ResourceOptions | None = None,
) -> k8s.apiextensions.CustomResource:
    """A ServiceMonitor or PodMonitor with a spec built by `service_monitor_spec` or `pod_monitor_spec`."""
    return k8s.apiextensions.CustomResource(
        resource_name,
        api_version=API_VERSION,
        kind=kind,
        metadata=_metadata(name, namespace, labels),
        spec=spec,
        opts=opts,
    )


def prometheus_rule(
    resource_name: str,
    *,
    name: str,
    namespace: str,
    groups: Sequence[RuleGroup],
    labels: Mapping[str, str] | None = None,
    opts: pulumi.ResourceOptions | None = None,
) -> k8s.apiextensions.CustomResource:
    """A PrometheusRule holding `groups`, rendered by the alerting model so no rule is restated."""
    manifest = prometheus_rule_manifest(name, namespace, groups, {**MODELPLANE_LABELS, **(labels or {})})
    return k8s.apiextensions.CustomResource(
        resource_name,
        api_version=manifest["apiVersion"],
        kind=manifest["kind"],
        metadata=manifest["metadata"],
        spec=manifest["spec"],
        opts=opts,
    )


def pod_monitor(
    resource_name: str,
    *,
    name: str,
    namespace: str,
    match_labels: Mapping[str, str],
    endpoints: Sequence[ScrapeEndpoint],
    namespaces: Sequence[str] = (),
    pod_target_labels: Sequence[str] = (),
    labels: Mapping[str, str] | None = None,
    opts: pulumi.ResourceOptions | None = None,
) -> k8s.apiextensions.CustomResource:
    """A PodMonitor scraping the Pods `pod_monitor_spec` selects."""
    spec = pod_monitor_spec(match_labels, endpoints, namespaces=namespaces, pod_target_labels=pod_target_labels)
    return monitor(
        resource_name, kind="PodMonitor", name=name, namespace=namespace, spec=spec, labels=labels, opts=opts
    )
