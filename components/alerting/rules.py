"""Typed Prometheus rules and their two renderings: a plain rules file and a PrometheusRule.

Rule sets build `RuleGroup`s once; `render_rules_file` (for promtool and plain Prometheus)
and `prometheus_rule_manifest` (for the Prometheus operator) render the same objects,
so a rule is never written twice.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from enum import StrEnum
from typing import Any

import yaml

from modelplane.terms.names import check_kubernetes_name

DEFAULT_RUNBOOK_BASE_URL = "https://github.com/modelplane/modelplane/blob/main/docs/runbooks"
"""The runbooks in this repository (`docs/runbooks/<Alert>.md`): one page per shipped alert, named after it.
An environment publishes them elsewhere with `monitoring.runbook_base_url`."""

ALERT_NAME = re.compile(r"^[A-Z][A-Za-z0-9]*$")
RECORD_NAME = re.compile(r"^[a-zA-Z_:][a-zA-Z0-9_:]*$")
LABEL_NAME = re.compile(r"^[a-zA-Z_][a-zA-Z0-9_]*$")
# Prometheus durations: units largest first, each at most once, e.g. 1h30m; "0s" means "at once".
DURATION = re.compile(r"^(?!$)(\d+y)?(\d+w)?(\d+d)?(\d+h)?(\d+m)?(\d+s)?(\d+ms)?$")
RESERVED_LABELS = frozenset({"alertname", "severity"})


class Severity(StrEnum):
    CRITICAL = "critical"
    """Pages someone now."""
    WARNING = "warning"
    """Opens a ticket for working hours."""
    INFO = "info"
    """Shown on dashboards; notifies nobody."""


@dataclass(frozen=True)
class AlertRule:
    """One Prometheus alerting rule."""

    alert: str
    """CamelCase alert name, e.g. `GpuTemperatureHigh`."""
    expr: str
    """PromQL; every series it returns is one firing alert."""
    for_: str
    """How long the condition must hold before the alert fires, e.g. `5m`; `0s` fires at once."""
    severity: Severity
    summary: str
    """One line for the notification title; may use `{{ $labels.x }}` and `{{ $value }}`."""
    description: str = ""
    """What it means and what to do first."""
    runbook_url: str = ""
    labels: Mapping[str, str] = field(default_factory=dict)
    """Labels added to the alert besides `severity` (routing, ownership)."""

    def __post_init__(self) -> None:
        if not ALERT_NAME.match(self.alert):
            raise ValueError(f"alert={self.alert!r}: must be a CamelCase identifier such as 'GpuTemperatureHigh'")
        if not self.expr.strip():
            raise ValueError(f"alert {self.alert}: expr is empty; give the PromQL condition")
        if not DURATION.match(self.for_):
            raise ValueError(f"alert {self.alert}: for_={self.for_!r}: must be a Prometheus duration such as '5m'")
        if not self.summary.strip():
            raise ValueError(f"alert {self.alert}: summary is empty; say in one line what is wrong")
        _check_labels(f"alert {self.alert}", self.labels)


@dataclass(frozen=True)
class RecordingRule:
    """One Prometheus recording rule: `expr` precomputed and stored as series `record`."""

    record: str
    """`level:metric:operations`, e.g. `service:modelplane_inference_errors:ratio_rate5m`."""
    expr: str
    labels: Mapping[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not RECORD_NAME.match(self.record):
            raise ValueError(f"record={self.record!r}: must be a metric name such as 'level:metric:operations'")
        if not self.expr.strip():
            raise ValueError(f"record {self.record}: expr is empty; give the PromQL to precompute")
        _check_labels(f"record {self.record}", self.labels)


Rule = AlertRule | RecordingRule


@dataclass(frozen=True)
class RuleGroup:
    """Rules Prometheus evaluates together, in order, every `interval`."""

    name: str
    rules: tuple[Rule, ...]
    interval: str | None = None
    """Evaluation interval; None uses Prometheus' global `evaluation_interval`."""

    def __post_init__(self) -> None:
        if not self.name.strip():
            raise ValueError("rule group name is empty; name it after what it watches")
        if not self.rules:
            raise ValueError(f"rule group {self.name}: has no rules")
        if self.interval is not None and not DURATION.match(self.interval):
            raise ValueError(f"rule group {self.name}: interval={self.interval!r}: must be a duration such as '1m'")

    @property
    def alerts(self) -> tuple[AlertRule, ...]:
        return tuple(rule for rule in self.rules if isinstance(rule, AlertRule))


def _check_labels(owner: str, labels: Mapping[str, str]) -> None:
    for name in labels:
        if not LABEL_NAME.match(name):
            raise ValueError(f"{owner}: label {name!r}: must match [a-zA-Z_][a-zA-Z0-9_]*")
        if name in RESERVED_LABELS:
            raise ValueError(f"{owner}: label {name!r} is set by the rule itself; remove it")


def runbook_url(alert: str, base_url: str = DEFAULT_RUNBOOK_BASE_URL) -> str:
    """The page of a shipped alert: `<base_url>/<Alert>.md`."""
    return f"{base_url.rstrip('/')}/{alert}.md"


def runbook_base_problems(at: str, base_url: str) -> list[str]:
    """A base URL the alerts' links can be built on: http(s), no query or fragment to append a page to."""
    if re.match(r"^https?://[^\s/?#]+(/[^\s?#]*)?$", base_url):
        return []
    return [f"{at}={base_url!r}: must be an http(s) URL the runbook pages sit under, e.g. {DEFAULT_RUNBOOK_BASE_URL!r}"]


def with_runbook_base(groups: Sequence[RuleGroup], base_url: str) -> list[RuleGroup]:
    """`groups` with every shipped alert's runbook link under `base_url`; links a rule set itself are kept."""
    default_prefix = f"{DEFAULT_RUNBOOK_BASE_URL}/"
    if base_url.rstrip("/") == DEFAULT_RUNBOOK_BASE_URL:
        return list(groups)
    moved = []
    for group in groups:
        rules = tuple(
            replace(rule, runbook_url=f"{base_url.rstrip('/')}/{rule.runbook_url.removeprefix(default_prefix)}")
            if isinstance(rule, AlertRule) and rule.runbook_url.startswith(default_prefix)
            else rule
            for rule in group.rules
        )
        moved.append(replace(group, rules=rules))
    return moved


def promql_number(value: float) -> str:
    """A float as PromQL reads it back exactly enough: `0.001`, not `0.0010000000000000009`."""
    return f"{value:.10g}"


def _rule_dict(rule: Rule) -> dict[str, Any]:
    if isinstance(rule, RecordingRule):
        recorded: dict[str, Any] = {"record": rule.record, "expr": rule.expr}
        if rule.labels:
            recorded["labels"] = dict(rule.labels)
        return recorded
    annotations = {"summary": rule.summary, "description": rule.description, "runbook_url": rule.runbook_url}
    return {
        "alert": rule.alert,
        "expr": rule.expr,
        "for": rule.for_,
        "labels": {"severity": rule.severity.value, **rule.labels},
        "annotations": {key: text for key, text in annotations.items() if text},
    }


def _group_dict(group: RuleGroup) -> dict[str, Any]:
    rendered: dict[str, Any] = {"name": group.name}
    if group.interval is not None:
        rendered["interval"] = group.interval
    rendered["rules"] = [_rule_dict(rule) for rule in group.rules]
    return rendered


def render_rules_file(groups: Sequence[RuleGroup]) -> dict[str, Any]:
    """A Prometheus rules file, `{"groups": [...]}`, as Prometheus and promtool read it."""
    names = [group.name for group in groups]
    repeated = sorted({name for name in names if names.count(name) > 1})
    if repeated:
        raise ValueError(f"rule group names {repeated} are repeated; Prometheus needs them unique per file")
    return {"groups": [_group_dict(group) for group in groups]}


def rules_yaml(groups: Sequence[RuleGroup]) -> str:
    return yaml.safe_dump(render_rules_file(groups), sort_keys=False, width=1000)


def prometheus_rule_manifest(
    name: str, namespace: str, groups: Sequence[RuleGroup], labels: Mapping[str, str]
) -> dict[str, Any]:
    """A `monitoring.coreos.com/v1` PrometheusRule holding `groups`.

    `labels` must match the Prometheus' `ruleSelector` (kube-prometheus-stack: `release: <helm release>`),
    or the operator never loads the rules.
    """
    check_kubernetes_name("name", name)
    check_kubernetes_name("namespace", namespace)
    if not labels:
        raise ValueError(
            f"PrometheusRule {name}: labels is empty; pass the Prometheus' ruleSelector labels, "
            "e.g. {'release': 'kube-prometheus-stack'}"
        )
    return {
        "apiVersion": "monitoring.coreos.com/v1",
        "kind": "PrometheusRule",
        "metadata": {"name": name, "namespace": namespace, "labels": dict(labels)},
        "spec": render_rules_file(groups),
    }
