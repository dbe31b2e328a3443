"""`stacks/local.yaml`: which environment's workloads the local environment runs, and how they are scaled down."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from modelplane.config import ConfigError
from modelplane.stack_config import YamlFileError, load_yaml_file

LOCAL = "local"


class LocalModel(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class LocalTraining(LocalModel):
    processes: int = Field(default=2, ge=1, le=16)
    """torchrun processes per job (CPU, gloo)."""
    overrides: dict[str, Any] = Field(default_factory=dict)
    """Fields replaced in every training job, e.g. fewer steps and a CPU DeepSpeed preset."""
    synthetic_rows: int = Field(default=600, ge=20)
    """Rows of the synthetic example dataset generated when a job's dataset is missing."""
    timeout_minutes: int = Field(default=30, ge=1)


class LocalServing(LocalModel):
    overrides: dict[str, Any] = Field(default_factory=dict)
    """Fields replaced in every inference service."""
    warmup_requests: int = Field(default=200, ge=0)
    warmup_concurrency: int = Field(default=8, ge=1, le=64)


class LocalSettings(LocalModel):
    based_on: str = "dev"
    """The environment whose training jobs and inference services run locally."""
    artifacts: str = ".modelplane/local/artifacts"
    """Artifact root: a directory, or s3://bucket (its endpoint from AWS_ENDPOINT_URL_S3, e.g. a moto server)."""
    state_dir: str = ".modelplane/local"
    """PIDs, logs, rendered configs and Prometheus data."""
    training: LocalTraining = LocalTraining()
    serving: LocalServing = LocalServing()


def read_local_settings(stacks_dir: Path) -> LocalSettings:
    path = stacks_dir / f"{LOCAL}.yaml"
    if not path.is_file():
        raise ConfigError(LOCAL, [f"{path}: no local environment file; copy the one modelplane ships"])
    try:
        return LocalSettings.model_validate(load_yaml_file(path) or {})
    except YamlFileError as exc:
        raise ConfigError(LOCAL, exc.problems) from None
    except ValidationError as exc:
        raise ConfigError(LOCAL, [f"{path}: {exc}"]) from None
