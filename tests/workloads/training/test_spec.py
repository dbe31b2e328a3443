from __future__ import annotations

from typing import Any

import pytest
from pydantic import ValidationError

from modelplane.components.priorities import TrainingPriority
from modelplane.config import ConfigError, parse_environment
from modelplane.workloads.training.spec import TrainingJobSpec


def job(**overrides: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "name": "sentiment",
        "image": "trainer:0.1.0",
        "gpu_pool": "train",
        "base_model": "base-models/minilm",
        "dataset": "datasets/news/train.jsonl",
    }
    base.update(overrides)
    return base


def environment(*jobs: dict[str, Any]) -> dict[str, Any]:
    return {
        "gpu_node_pools": [{"name": "train", "instance_type": "g6.12xlarge", "max_size": 2}],
        "cluster": {"deployer_cidrs": ["10.8.0.0/22"]},
        "budget": {"max_gpus": 8, "max_monthly_gpu_cost_usd": 100_000},
        "training_jobs": list(jobs),
    }


def problems(*jobs: dict[str, Any]) -> list[str]:
    with pytest.raises(ConfigError) as caught:
        parse_environment("dev", "us-east-1", environment(*jobs))
    return caught.value.problems


def test_a_valid_job_parses_with_defaults() -> None:
    env = parse_environment("dev", "us-east-1", environment(job()))
    (spec,) = env.training_jobs
    assert spec.world_size == 1
    assert spec.model_output == "models/sentiment"
    assert spec.checkpoints == "checkpoints/sentiment"
    assert spec.deepspeed.zero_stage == 2


@pytest.mark.parametrize(
    ("overrides", "expected"),
    [
        ({"gpu_pool": "nope"}, "training_jobs[0].gpu_pool='nope': unknown pool; pools: train"),
        ({"gpus_per_node": 8}, "training_jobs[0].gpus_per_node=8: pool 'train' has 4 GPUs per node"),
        (
            {"nodes": 3, "checkpoint_path": "checkpoints/x"},
            "training_jobs[0].nodes=3: pool 'train' scales to 2 nodes",
        ),
        (
            {"gpus_per_node": 4, "deepspeed": {"micro_batch_size": 8, "train_batch_size": 64}},
            "training_jobs[0].deepspeed.train_batch_size=64: must equal micro_batch_size (8)",
        ),
        ({"nodes": 2}, "training_jobs[0].checkpoint_path=None: a 2-node job restarts as a group"),
        ({"image": "other:1.0"}, "repository 'other' is not one of the platform's registries"),
    ],
)
def test_job_rules_against_the_environment(overrides: dict[str, Any], expected: str) -> None:
    found = problems(job(**overrides))
    assert any(expected in p for p in found), found


def test_duplicate_job_names_are_refused() -> None:
    assert any("already used; job names must be unique" in p for p in problems(job(), job()))


@pytest.mark.parametrize(
    ("overrides", "expected"),
    [
        ({"image": "trainer:latest"}, "':latest' is not a version"),
        ({"image": "trainer"}, "expected REPOSITORY:TAG"),
        ({"name": "Sentiment_Job"}, "must be a DNS label"),
        ({"dataset": "../etc/passwd"}, "expected a path in the artifact store"),
        ({"env": {"MODELPLANE_JOB_NAME": "x"}}, "MODELPLANE_* variables are set by modelplane"),
        ({"deepspeed": {"preset": "nope"}}, "preset='nope': unknown"),
        ({"max_run_minutes": 1}, "greater than or equal to 5"),
        ({"priority": "urgent"}, "Input should be 'low', 'normal' or 'high'"),
    ],
)
def test_spec_field_rules(overrides: dict[str, Any], expected: str) -> None:
    with pytest.raises(ValidationError, match=expected.replace("*", r"\*").replace("(", r"\(")):
        TrainingJobSpec.model_validate(job(**overrides))


def test_image_by_digest_is_accepted() -> None:
    spec = TrainingJobSpec.model_validate(job(image="trainer@sha256:" + "a" * 64))
    assert spec.image.startswith("trainer@sha256:")


def test_priority_and_team_default_to_normal_and_the_platforms_team() -> None:
    spec = TrainingJobSpec.model_validate(job())
    assert spec.priority is TrainingPriority.NORMAL
    assert spec.team is None


def test_priority_and_team_are_read_from_plain_data() -> None:
    spec = TrainingJobSpec.model_validate(job(priority="low", team="research"))
    assert spec.priority is TrainingPriority.LOW
    assert spec.team == "research"
    assert TrainingJobSpec.model_validate(spec.model_dump(mode="json")) == spec


def test_the_declared_labels_flow_from_the_environment_config_to_the_trainers_arguments() -> None:
    from modelplane.workloads.training.kubernetes import trainer_arguments

    env = parse_environment("dev", "us-east-1", environment(job(labels=["negative", " neutral", "positive"])))
    (spec,) = env.training_jobs
    assert spec.labels == ["negative", "neutral", "positive"]
    arguments = trainer_arguments(spec, "s3://b", "/etc/modelplane/deepspeed.json", 9400)
    assert arguments[arguments.index("--labels") + 1] == "negative,neutral,positive"


def test_a_job_without_labels_passes_none_to_the_trainer() -> None:
    from modelplane.workloads.training.kubernetes import trainer_arguments

    (spec,) = parse_environment("dev", "us-east-1", environment(job())).training_jobs
    assert "--labels" not in trainer_arguments(spec, "s3://b", "/etc/ds.json", 9400)


@pytest.mark.parametrize(
    ("labels", "message"),
    [
        (["positive"], "two or more distinct labels"),
        (["a", "b", "a"], "two or more distinct labels"),
        (["a", ""], "'' is not a label"),
        (["a", "b,c"], "'b,c' is not a label"),
    ],
)
def test_a_bad_label_set_is_refused(labels: list[str], message: str) -> None:
    assert any(message in problem for problem in problems(job(labels=labels)))
