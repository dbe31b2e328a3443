"""Alerts on one DeepSpeed training job, from the metrics the trainer exports.

The trainer exports exactly the metrics in `TRAINING_METRICS`, each with the constant label
`job_name` (the Kubernetes job's name; `job` belongs to Prometheus' scrape).
"""

from __future__ import annotations

from dataclasses import dataclass

from modelplane.components.alerting.rules import AlertRule, RuleGroup, Severity, promql_number, runbook_url
from modelplane.terms.names import check_kubernetes_name
from modelplane.workloads.training.trainer.metric_catalogue import JOB_NAME_LABEL


@dataclass(frozen=True)
class TrainingAlertThresholds:
    stall_minutes: int = 30
    """Alert when the step has not advanced for this long."""
    throughput_drop_fraction: float = 0.5
    """Alert when throughput fell by this share of its 1h average (0.5: below half of it)."""
    max_restarts: int = 3
    """Alert when the job has resumed from a checkpoint more often than this."""
    checkpoint_max_age_minutes: int = 120
    """Alert when the newest checkpoint is older than this: a crash would lose that much work."""

    def __post_init__(self) -> None:
        if self.stall_minutes < 1:
            raise ValueError(f"stall_minutes={self.stall_minutes}: must be at least 1")
        if not 0 < self.throughput_drop_fraction < 1:
            raise ValueError(f"throughput_drop_fraction={self.throughput_drop_fraction}: must be between 0 and 1")
        if self.max_restarts < 0:
            raise ValueError(f"max_restarts={self.max_restarts}: must be 0 or more")
        if self.checkpoint_max_age_minutes < 1:
            raise ValueError(f"checkpoint_max_age_minutes={self.checkpoint_max_age_minutes}: must be at least 1")


def training_rules(job_name: str, thresholds: TrainingAlertThresholds) -> RuleGroup:
    """Stalls, divergence, slowdowns, crash loops and stale checkpoints of training job `job_name`."""
    check_kubernetes_name("job_name", job_name)
    job = f'{{{JOB_NAME_LABEL}="{job_name}"}}'
    step = f"modelplane_training_step{job}"
    loss = f"modelplane_training_loss{job}"
    throughput = f"modelplane_training_samples_per_second{job}"
    stall = f"{thresholds.stall_minutes}m"
    kept_fraction = promql_number(1 - thresholds.throughput_drop_fraction)
    rules = (
        AlertRule(
            alert="TrainingStalled",
            # The offset term holds off the alert until the job has run for a whole stall window.
            expr=f"changes({step}[{stall}]) == 0 and on({JOB_NAME_LABEL}) ({step} offset {stall})",
            for_="0s",
            severity=Severity.CRITICAL,
            summary=f"Training job {job_name} has made no step for {thresholds.stall_minutes} minutes",
            description=(
                "The step counter stopped while the trainer still runs: usually a hung NCCL collective "
                "(one rank died or a network link failed) or a stuck data loader. Check every rank's logs; "
                "restarting the job resumes from the newest checkpoint."
            ),
            runbook_url=runbook_url("TrainingStalled"),
        ),
        AlertRule(
            alert="TrainingLossNotFinite",
            # NaN is the only value not equal to itself; Inf is the only one beyond 1e308.
            expr=f"({loss} != {loss}) or (abs({loss}) > 1e308)",
            # The trainer stops at the first non-finite loss (fp16 overflow shows in gradients, which DeepSpeed's
            # loss scaler skips, not in the loss), keeping its metrics up a while so this fires at once.
            for_="0s",
            severity=Severity.CRITICAL,
            summary=f"Training job {job_name} has a non-finite loss ({{{{ $value }}}})",
            description=(
                "The run diverged and every further step is wasted GPU time. Stop it, lower the learning "
                "rate or enable gradient clipping, and resume from the last checkpoint before the divergence."
            ),
            runbook_url=runbook_url("TrainingLossNotFinite"),
        ),
        AlertRule(
            alert="TrainingThroughputDropped",
            expr=(f"avg_over_time({throughput}[5m]) < {kept_fraction} * avg_over_time({throughput}[1h])"),
            for_="10m",
            severity=Severity.WARNING,
            summary=f"Training job {job_name} runs at {{{{ $value | humanize }}}} samples/s, well below its 1h average",
            description=(
                f"Throughput fell by more than {promql_number(thresholds.throughput_drop_fraction * 100)}% of its "
                "last hour's average. Look for a throttling or failing GPU, a slow node in the ring, "
                "or input starvation (storage, data loader workers)."
            ),
            runbook_url=runbook_url("TrainingThroughputDropped"),
        ),
        AlertRule(
            alert="TrainingRestartingTooOften",
            expr=(f"max by ({JOB_NAME_LABEL}) (modelplane_training_restarts_total{job}) > {thresholds.max_restarts}"),
            for_="0s",
            severity=Severity.WARNING,
            summary=f"Training job {job_name} has restarted {{{{ $value }}}} times",
            description=(
                f"The job resumed from a checkpoint more than {thresholds.max_restarts} times. Each restart "
                "loses the work since the last checkpoint; find the cause in the previous pod's logs "
                "(out of memory, XID errors, spot interruptions)."
            ),
            runbook_url=runbook_url("TrainingRestartingTooOften"),
        ),
        AlertRule(
            alert="TrainingCheckpointStale",
            expr=(
                f"time() - modelplane_training_last_checkpoint_timestamp_seconds{job}"
                f" > {thresholds.checkpoint_max_age_minutes * 60}"
            ),
            for_="0s",
            severity=Severity.WARNING,
            summary=f"Training job {job_name}'s newest checkpoint is {{{{ $value | humanizeDuration }}}} old",
            description=(
                f"No checkpoint for over {thresholds.checkpoint_max_age_minutes} minutes: a crash now would "
                "lose that much work. Check the trainer's logs for failed saves and the volume's free space."
            ),
            runbook_url=runbook_url("TrainingCheckpointStale"),
        ),
    )
    return RuleGroup(name=f"modelplane-training-{job_name}", rules=rules)
