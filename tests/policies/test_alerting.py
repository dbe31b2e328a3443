from __future__ import annotations

from typing import Any

import pytest

from modelplane.policies.rules import alerting
from tests.policies.harness import messages, resource, violations

PROMETHEUS_RULE = "kubernetes:monitoring.coreos.com/v1:PrometheusRule"
TRAIN_JOB = "kubernetes:trainer.kubeflow.org/v1alpha1:TrainJob"


def alert(
    name: str,
    severity: str | None = "warning",
    summary: str | None = "Something is wrong",
    runbook_url: str | None = "https://runbooks.example.com/A",
) -> dict[str, Any]:
    annotations = {"summary": summary, "runbook_url": runbook_url}
    return {
        "alert": name,
        "expr": "up == 0",
        "labels": {"severity": severity} if severity else {},
        "annotations": {key: value for key, value in annotations.items() if value},
    }


def prometheus_rule(*alerts: dict[str, Any], parent: dict[str, Any] | None = None) -> dict[str, Any]:
    inputs = {
        "kind": "PrometheusRule",
        "spec": {"groups": [{"name": "g", "rules": [*alerts, {"record": "r", "expr": "1"}]}]},
    }
    return resource(PROMETHEUS_RULE, f"{parent['name'] if parent else 'x'}-alerts", inputs, parent=parent)


def test_alerts_with_severity_and_summary_pass() -> None:
    rule = prometheus_rule(alert("A"), alert("B", severity="critical"))
    assert messages(alerting.PROMETHEUS_RULE_SEVERITY_AND_SUMMARY, [rule]) == []


@pytest.mark.parametrize(("severity", "summary"), [(None, "s"), ("page", "s"), ("warning", None), ("warning", " ")])
def test_alert_without_severity_or_summary_fires(severity: str | None, summary: str | None) -> None:
    rule = prometheus_rule(alert("A"), alert("B", severity=severity, summary=summary))
    (message,) = messages(alerting.PROMETHEUS_RULE_SEVERITY_AND_SUMMARY, [rule])
    assert "(B)" in message


def test_alerts_with_runbooks_pass() -> None:
    assert messages(alerting.PROMETHEUS_RULE_RUNBOOK, [prometheus_rule(alert("A"), alert("B"))]) == []


@pytest.mark.parametrize("runbook_url", [None, "", "see the wiki", "runbooks/A.md"])
def test_alert_without_a_runbook_link_fires(runbook_url: str | None) -> None:
    rule = prometheus_rule(alert("A"), alert("B", runbook_url=runbook_url))
    (message,) = messages(alerting.PROMETHEUS_RULE_RUNBOOK, [rule])
    assert "(B)" in message


def inference_service(*alerts: str) -> list[dict[str, Any]]:
    service = resource(alerting.INFERENCE_SERVICE_TYPE, "svc")
    return [service, prometheus_rule(*(alert(a) for a in alerts), parent=service)]


def test_inference_service_with_latency_and_error_alerts_passes() -> None:
    resources = inference_service("InferenceLatencyHigh", "InferenceErrorBudgetFastBurn")
    assert messages(alerting.INFERENCE_SERVICE_ALERTS, resources) == []


@pytest.mark.parametrize(
    ("alerts", "missing"),
    [(("InferenceLatencyHigh",), "errors"), (("InferenceErrorBudgetSlowBurn",), "latency"), ((), "latency")],
)
def test_inference_service_missing_alerts_fires_on_the_service(alerts: tuple[str, ...], missing: str) -> None:
    resources = inference_service(*alerts)
    (report,) = violations(alerting.INFERENCE_SERVICE_ALERTS, resources)
    assert report.urn == resources[0]["urn"]
    assert missing in report.message


def training_job(
    deadline: float | None = 7200.0,
    args: list[str] | None = None,
    alerts: tuple[str, ...] = ("TrainingStalled",),
) -> list[dict[str, Any]]:
    job = resource(alerting.TRAINING_JOB_TYPE, "train-job")
    inputs = {
        "spec": {
            "trainer": {"args": ["--checkpoint-uri", "s3://b/checkpoints/job"] if args is None else args},
            **({} if deadline is None else {"activeDeadlineSeconds": deadline}),
        },
    }
    return [
        job,
        resource(TRAIN_JOB, "train-job-trainjob", inputs, parent=job),
        prometheus_rule(*map(alert, alerts), parent=job),
    ]


TRAINING_RULES = [alerting.TRAINING_JOB_DEADLINE, alerting.TRAINING_JOB_CHECKPOINTS, alerting.TRAINING_JOB_STALL_ALERT]


@pytest.mark.parametrize("rule", TRAINING_RULES, ids=[r.name for r in TRAINING_RULES])
def test_guarded_training_job_passes(rule: Any) -> None:
    assert messages(rule, training_job()) == []
    assert messages(rule, training_job(args=["--checkpoint-uri=s3://b/c"])) == []


@pytest.mark.parametrize(
    ("rule", "job"),
    [
        (alerting.TRAINING_JOB_DEADLINE, training_job(deadline=None)),
        (alerting.TRAINING_JOB_DEADLINE, training_job(deadline=0.0)),
        (alerting.TRAINING_JOB_CHECKPOINTS, training_job(args=["--epochs", "3"])),
        (alerting.TRAINING_JOB_CHECKPOINTS, training_job(args=["--checkpoint-uri"])),
        (alerting.TRAINING_JOB_STALL_ALERT, training_job(alerts=("TrainingLossNotFinite",))),
    ],
)
def test_unguarded_training_job_fires(rule: Any, job: list[dict[str, Any]]) -> None:
    assert len(messages(rule, job)) == 1


def test_training_job_without_a_train_job_fires_on_the_component() -> None:
    job = resource(alerting.TRAINING_JOB_TYPE, "train-job")
    (report,) = violations(alerting.TRAINING_JOB_DEADLINE, [job])
    assert report.urn == job["urn"]


def test_critical_receiver_comes_from_config() -> None:
    monitoring = resource(alerting.MONITORING_STACK_TYPE, "monitoring")
    assert messages(alerting.CRITICAL_RECEIVER, [monitoring], {"criticalReceivers": ["oncall"]}) == []
    assert len(messages(alerting.CRITICAL_RECEIVER, [monitoring], {"criticalReceivers": []})) == 1
    assert messages(alerting.CRITICAL_RECEIVER, [], {}) == []
