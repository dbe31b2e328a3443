"""The trainer's Prometheus metrics: exactly `TRAINING_METRICS` (what the alerts read) plus evaluation gauges.

Names, help texts and labels come from the specs; rank 0 serves them, each with the constant label
`job_name`.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, start_http_server

from modelplane.terms.metrics import MetricKind, MetricSpec
from modelplane.workloads.training.trainer.evaluate import EvalReport
from modelplane.workloads.training.trainer.metric_catalogue import JOB_NAME_LABEL, TRAINING_METRICS

CLASS_LABEL = "label"
EVAL_METRICS: dict[str, MetricSpec] = {
    "modelplane_training_eval_accuracy": MetricSpec(
        MetricKind.GAUGE,
        "Accuracy on the evaluation set after the latest epoch.",
        (JOB_NAME_LABEL,),
    ),
    "modelplane_training_eval_f1": MetricSpec(
        MetricKind.GAUGE,
        "F1 score of one class on the evaluation set after the latest epoch.",
        (JOB_NAME_LABEL, CLASS_LABEL),
    ),
}


def build_metric(name: str, spec: MetricSpec, registry: CollectorRegistry) -> Gauge | Counter:
    if spec.kind is MetricKind.GAUGE:
        return Gauge(name, spec.help, spec.labels, registry=registry)
    if spec.kind is MetricKind.COUNTER:
        return Counter(name, spec.help, spec.labels, registry=registry)
    raise ValueError(f"{name}: the trainer exports gauges and counters, not {spec.kind}")


class TrainingMetrics:
    """One job's metrics in `registry`; looking each one up by name fails at start if the specs drift."""

    def __init__(self, job_name: str, registry: CollectorRegistry) -> None:
        self.job_name = job_name
        specs: Mapping[str, MetricSpec] = {**TRAINING_METRICS, **EVAL_METRICS}
        self.metrics = {name: build_metric(name, spec, registry) for name, spec in specs.items()}
        self.step = self.child("modelplane_training_step")
        self.loss = self.child("modelplane_training_loss")
        self.samples_per_second = self.child("modelplane_training_samples_per_second")
        self.restarts = self.child("modelplane_training_restarts_total")
        self.last_checkpoint = self.child("modelplane_training_last_checkpoint_timestamp_seconds")
        self.eval_accuracy = self.child("modelplane_training_eval_accuracy")

    def child(self, name: str, **labels: str) -> Any:
        return self.metrics[name].labels(**{JOB_NAME_LABEL: self.job_name}, **labels)

    def started(self, step: int, restarts: int, last_checkpoint: float) -> None:
        """At start or resume: the restored step and restarts; the checkpoint time, or the job's start before one."""
        self.step.set(step)
        self.restarts.inc(restarts)
        self.last_checkpoint.set(last_checkpoint)

    def stepped(self, step: int, loss: float) -> None:
        self.step.set(step)
        self.loss.set(loss)

    def checkpointed(self, timestamp: float) -> None:
        self.last_checkpoint.set(timestamp)

    def evaluated(self, report: EvalReport) -> None:
        self.eval_accuracy.set(report.accuracy)
        for label, scores in report.per_class.items():
            self.child("modelplane_training_eval_f1", **{CLASS_LABEL: label}).set(scores.f1)


def serve_metrics(registry: CollectorRegistry, port: int, address: str) -> Any:
    """Serve `registry` at http://address:port/metrics from a daemon thread; returns the server (`shutdown()`)."""
    server, _thread = start_http_server(port, addr=address, registry=registry)
    return server
