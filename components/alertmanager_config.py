"""Alertmanager's configuration, built from the monitoring config and the receivers' resolved secrets.

Every alert is routed by its `severity` label to each receiver that takes that severity; anything
else (kube-prometheus-stack's Watchdog, severity `none`) goes to the silent `null` receiver.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from typing import Any

import yaml

from modelplane.config import ALERT_SEVERITIES, MonitoringConfig, ReceiverConfig, ReceiverKind

NULL_RECEIVER = "null"
"""Catches what no route takes; it has no integrations, so nothing is sent."""
INHIBITION_EQUAL_LABELS = ("alertname", "namespace", "service", "job_name")
"""A critical alert silences the warning only for the same thing: same alert, namespace, service or job."""

SLACK_TITLE = (
    '[{{ .Status | toUpper }}{{ if eq .Status "firing" }}:{{ .Alerts.Firing | len }}{{ end }}] '
    "{{ .CommonLabels.alertname }} ({{ .CommonLabels.environment }})"
)
SLACK_TEXT = (
    "{{ range .Alerts }}*{{ .Annotations.summary }}*\n"
    "{{ if .Annotations.description }}{{ .Annotations.description }}\n{{ end }}"
    "{{ if .Annotations.runbook_url }}Runbook: {{ .Annotations.runbook_url }}\n{{ end }}"
    "{{ end }}"
)
# PagerDuty's severities include ours (critical, warning, info) by name; alerts without one page as critical.
PAGERDUTY_SEVERITY = '{{ or .CommonLabels.severity "critical" }}'
PAGERDUTY_DESCRIPTION = "{{ .CommonLabels.alertname }}: {{ .CommonAnnotations.summary }}"


def _secret_for(receiver: ReceiverConfig, secret_values: Mapping[str, str]) -> str:
    value = secret_values.get(receiver.secret)
    if not value:
        state = "is empty" if receiver.secret in secret_values else "is not set"
        raise ValueError(
            f"receiver {receiver.name!r}: secret {receiver.secret!r} {state}; "
            f"set it with `pulumi config set --secret modelplane:{receiver.secret} <value>`"
        )
    return value


def receiver_config(receiver: ReceiverConfig, secret: str) -> dict[str, Any]:
    """One Alertmanager receiver; `secret` is the Slack webhook URL, PagerDuty routing key or webhook URL."""
    if receiver.kind is ReceiverKind.SLACK:
        slack: dict[str, Any] = {"api_url": secret, "send_resolved": True, "title": SLACK_TITLE, "text": SLACK_TEXT}
        if receiver.channel:
            slack["channel"] = receiver.channel
        return {"name": receiver.name, "slack_configs": [slack]}
    if receiver.kind is ReceiverKind.PAGERDUTY:
        pagerduty = {
            "routing_key": secret,
            "severity": PAGERDUTY_SEVERITY,
            "description": PAGERDUTY_DESCRIPTION,
            "send_resolved": True,
        }
        return {"name": receiver.name, "pagerduty_configs": [pagerduty]}
    return {"name": receiver.name, "webhook_configs": [{"url": secret, "send_resolved": True}]}


def severity_routes(receivers: list[ReceiverConfig]) -> list[dict[str, Any]]:
    """One route per (severity, receiver) pair, most severe first.

    Every route but a severity's last has `continue: true`, so an alert reaches every receiver
    that takes its severity and stops there.
    """
    routes: list[dict[str, Any]] = []
    for severity in ALERT_SEVERITIES:
        takers = [r for r in receivers if severity in r.severities]
        for position, receiver in enumerate(takers):
            route: dict[str, Any] = {"receiver": receiver.name, "matchers": [f'severity="{severity}"']}
            if position < len(takers) - 1:
                route["continue"] = True
            routes.append(route)
    return routes


def inhibit_rules() -> list[dict[str, Any]]:
    """A firing critical alert mutes the warning of the same alert and object: one page, not two."""
    return [
        {
            "source_matchers": ['severity="critical"'],
            "target_matchers": ['severity="warning"'],
            "equal": list(INHIBITION_EQUAL_LABELS),
        }
    ]


def alertmanager_config(monitoring: MonitoringConfig, secret_values: Mapping[str, str]) -> dict[str, Any]:
    """The configuration as a dict; `secret_values` maps each receiver's secret name to its resolved value."""
    names = [r.name for r in monitoring.receivers]
    repeated = sorted({n for n in names if names.count(n) > 1})
    if repeated:
        raise ValueError(f"monitoring.receivers: names {repeated} are repeated; give each receiver its own name")
    if NULL_RECEIVER in names:
        raise ValueError(f"monitoring.receivers: name {NULL_RECEIVER!r} is reserved for the silent default receiver")
    receivers = [receiver_config(r, _secret_for(r, secret_values)) for r in monitoring.receivers]
    return {
        "route": {
            "receiver": NULL_RECEIVER,
            "group_by": list(monitoring.group_by),
            "group_wait": monitoring.group_wait,
            "group_interval": monitoring.group_interval,
            "repeat_interval": monitoring.repeat_interval,
            "routes": severity_routes(monitoring.receivers),
        },
        "receivers": [{"name": NULL_RECEIVER}, *receivers],
        "inhibit_rules": inhibit_rules(),
    }


def alertmanager_yaml(monitoring: MonitoringConfig, secret_values: Mapping[str, str]) -> str:
    """`alertmanager.yaml` as the operator reads it from the config Secret."""
    return yaml.safe_dump(alertmanager_config(monitoring, secret_values), sort_keys=False, width=1000)


def check_receiver_secrets(monitoring: MonitoringConfig, provided: Collection[str]) -> None:
    """Fail, before any resource exists, when a receiver's secret was not passed in `receiver_secrets`."""
    missing = [f"secret {r.secret!r} of receiver {r.name!r}" for r in monitoring.receivers if r.secret not in provided]
    if missing:
        raise ValueError(
            f"receiver_secrets: no value for {', '.join(missing)}; read each with "
            "`pulumi.Config('modelplane').require_secret(name)` and pass it under its name"
        )
