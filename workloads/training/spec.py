"""A training job as ML teams declare it: the one spec that renders to Kubernetes objects, local
processes, alert rules and policy inputs.

Artifact paths (`dataset`, `base_model`, `checkpoint_path`, `model_path`) are relative to the
environment's artifact store (`s3://<bucket>/` in the cloud, `.modelplane/local/artifacts/`
locally) unless given as full `s3://` URIs.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator

from modelplane.components.priorities import TrainingPriority
from modelplane.terms.names import check_workload_name
from modelplane.workloads.spec_fields import artifact_path, env_names, pinned_image, registry_problem
from modelplane.workloads.training.alerts import TrainingAlertThresholds
from modelplane.workloads.training.deepspeed_config import DeepSpeedSettings, batch_problem, settings_from


class TrainingAlerts(BaseModel):
    """Thresholds of the job's alert rules (see the alert catalogue)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    stall_minutes: int = Field(default=30, ge=1)
    throughput_drop_fraction: float = Field(default=0.5, gt=0, lt=1)
    checkpoint_max_age_minutes: int = Field(default=120, ge=1)

    def thresholds(self, restart_budget: int) -> TrainingAlertThresholds:
        return TrainingAlertThresholds(
            stall_minutes=self.stall_minutes,
            throughput_drop_fraction=self.throughput_drop_fraction,
            max_restarts=restart_budget,
            checkpoint_max_age_minutes=self.checkpoint_max_age_minutes,
        )


class TrainingJobSpec(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str
    """DNS label; names the TrainJob, its service account, metrics and alerts."""
    image: str
    """Trainer image in the platform's registry: `trainer:TAG` or `trainer@sha256:...` (never `latest`)."""
    gpu_pool: str
    """The GPU node pool the job runs on."""
    nodes: int = Field(default=1, ge=1, le=256)
    gpus_per_node: int = Field(default=1, ge=1, le=16)
    deepspeed: DeepSpeedSettings = DeepSpeedSettings()
    """DeepSpeed settings, optionally from a `preset`."""
    base_model: str
    """Pretrained model directory (Hugging Face layout) to fine-tune."""
    dataset: str
    """JSONL or CSV with `text` and `label`."""
    labels: list[str] | None = None
    """The job's label set, in class order: a row with any other label (a typo) fails the job before its first
    step, naming the file, the line and the nearest label. None: the training data's labels, unchecked."""
    base_model_parameters: int = Field(default=110_000_000, ge=1)
    """Parameters of the base model (MiniLM-L6: 22.7M; the default is BERT-base's): sizes the checkpoint, hence
    how long a preempted pod gets to write it and how long a collective may wait for a checkpointing rank."""
    collective_timeout_seconds: int | None = Field(default=None, ge=10, le=24 * 60 * 60)
    """How long a rank waits for its peers before the job fails (a stalled or lost rank); None: sized from the
    checkpoint (see `collective_timeout_for`)."""
    checkpoint_path: str | None = None
    """Where checkpoints go; required for multi-node jobs (they restart as a group from it)."""
    model_path: str | None = None
    """Where the exported model goes; default `models/<name>`."""
    epochs: int = Field(default=3, ge=1, le=1000)
    max_steps: int | None = Field(default=None, ge=1)
    checkpoint_every_steps: int = Field(default=500, ge=1)
    max_length: int = Field(default=128, ge=8, le=8192)
    max_run_minutes: int = Field(default=24 * 60, ge=5, le=30 * 24 * 60)
    """Deadline: the job is stopped after this long."""
    restart_budget: int = Field(default=3, ge=0, le=100)
    """Group restarts (from the newest checkpoint) allowed before the job fails."""
    env: dict[str, str] = Field(default_factory=dict)
    alerts: TrainingAlerts = TrainingAlerts()
    priority: TrainingPriority = TrainingPriority.NORMAL
    """Its place in its team's GPU queue: high jobs are admitted first and may preempt low ones (whole jobs)."""
    team: str | None = None
    """The team whose namespace and GPU queue the job runs in; None: the platform's default team."""

    @field_validator("name")
    @classmethod
    def _dns_label(cls, value: str) -> str:
        return check_workload_name(value)

    @field_validator("image")
    @classmethod
    def _pinned_image(cls, value: str) -> str:
        return pinned_image(value, example="trainer:1.4.0")

    @field_validator("base_model", "dataset", "checkpoint_path", "model_path")
    @classmethod
    def _artifact_path(cls, value: str | None) -> str | None:
        return None if value is None else artifact_path(value, example="datasets/x.jsonl")

    @field_validator("labels")
    @classmethod
    def _label_set(cls, value: list[str] | None) -> list[str] | None:
        if value is None:
            return None
        labels = [label.strip() for label in value]
        if len(labels) < 2 or len(set(labels)) != len(labels):
            raise ValueError(f"labels={value}: give two or more distinct labels, in class order")
        for label in labels:
            if not label or "," in label:
                raise ValueError(f"labels: {label!r} is not a label; labels are non-empty and hold no commas")
        return labels

    @field_validator("env")
    @classmethod
    def _env_names(cls, value: dict[str, str]) -> dict[str, str]:
        return env_names(value, reserved_because="are set by modelplane")

    @field_validator("deepspeed", mode="before")
    @classmethod
    def _preset(cls, value: Any) -> Any:
        return settings_from(value) if isinstance(value, dict) else value

    @property
    def world_size(self) -> int:
        return self.nodes * self.gpus_per_node

    @property
    def model_output(self) -> str:
        return self.model_path or f"models/{self.name}"

    @property
    def checkpoints(self) -> str:
        return self.checkpoint_path or f"checkpoints/{self.name}"


@dataclass(frozen=True)
class PoolCapacity:
    gpus_per_node: int
    max_nodes: int


def job_problems(
    index: int, job: TrainingJobSpec, pools: dict[str, PoolCapacity], repositories: list[str]
) -> list[str]:
    """Problems of `job` against the environment's GPU pools and registries."""
    at = f"training_jobs[{index}]"
    problems = []
    if image := registry_problem(f"{at}.image", job.image, repositories):
        problems.append(image)
    pool = pools.get(job.gpu_pool)
    if pool is None:
        problems.append(f"{at}.gpu_pool={job.gpu_pool!r}: unknown pool; pools: {', '.join(pools) or 'none'}")
    else:
        if job.gpus_per_node > pool.gpus_per_node:
            problems.append(
                f"{at}.gpus_per_node={job.gpus_per_node}: pool {job.gpu_pool!r} has {pool.gpus_per_node} GPUs per node"
            )
        if job.nodes > pool.max_nodes:
            problems.append(
                f"{at}.nodes={job.nodes}: pool {job.gpu_pool!r} scales to {pool.max_nodes} nodes; "
                "raise its max_size or use fewer nodes"
            )
    batch = batch_problem(job.deepspeed, job.world_size)
    if batch:
        problems.append(f"{at}.deepspeed.{batch}")
    if job.nodes > 1 and job.checkpoint_path is None:
        problems.append(
            f"{at}.checkpoint_path=None: a {job.nodes}-node job restarts as a group from its checkpoints; "
            f"set checkpoint_path (e.g. 'checkpoints/{job.name}')"
        )
    return problems
