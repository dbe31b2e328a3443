"""Alerting rules: every alert is routable and readable, and every workload is watched.

InferenceService and TrainingJob are modelplane components; their alerts are PrometheusRules among
their children, and their Kubernetes objects are children too, so these are stack rules.

Alertmanager's routing lives in a Kubernetes Secret, whose content neither the engine nor the plan
shows. Whether prod routes `critical` somewhere is therefore taken from the environment's own config
(`modelplane:monitoring.receivers`), handed to the rule as policy config `criticalReceivers` (see
`modelplane.policies.rules.environment`).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from modelplane.policies.rules.pod_specs import TRAIN_JOB_TYPE, resource_kind
from modelplane.policies.rules.props import as_list, dig, is_unknown
from modelplane.policies.rules.rule import Finding, ResourceRule, Rule, StackResource, StackRule, children_of
from modelplane.policies.rules.training_jobs import (
    CHECKPOINT_ARGUMENT,
    CHECKPOINT_VARIABLE,
    deadline_field,
    deadline_path,
    has_checkpoint_uri,
    has_deadline,
)

PROMETHEUS_RULE_TYPE = "kubernetes:monitoring.coreos.com/v1:PrometheusRule"
INFERENCE_SERVICE_TYPE = "modelplane:workloads:InferenceService"
TRAINING_JOB_TYPE = "modelplane:workloads:TrainingJob"
MONITORING_STACK_TYPE = "modelplane:monitoring:MonitoringStack"
SEVERITIES = ("critical", "warning", "info")
LATENCY_ALERTS = frozenset({"InferenceLatencyHigh"})
ERROR_ALERTS = frozenset({"InferenceErrorBudgetFastBurn", "InferenceErrorBudgetSlowBurn"})
STALL_ALERTS = frozenset({"TrainingStalled"})


def _alerting_rules(props: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    return [
        (f"spec.groups[{dig(group, 'name') or g}].rules[{r}]", rule)
        for g, group in enumerate(as_list(dig(props, "spec", "groups")))
        for r, rule in enumerate(as_list(dig(group, "rules")))
        if isinstance(rule, dict) and rule.get("alert") is not None
    ]


def _severity_and_summary(_type: str, props: dict[str, Any], _config: Mapping[str, Any]) -> list[str]:
    problems = []
    for where, rule in _alerting_rules(props):
        severity, summary = dig(rule, "labels", "severity"), dig(rule, "annotations", "summary")
        if not is_unknown(severity) and severity not in SEVERITIES:
            problems.append(
                f"{where} ({rule['alert']}): severity label {severity!r}; use one of {', '.join(SEVERITIES)}"
            )
        if not is_unknown(summary) and not (isinstance(summary, str) and summary.strip()):
            problems.append(f"{where} ({rule['alert']}): no summary annotation; say in one line what is wrong")
    return problems


def _runbook_url(_type: str, props: dict[str, Any], _config: Mapping[str, Any]) -> list[str]:
    problems = []
    for where, rule in _alerting_rules(props):
        url = dig(rule, "annotations", "runbook_url")
        if is_unknown(url) or (isinstance(url, str) and url.startswith(("https://", "http://"))):
            continue
        problems.append(
            f"{where} ({rule['alert']}): runbook_url is {url!r}; link the page that says how to confirm and act"
        )
    return problems


def _alerts_under(component: StackResource, resources: list[StackResource]) -> set[str] | None:
    """Alert names in the component's PrometheusRules; None if some rule's content is not yet known."""
    alerts: set[str] = set()
    for child in children_of(component.urn, resources):
        if child.type != PROMETHEUS_RULE_TYPE:
            continue
        rules = _alerting_rules(child.props)
        if is_unknown(dig(child.props, "spec")) or any(is_unknown(rule.get("alert")) for _, rule in rules):
            return None
        alerts |= {str(rule["alert"]) for _, rule in rules}
    return alerts


def _inference_alerts(resources: list[StackResource], _config: Mapping[str, Any]) -> list[Finding]:
    findings = []
    for service in (r for r in resources if r.type == INFERENCE_SERVICE_TYPE):
        alerts = _alerts_under(service, resources)
        if alerts is None:
            continue
        missing = [
            f"{kind} ({' or '.join(sorted(names))})"
            for kind, names in (("latency", LATENCY_ALERTS), ("errors", ERROR_ALERTS))
            if not alerts & names
        ]
        if missing:
            findings.append(
                Finding(f"inference service {service.name!r} has no {' and no '.join(missing)} alert", service.urn)
            )
    return findings


def _train_jobs(job: StackResource, resources: list[StackResource]) -> list[StackResource]:
    return [child for child in children_of(job.urn, resources) if child.type == TRAIN_JOB_TYPE]


def _train_job_findings(
    resources: list[StackResource], what: Callable[[str], str], holds: Callable[[str, dict[str, Any]], bool | None]
) -> list[Finding]:
    """modelplane's TrainingJobs through their TrainJobs, and every training job written by hand."""
    findings = []
    owned: set[str] = set()
    for job in (r for r in resources if r.type == TRAINING_JOB_TYPE):
        train_jobs = _train_jobs(job, resources)
        owned |= {tj.urn for tj in train_jobs}
        if not train_jobs:
            findings.append(
                Finding(f"training job {job.name!r} has no TrainJob child to carry {what(TRAIN_JOB_TYPE)}", job.urn)
            )
        findings += [
            Finding(f"training job {job.name!r}: TrainJob {tj.name!r} has no {what(tj.type)}", tj.urn)
            for tj in train_jobs
            if holds(tj.type, tj.props) is False
        ]
    findings += [
        Finding(f"{_kind(raw.type)} {raw.name!r} has no {what(raw.type)}", raw.urn)
        for raw in resources
        if raw.urn not in owned and deadline_path(raw.type) is not None and holds(raw.type, raw.props) is False
    ]
    return findings


def _kind(resource_type: str) -> str:
    kind = resource_kind(resource_type)
    return kind.kind if kind is not None else resource_type


def _training_deadline(resources: list[StackResource], _config: Mapping[str, Any]) -> list[Finding]:
    return _train_job_findings(resources, lambda type_: f"deadline (a positive {deadline_field(type_)})", has_deadline)


def _training_checkpoints(resources: list[StackResource], _config: Mapping[str, Any]) -> list[Finding]:
    return _train_job_findings(
        resources,
        lambda _type: f"checkpoint URI ({CHECKPOINT_ARGUMENT} in the trainer's args, or {CHECKPOINT_VARIABLE})",
        has_checkpoint_uri,
    )


def _training_stall_alert(resources: list[StackResource], _config: Mapping[str, Any]) -> list[Finding]:
    findings = []
    for job in (r for r in resources if r.type == TRAINING_JOB_TYPE):
        alerts = _alerts_under(job, resources)
        if alerts is not None and not alerts & STALL_ALERTS:
            findings.append(
                Finding(f"training job {job.name!r} has no stall alert ({', '.join(STALL_ALERTS)})", job.urn)
            )
    return findings


def _critical_receiver(resources: list[StackResource], config: Mapping[str, Any]) -> list[Finding]:
    receivers = [str(r) for r in as_list(config.get("criticalReceivers"))]
    return [
        Finding(
            "no Alertmanager receiver takes 'critical' alerts; add one to modelplane:monitoring.receivers "
            "with severities: [critical]",
            stack.urn,
        )
        for stack in resources
        if stack.type == MONITORING_STACK_TYPE and not receivers
    ]


PROMETHEUS_RULE_SEVERITY_AND_SUMMARY = ResourceRule(
    name="kubernetes-monitoring-prometheusrule-require-severity-summary",
    description="Every alert in every PrometheusRule has a severity label (critical, warning, info) and a summary.",
    why="Alertmanager routes by severity, and the summary is the line the person paged reads first.",
    resource_types=frozenset({PROMETHEUS_RULE_TYPE}),
    check=_severity_and_summary,
)
PROMETHEUS_RULE_RUNBOOK = ResourceRule(
    name="kubernetes-monitoring-prometheusrule-require-runbook-url",
    description="Every alert in every PrometheusRule links its runbook (an http(s) runbook_url annotation).",
    why="Whoever is paged at 3 a.m. needs the page that says what the alert means and what to do, one click away.",
    resource_types=frozenset({PROMETHEUS_RULE_TYPE}),
    check=_runbook_url,
)
INFERENCE_SERVICE_ALERTS = StackRule(
    name="modelplane-workloads-inferenceservice-require-alerts",
    description="Every InferenceService has latency and error alerts in a child PrometheusRule.",
    why="A service that is slow or failing must page someone before its users notice.",
    check=_inference_alerts,
)
TRAINING_JOB_DEADLINE = StackRule(
    name="modelplane-workloads-trainingjob-require-deadline",
    description="Every training job carries a run deadline: a TrainingJob's or raw TrainJob's "
    "spec.activeDeadlineSeconds, a Kubeflow PyTorchJob's (MPIJob, TFJob, ...) spec.runPolicy.activeDeadlineSeconds, "
    "a RayJob's spec.activeDeadlineSeconds.",
    why="A hung or runaway run stops instead of burning GPU hours until someone notices.",
    check=_training_deadline,
)
TRAINING_JOB_CHECKPOINTS = StackRule(
    name="modelplane-workloads-trainingjob-require-checkpoint-uri",
    description="Every training job (TrainingJob, raw TrainJob, Kubeflow or Ray job) tells its trainer where to write "
    "checkpoints (--checkpoint-uri, or MODELPLANE_CHECKPOINT_URI).",
    why="Spot interruptions and node failures resume from the newest checkpoint instead of starting over.",
    check=_training_checkpoints,
)
TRAINING_JOB_STALL_ALERT = StackRule(
    name="modelplane-workloads-trainingjob-require-stall-alert",
    description="Every TrainingJob has a stall alert (TrainingStalled) in a child PrometheusRule.",
    why="A hung NCCL collective keeps every GPU of the job busy doing nothing.",
    check=_training_stall_alert,
)
CRITICAL_RECEIVER = StackRule(
    name="modelplane-monitoring-alertmanager-require-critical-receiver",
    description="Alertmanager routes 'critical' alerts to a receiver (from the environment's monitoring config).",
    why="A critical alert nobody receives is an outage discovered by its users.",
    check=_critical_receiver,
    config_properties={
        "criticalReceivers": {
            "type": "array",
            "items": {"type": "string"},
            "description": "Receivers taking critical alerts; derived from modelplane:monitoring.receivers.",
        }
    },
)

RULES: list[Rule] = [
    PROMETHEUS_RULE_SEVERITY_AND_SUMMARY,
    PROMETHEUS_RULE_RUNBOOK,
    INFERENCE_SERVICE_ALERTS,
    TRAINING_JOB_DEADLINE,
    TRAINING_JOB_CHECKPOINTS,
    TRAINING_JOB_STALL_ALERT,
    CRITICAL_RECEIVER,
]
