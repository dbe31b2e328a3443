"""The rule sets under test, each built once with fixed inputs."""

from __future__ import annotations

from modelplane.components.alerting.custom_rules import custom_rule_group
from modelplane.components.alerting.gpu_rules import gpu_rules
from modelplane.components.alerting.platform_rules import platform_rules
from modelplane.components.alerting.rules import AlertRule, RuleGroup
from modelplane.workloads.serving.alerts import InferenceObjectives, inference_rules
from modelplane.workloads.training.alerts import TrainingAlertThresholds, training_rules

CUSTOM_ALERT = {
    "alert": "FeatureStoreLagHigh",
    "expr": "feature_store_lag_seconds > 300",
    "for": "10m",
    "severity": "warning",
    "summary": "Feature store lag is {{ $value }}s",
    "labels": {"team": "data"},
}

RULE_SETS: dict[str, tuple[RuleGroup, ...]] = {
    "gpu": (gpu_rules(),),
    "platform": (platform_rules({"a100": 4, "h100": 2}),),
    "training": (training_rules("llama-ft", TrainingAlertThresholds()),),
    "inference": inference_rules("chat", InferenceObjectives(p99_latency_seconds=0.5, max_queue_size=64)),
    "custom": (custom_rule_group([CUSTOM_ALERT]),),
}


def alert_named(rule_set: str, alert: str) -> AlertRule:
    """The first rule raising `alert` (pool alerts share one name across pools)."""
    return next(rule for group in RULE_SETS[rule_set] for rule in group.alerts if rule.alert == alert)
