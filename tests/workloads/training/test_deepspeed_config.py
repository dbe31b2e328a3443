from __future__ import annotations

import pytest
from pydantic import ValidationError

from modelplane.workloads.training.deepspeed_config import (
    PRESETS,
    DeepSpeedSettings,
    OffloadDevice,
    OptimizerSettings,
    Precision,
    batch_problem,
    ds_config_for,
    settings_from,
)


def test_batch_arithmetic_adds_up_across_the_world() -> None:
    settings = DeepSpeedSettings(micro_batch_size=8, gradient_accumulation_steps=4)
    config = ds_config_for(settings, world_size=16)
    assert config["train_batch_size"] == 8 * 4 * 16
    assert config["train_micro_batch_size_per_gpu"] == 8
    assert config["gradient_accumulation_steps"] == 4


def test_declared_global_batch_must_match() -> None:
    settings = DeepSpeedSettings(micro_batch_size=8, train_batch_size=100)
    problem = batch_problem(settings, 4)
    assert problem is not None
    assert (
        "train_batch_size=100: must equal micro_batch_size (8) x gradient_accumulation_steps (1) x GPUs (4) = 32"
        in problem
    )
    with pytest.raises(ValueError, match="train_batch_size=100"):
        ds_config_for(settings, 4)
    assert batch_problem(DeepSpeedSettings(micro_batch_size=8, train_batch_size=32), 4) is None


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"zero_stage": 1, "offload_optimizer": "cpu"}, "offload_optimizer='cpu' needs zero_stage >= 2"),
        ({"zero_stage": 2, "offload_params": "cpu"}, "offload_params='cpu' needs zero_stage 3"),
        ({"zero_stage": 2, "offload_optimizer": "nvme"}, "NVMe offload needs zero_stage 3"),
        ({"scheduler": {"type": "WarmupDecayLR"}}, "needs scheduler.total_steps"),
        (
            {"scheduler": {"type": "WarmupCosineLR", "warmup_steps": 50, "total_steps": 10}},
            "must not exceed total_steps",
        ),
        ({"zero_stage": 4}, "less than or equal to 3"),
        ({"precision": "fp8"}, "Input should be 'fp32', 'bf16' or 'fp16'"),
        ({"micro_batch_size": 0}, "greater than or equal to 1"),
    ],
)
def test_invalid_combinations_are_refused(fields: dict[str, object], message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        DeepSpeedSettings.model_validate(fields)


def test_precision_flags_are_exclusive() -> None:
    for precision in Precision:
        config = ds_config_for(DeepSpeedSettings(precision=precision), 1)
        assert config["bf16"]["enabled"] == (precision is Precision.BF16)
        assert config["fp16"]["enabled"] == (precision is Precision.FP16)
        assert not (config["bf16"]["enabled"] and config["fp16"]["enabled"])


def test_zero3_offload_renders_offload_and_gathers_weights_for_export() -> None:
    config = ds_config_for(PRESETS["zero3-offload"], 8)
    zero = config["zero_optimization"]
    assert zero["stage"] == 3
    assert zero["offload_optimizer"]["device"] == "cpu"
    assert zero["offload_param"]["device"] == "cpu"
    assert zero["stage3_gather_16bit_weights_on_model_save"] is True


def test_presets_are_valid_for_one_and_many_gpus() -> None:
    for settings in PRESETS.values():
        for world_size in (1, 8, 64):
            assert ds_config_for(settings, world_size)["train_batch_size"] >= world_size


def test_settings_from_preset_with_overrides() -> None:
    settings = settings_from({"preset": "zero2-bf16", "micro_batch_size": 4, "offload_optimizer": "cpu"})
    assert settings.zero_stage == 2
    assert settings.micro_batch_size == 4
    assert settings.offload_optimizer is OffloadDevice.CPU
    with pytest.raises(ValueError, match="preset='zero9': unknown; presets: ddp-bf16"):
        settings_from({"preset": "zero9"})


def test_optimizer_and_scheduler_render() -> None:
    config = ds_config_for(DeepSpeedSettings(optimizer=OptimizerSettings(type="AdamW", lr=1e-4)), 2)
    assert config["optimizer"] == {
        "type": "AdamW",
        "params": {"lr": 1e-4, "weight_decay": 0.01, "betas": [0.9, 0.999]},
    }
    assert config["scheduler"]["params"]["warmup_max_lr"] == 1e-4
    assert "scheduler" not in ds_config_for(PRESETS["cpu-fp32"], 1)
