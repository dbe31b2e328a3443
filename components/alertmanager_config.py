"""Alertmanager's configuration, built from the alert routing and the receivers' resolved secrets.

Every alert is routed by its `severity` label to each receiver that takes that severity; anything
else (kube-prometheus-stack's Watchdog, severity `none`) goes to the silent `null` receiver.
"""

from __future__ import annotations

import re
from collections.abc import Collection, Mapping, Sequence
from enum import StrEnum
from typing import Any, NotRequired, TypedDict

import yaml

from modelplane.terms.names import is_dns_label


class ReceiverKind(StrEnum):
    SLACK = "slack"
    PAGERDUTY = "pagerduty"
    WEBHOOK = "webhook"


ALERT_SEVERITIES = ("critical", "warning", "info")
SECRET_KEY = re.compile(r"^[a-z][a-z0-9_]*$")
"""A receiver's secret is a snake_case config key (`modelplane:<key>`)."""
PROMETHEUS_DURATION = re.compile(r"^(\d+(ms|s|m|h|d|w|y))+$")
DEFAULT_GROUP_BY = ("alertname", "namespace", "service", "job_name")


class AlertReceiver(TypedDict):
    name: str
    """Alertmanager receiver name, a DNS label."""
    kind: str
    """slack, pagerduty or webhook (ReceiverKind)."""
    secret: str
    """Name of the secret config key holding the Slack webhook URL, PagerDuty routing key or webhook URL."""
    severities: NotRequired[Sequence[str]]
    """Alert severities routed to this receiver; default critical only."""
    channel: NotRequired[str | None]
    """Slack channel, e.g. '#ml-alerts' (Slack only)."""


class AlertRouting(TypedDict):
    receivers: NotRequired[Sequence[AlertReceiver]]
    """Where alerts go; default nowhere (every alert reaches the silent null receiver)."""
    group_by: NotRequired[Sequence[str]]
    """Labels one notification groups alerts by; default DEFAULT_GROUP_BY."""
    group_wait: NotRequired[str]
    """How long to wait for more alerts of a new group; default 30s."""
    group_interval: NotRequired[str]
    """How long to wait before notifying about new alerts of a group; default 5m."""
    repeat_interval: NotRequired[str]
    """How often to repeat a notification still firing; default 4h."""


ROUTING_DEFAULTS = {"group_wait": "30s", "group_interval": "5m", "repeat_interval": "4h"}

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


def receiver_problems(at: str, receiver: AlertReceiver) -> list[str]:
    """Every problem of one receiver, each naming `at` (its config path), the value and the fix."""
    problems = []
    name, kind, secret = receiver["name"], receiver["kind"], receiver["secret"]
    if not is_dns_label(name):
        problems.append(f"{at}.name={name!r}: must be a DNS label: lowercase letters, digits, '-'")
    if kind not in set(ReceiverKind):
        problems.append(f"{at}.kind={kind!r}: use one of {', '.join(ReceiverKind)}")
    if not SECRET_KEY.match(secret):
        problems.append(f"{at}.secret={secret!r}: must be a snake_case config key, e.g. 'slack_webhook_url'")
    severities = list(receiver.get("severities", ["critical"]))
    if not severities or any(s not in ALERT_SEVERITIES for s in severities):
        problems.append(f"{at}.severities={severities}: use one or more of {', '.join(ALERT_SEVERITIES)}")
    channel = receiver.get("channel")
    if channel is not None and kind != ReceiverKind.SLACK:
        problems.append(f"{at}.channel={channel!r}: only Slack receivers take a channel")
    return problems


def routing_problems(at: str, routing: AlertRouting) -> list[str]:
    """Every problem of the routing: its receivers, their names, and its durations."""
    receivers = list(routing.get("receivers", []))
    problems = [p for index, r in enumerate(receivers) for p in receiver_problems(f"{at}.receivers[{index}]", r)]
    names = [r["name"] for r in receivers]
    repeated = sorted({n for n in names if names.count(n) > 1})
    if repeated:
        problems.append(f"{at}.receivers: names {repeated} are repeated; give each receiver its own name")
    if NULL_RECEIVER in names:
        problems.append(f"{at}.receivers: name {NULL_RECEIVER!r} is reserved for the silent default receiver")
    for key in ROUTING_DEFAULTS:
        value = routing.get(key, ROUTING_DEFAULTS[key])
        if not isinstance(value, str) or not PROMETHEUS_DURATION.match(value):
            problems.append(f"{at}.{key}={value!r}: not a Prometheus duration; use e.g. '30s', '5m', '4h'")
    return problems


def _secret_for(receiver: AlertReceiver, secret_values: Mapping[str, str]) -> str:
    value = secret_values.get(receiver["secret"])
    if not value:
        state = "is empty" if receiver["secret"] in secret_values else "is not set"
        raise ValueError(
            f"receiver {receiver['name']!r}: secret {receiver['secret']!r} {state}; "
            f"set it with `pulumi config set --secret modelplane:{receiver['secret']} <value>`"
        )
    return value


def receiver_config(receiver: AlertReceiver, secret: str) -> dict[str, Any]:
    """One Alertmanager receiver; `secret` is the Slack webhook URL, PagerDuty routing key or webhook URL."""
    name = receiver["name"]
    if receiver["kind"] == ReceiverKind.SLACK:
        slack: dict[str, Any] = {"api_url": secret, "send_resolved": True, "title": SLACK_TITLE, "text": SLACK_TEXT}
        if receiver.get("channel"):
            slack["channel"] = receiver.get("channel")
        return {"name": name, "slack_configs": [slack]}
    if receiver["kind"] == ReceiverKind.PAGERDUTY:
        pagerduty = {
            "routing_key": secret,
            "severity": PAGERDUTY_SEVERITY,
            "description": PAGERDUTY_DESCRIPTION,
            "send_resolved": True,
        }
        return {"name": name, "pagerduty_configs": [pagerduty]}
    return {"name": name, "webhook_configs": [{"url": secret, "send_resolved": True}]}


def severity_routes(receivers: Sequence[AlertReceiver]) -> list[dict[str, Any]]:
    """One route per (severity, receiver) pair, most severe first.

    Every route but a severity's last has `continue: true`, so an alert reaches every receiver
    that takes its severity and stops there.
    """
    routes: list[dict[str, Any]] = []
    for severity in ALERT_SEVERITIES:
        takers = [r for r in receivers if severity in r.get("severities", ["critical"])]
        for position, receiver in enumerate(takers):
            route: dict[str, Any] = {"receiver": receiver["name"], "matchers": [f'severity="{severity}"']}
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


def alertmanager_config(routing: AlertRouting, secret_values: Mapping[str, str]) -> dict[str, Any]:
    """The configuration as a dict; `secret_values` maps each receiver's secret name to its resolved value."""
    problems = routing_problems("monitoring", routing)
    if problems:
        raise ValueError("; ".join(problems))
    declared = list(routing.get("receivers", []))
    receivers = [receiver_config(r, _secret_for(r, secret_values)) for r in declared]
    return {
        "route": {
            "receiver": NULL_RECEIVER,
            "group_by": list(routing.get("group_by", DEFAULT_GROUP_BY)),
            **{key: routing.get(key, default) for key, default in ROUTING_DEFAULTS.items()},
            "routes": severity_routes(declared),
        },
        "receivers": [{"name": NULL_RECEIVER}, *receivers],
        "inhibit_rules": inhibit_rules(),
    }


def alertmanager_yaml(routing: AlertRouting, secret_values: Mapping[str, str]) -> str:
    """`alertmanager.yaml` as the operator reads it from the config Secret."""
    return yaml.safe_dump(alertmanager_config(routing, secret_values), sort_keys=False, width=1000)


def check_receiver_secrets(routing: AlertRouting, provided: Collection[str]) -> None:
    """Fail, before any resource exists, when a receiver's secret was not passed in `receiver_secrets`."""
    missing = [
        f"secret {r['secret']!r} of receiver {r['name']!r}"
        for r in routing.get("receivers", [])
        if r["secret"] not in provided
    ]
    if missing:
        raise ValueError(
            f"receiver_secrets: no value for {', '.join(missing)}; read each with "
            "`pulumi.Config('modelplane').require_secret(name)` and pass it under its name"
        )
