from __future__ import annotations

import urllib.request

from prometheus_client import CollectorRegistry
from prometheus_client.parser import text_string_to_metric_families

from modelplane.workloads.training.trainer.evaluate import ClassScores, EvalReport
from modelplane.workloads.training.trainer.metric_catalogue import JOB_NAME_LABEL, TRAINING_METRICS
from modelplane.workloads.training.trainer.metrics import EVAL_METRICS, TrainingMetrics, serve_metrics


def exported_samples(registry: CollectorRegistry) -> dict[str, list[tuple[dict[str, str], float]]]:
    """Sample name -> (labels, value) from the served text, without the counters' `_created` samples."""
    server = serve_metrics(registry, port=0, address="127.0.0.1")
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{server.server_port}/metrics", timeout=5) as response:
            text = response.read().decode()
    finally:
        server.shutdown()
    samples: dict[str, list[tuple[dict[str, str], float]]] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if not sample.name.endswith("_created"):
                samples.setdefault(sample.name, []).append((sample.labels, sample.value))
    return samples


def report() -> EvalReport:
    scores = {label: ClassScores(0.5, 0.5, f1, 2) for label, f1 in (("negative", 0.25), ("positive", 0.75))}
    return EvalReport(accuracy=0.6, per_class=scores, examples=4)


def test_served_names_are_the_alert_contract_plus_eval_gauges() -> None:
    registry = CollectorRegistry()
    metrics = TrainingMetrics("sentiment", registry)
    metrics.started(step=40, restarts=2, last_checkpoint=1234.0)
    metrics.stepped(step=41, loss=0.5)
    metrics.samples_per_second.set(96.0)
    metrics.evaluated(report())
    samples = exported_samples(registry)
    assert set(samples) == set(TRAINING_METRICS) | set(EVAL_METRICS)
    assert samples["modelplane_training_step"] == [({JOB_NAME_LABEL: "sentiment"}, 41.0)]
    assert samples["modelplane_training_restarts_total"] == [({JOB_NAME_LABEL: "sentiment"}, 2.0)]
    assert samples["modelplane_training_last_checkpoint_timestamp_seconds"] == [({JOB_NAME_LABEL: "sentiment"}, 1234.0)]
    assert sorted(samples["modelplane_training_eval_f1"], key=lambda s: s[1]) == [
        ({JOB_NAME_LABEL: "sentiment", "label": "negative"}, 0.25),
        ({JOB_NAME_LABEL: "sentiment", "label": "positive"}, 0.75),
    ]


def test_every_metric_carries_exactly_the_labels_its_spec_lists() -> None:
    registry = CollectorRegistry()
    TrainingMetrics("sentiment", registry).evaluated(report())
    for name, series in exported_samples(registry).items():
        spec = {**TRAINING_METRICS, **EVAL_METRICS}[name]
        assert all(set(labels) == set(spec.labels) for labels, _ in series), name


def test_checkpoint_time_follows_saves() -> None:
    registry = CollectorRegistry()
    metrics = TrainingMetrics("sentiment", registry)
    metrics.started(step=0, restarts=0, last_checkpoint=100.0)
    metrics.checkpointed(250.0)
    samples = exported_samples(registry)
    assert samples["modelplane_training_last_checkpoint_timestamp_seconds"] == [({JOB_NAME_LABEL: "sentiment"}, 250.0)]
