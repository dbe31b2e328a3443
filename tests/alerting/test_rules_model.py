from __future__ import annotations

import re
from dataclasses import replace
from typing import Any

import pytest
import yaml
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.metrics import MetricWrapperBase

from modelplane.components.alerting.platform_rules import platform_rules
from modelplane.components.alerting.rules import (
    AlertRule,
    RecordingRule,
    RuleGroup,
    Severity,
    prometheus_rule_manifest,
    render_rules_file,
    rules_yaml,
)
from modelplane.terms.metrics import MetricKind, MetricSpec
from modelplane.workloads.serving.alerts import InferenceObjectives
from modelplane.workloads.serving.server.metric_catalogue import INFERENCE_METRICS
from modelplane.workloads.training.alerts import TrainingAlertThresholds
from modelplane.workloads.training.trainer.metric_catalogue import TRAINING_METRICS
from tests.alerting.rule_sets import RULE_SETS

ALL_GROUPS = [group for groups in RULE_SETS.values() for group in groups]
VALID = AlertRule(
    alert="GpuTemperatureHigh",
    expr="DCGM_FI_DEV_GPU_TEMP > 85",
    for_="5m",
    severity=Severity.WARNING,
    summary="GPU hot",
)


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"alert": "gpu_temperature_high"}, "CamelCase"),
        ({"alert": "Gpu-Hot"}, "CamelCase"),
        ({"expr": "  "}, "expr is empty"),
        ({"for_": "5 minutes"}, "Prometheus duration"),
        ({"for_": ""}, "Prometheus duration"),
        ({"for_": "5m1h"}, "Prometheus duration"),
        ({"summary": ""}, "summary is empty"),
        ({"labels": {"severity": "critical"}}, "set by the rule itself"),
        ({"labels": {"team-name": "ml"}}, "must match"),
    ],
)
def test_alert_rule_rejects_bad_fields(changes: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        replace(VALID, **changes)


@pytest.mark.parametrize("duration", ["0s", "30s", "5m", "1h30m", "1d", "2w", "500ms"])
def test_alert_rule_accepts_prometheus_durations(duration: str) -> None:
    assert replace(VALID, for_=duration).for_ == duration


def test_recording_rule_and_group_validate() -> None:
    with pytest.raises(ValueError, match="record='bad name'"):
        RecordingRule(record="bad name", expr="up")
    with pytest.raises(ValueError, match="has no rules"):
        RuleGroup(name="empty", rules=())
    with pytest.raises(ValueError, match="interval='fast'"):
        RuleGroup(name="g", rules=(VALID,), interval="fast")


def test_thresholds_and_inputs_name_the_bad_value() -> None:
    with pytest.raises(ValueError, match=r"throughput_drop_fraction=1\.5"):
        TrainingAlertThresholds(throughput_drop_fraction=1.5)
    with pytest.raises(ValueError, match=r"availability=99\.9"):
        InferenceObjectives(p99_latency_seconds=0.5, max_queue_size=64, availability=99.9)
    with pytest.raises(ValueError, match=r"pool_max_sizes\['h100'\]=0"):
        platform_rules({"h100": 0})


def test_rules_file_renders_alert_fields() -> None:
    rendered = render_rules_file([RuleGroup(name="g", rules=(replace(VALID, labels={"team": "ml"}),), interval="30s")])

    assert rendered == {
        "groups": [
            {
                "name": "g",
                "interval": "30s",
                "rules": [
                    {
                        "alert": "GpuTemperatureHigh",
                        "expr": "DCGM_FI_DEV_GPU_TEMP > 85",
                        "for": "5m",
                        "labels": {"severity": "warning", "team": "ml"},
                        "annotations": {"summary": "GPU hot"},
                    }
                ],
            }
        ]
    }


def test_repeated_group_names_are_refused() -> None:
    group = RuleGroup(name="g", rules=(VALID,))
    with pytest.raises(ValueError, match=r"\['g'\] are repeated"):
        render_rules_file([group, group])


def test_both_renderings_hold_the_same_rules() -> None:
    manifest = prometheus_rule_manifest(
        "modelplane-alerts", "monitoring", ALL_GROUPS, {"release": "kube-prometheus-stack"}
    )

    assert manifest["apiVersion"] == "monitoring.coreos.com/v1"
    assert manifest["kind"] == "PrometheusRule"
    assert manifest["metadata"] == {
        "name": "modelplane-alerts",
        "namespace": "monitoring",
        "labels": {"release": "kube-prometheus-stack"},
    }
    assert manifest["spec"] == render_rules_file(ALL_GROUPS)
    assert yaml.safe_load(rules_yaml(ALL_GROUPS)) == manifest["spec"]


def test_manifest_needs_selector_labels() -> None:
    with pytest.raises(ValueError, match="ruleSelector"):
        prometheus_rule_manifest("modelplane-alerts", "monitoring", ALL_GROUPS, {})


def test_every_builtin_alert_has_description_and_runbook() -> None:
    builtin = [group for name, groups in RULE_SETS.items() if name != "custom" for group in groups]
    for alert in (rule for group in builtin for rule in group.alerts):
        assert alert.description, alert.alert
        assert alert.runbook_url.endswith(f"/{alert.alert}.md"), alert.alert


def _series_names(spec_name: str, spec: MetricSpec) -> set[str]:
    if spec.kind is MetricKind.HISTOGRAM:
        return {f"{spec_name}_bucket", f"{spec_name}_sum", f"{spec_name}_count"}
    return {spec_name}


@pytest.mark.parametrize(("metrics", "rule_set"), [(TRAINING_METRICS, "training"), (INFERENCE_METRICS, "inference")])
def test_rules_read_only_the_metrics_the_workload_exports(metrics: dict[str, MetricSpec], rule_set: str) -> None:
    exported = {series for name, spec in metrics.items() for series in _series_names(name, spec)}
    # Recorded series (`level:metric:operation`) are the rules' own, not the workload's.
    used = set(re.findall(r"(?<![\w:])modelplane_[a-z_]+", rules_yaml(RULE_SETS[rule_set])))

    assert used <= exported
    for name, spec in metrics.items():
        assert _series_names(name, spec) & used, f"{name} is exported but no rule reads it"


@pytest.mark.parametrize("metrics", [TRAINING_METRICS, INFERENCE_METRICS])
def test_metric_specs_build_with_prometheus_client(metrics: dict[str, MetricSpec]) -> None:
    registry = CollectorRegistry()
    kinds: dict[MetricKind, type[MetricWrapperBase]] = {
        MetricKind.COUNTER: Counter,
        MetricKind.GAUGE: Gauge,
        MetricKind.HISTOGRAM: Histogram,
    }
    for name, spec in metrics.items():
        kinds[spec.kind](name, spec.help, spec.labels, registry=registry)

    exposed = {metric.name for metric in registry.collect()}
    # prometheus_client names a counter family without its `_total` suffix.
    assert exposed == {name.removesuffix("_total") for name in metrics}
