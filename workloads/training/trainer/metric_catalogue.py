"""The metrics the trainer exports: the contract its alert rules and dashboards read.

Every series carries the constant label `job_name` (the Kubernetes job's name; `job` belongs to Prometheus' scrape).
"""

from __future__ import annotations

from modelplane.terms.metrics import MetricKind, MetricSpec

JOB_NAME_LABEL = "job_name"

TRAINING_METRICS: dict[str, MetricSpec] = {
    "modelplane_training_step": MetricSpec(
        MetricKind.GAUGE,
        "Optimizer steps completed; set to the checkpoint's step on resume.",
        (JOB_NAME_LABEL,),
    ),
    "modelplane_training_loss": MetricSpec(
        MetricKind.GAUGE,
        "Training loss of the latest step.",
        (JOB_NAME_LABEL,),
    ),
    "modelplane_training_samples_per_second": MetricSpec(
        MetricKind.GAUGE,
        "Training samples processed per second over the latest logging interval, all ranks together.",
        (JOB_NAME_LABEL,),
    ),
    "modelplane_training_restarts_total": MetricSpec(
        MetricKind.COUNTER,
        "Times this job resumed from a checkpoint; carried in the checkpoint so it survives restarts.",
        (JOB_NAME_LABEL,),
    ),
    "modelplane_training_last_checkpoint_timestamp_seconds": MetricSpec(
        MetricKind.GAUGE,
        "Unix time the newest complete checkpoint was written; the job's start time before the first one.",
        (JOB_NAME_LABEL,),
    ),
}
