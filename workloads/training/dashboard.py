"""The Grafana dashboard of training jobs, from the metrics the trainer exports."""

from __future__ import annotations

from typing import Any

from modelplane.components.grafana_dashboards import dashboard, label_variable, stat, target, timeseries
from modelplane.workloads.training.trainer.metric_catalogue import JOB_NAME_LABEL


def training_run_dashboard() -> dict[str, Any]:
    """One training job's loss, throughput, step time and checkpoint age, chosen by `job_name`."""
    job = f'{{{JOB_NAME_LABEL}="${JOB_NAME_LABEL}"}}'
    step = f"modelplane_training_step{job}"
    panels = [
        stat("Step", step),
        stat("Restarts", f"max(modelplane_training_restarts_total{job})"),
        stat("Checkpoint age", f"time() - modelplane_training_last_checkpoint_timestamp_seconds{job}", unit="s"),
        stat("Samples/s", f"modelplane_training_samples_per_second{job}"),
        timeseries("Loss", [target(f"modelplane_training_loss{job}", "loss")]),
        timeseries("Throughput", [target(f"modelplane_training_samples_per_second{job}", "samples/s")]),
        # The step is a gauge (it jumps back on resume), so its slope comes from deriv(), not rate().
        timeseries("Step time", [target(f"1 / deriv({step}[5m])", "seconds/step")], unit="s"),
        timeseries(
            "Checkpoint age",
            [target(f"time() - modelplane_training_last_checkpoint_timestamp_seconds{job}", "age")],
            unit="s",
        ),
    ]
    job_variable = label_variable(JOB_NAME_LABEL, "modelplane_training_step", JOB_NAME_LABEL)
    return dashboard("modelplane-training-run", "Training run", panels, [job_variable])
