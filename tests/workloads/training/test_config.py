from __future__ import annotations

import json
from pathlib import Path

import pytest

from modelplane.workloads.training.trainer.config import TrainerConfig, load_deepspeed_config

REQUIRED = {
    "job_name": "sentiment",
    "dataset_uri": "s3://data/train.jsonl",
    "checkpoint_uri": "/checkpoints",
    "model_uri": "s3://models/sentiment",
    "deepspeed_config": "/etc/deepspeed/ds_config.json",
    "base_model": "/models/minilm",
}


def required_flags() -> list[str]:
    return [part for name, value in REQUIRED.items() for part in ("--" + name.replace("_", "-"), value)]


def test_flags_fill_the_config_and_defaults_apply() -> None:
    config = TrainerConfig.from_args(required_flags(), environ={})
    assert config.job_name == "sentiment"
    assert config.eval_fraction == 0.1
    assert config.max_steps is None
    assert config.progress is True
    assert config.holds_out_eval


def test_environment_fills_what_flags_leave_out_and_flags_win() -> None:
    environ = {f"MODELPLANE_{name.upper()}": value for name, value in REQUIRED.items()}
    environ |= {"MODELPLANE_MAX_STEPS": "20", "MODELPLANE_PROGRESS": "false", "MODELPLANE_EVAL_FRACTION": "0.2"}
    config = TrainerConfig.from_args(["--max-steps", "30", "--no-progress"], environ=environ)
    assert config.max_steps == 30
    assert config.progress is False
    assert config.eval_fraction == 0.2
    assert config.model_uri == "s3://models/sentiment"


def test_bundled_minilm_is_the_default_base_model() -> None:
    flags = [flag for flag in required_flags() if flag not in ("--base-model", "/models/minilm")]
    config = TrainerConfig.from_args(flags, environ={})
    assert (Path(config.base_model) / "config.json").is_file()
    assert (Path(config.base_model) / "model.safetensors").is_file()


def test_a_missing_required_field_names_its_flag_and_variable() -> None:
    flags = required_flags()[2:]  # drop --job-name
    with pytest.raises(ValueError, match="job_name: required; pass --job-name or set MODELPLANE_JOB_NAME"):
        TrainerConfig.from_args(flags, environ={})


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"job_name": "Sentiment_Job"}, "job_name='Sentiment_Job': must be a Kubernetes name"),
        ({"eval_fraction": 1.0}, "eval_fraction=1.0: must be at least 0 and below 1"),
        ({"epochs": 0}, "epochs=0: must be at least 1"),
        ({"max_steps": 0}, "max_steps=0: must be at least 1"),
        ({"checkpoint_every_steps": 0}, "checkpoint_every_steps=0"),
        ({"keep_checkpoints": 0}, "keep_checkpoints=0"),
        ({"learning_rate": 0.0}, "learning_rate=0.0: must be a positive number"),
        ({"max_length": 1}, "max_length=1: must be at least 2"),
        ({"metrics_port": 70000}, "metrics_port=70000: must be a TCP port"),
        ({"model_uri": ""}, "model_uri: required"),
    ],
)
def test_bad_values_are_rejected_naming_the_field(overrides: dict[str, object], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        TrainerConfig(**{**REQUIRED, **overrides})  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("variable", "value", "message"),
    [
        ("MODELPLANE_EPOCHS", "three", "MODELPLANE_EPOCHS='three': must be an integer"),
        ("MODELPLANE_EVAL_FRACTION", "10%", "MODELPLANE_EVAL_FRACTION='10%': must be a number"),
        ("MODELPLANE_PROGRESS", "maybe", "MODELPLANE_PROGRESS='maybe': must be true or false"),
    ],
)
def test_bad_environment_values_name_the_variable(variable: str, value: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        TrainerConfig.from_args(required_flags(), environ={variable: value})


def test_deepspeed_config_must_give_concrete_batch_sizes(tmp_path: Path) -> None:
    path = tmp_path / "ds.json"
    path.write_text(json.dumps({"train_micro_batch_size_per_gpu": "auto"}))
    with pytest.raises(ValueError, match="train_micro_batch_size_per_gpu='auto' must be a positive integer"):
        load_deepspeed_config(str(path), 1)
    path.write_text(json.dumps({"zero_optimization": {"stage": 2}}))
    with pytest.raises(ValueError, match="set train_micro_batch_size_per_gpu or train_batch_size"):
        load_deepspeed_config(str(path), 1)
    with pytest.raises(FileNotFoundError, match="no such file"):
        load_deepspeed_config(str(tmp_path / "missing.json"), 1)
    path.write_text(json.dumps({"train_micro_batch_size_per_gpu": 8, "gradient_accumulation_steps": 2}))
    assert load_deepspeed_config(str(path), 1)["gradient_accumulation_steps"] == 2
