"""The DeepSpeed configuration modelplane supports: a typed, validated model rendered to DeepSpeed's JSON.

Only the keys below are exposed; each combination DeepSpeed would reject at start-up (or
silently mis-train with) is refused here, at plan time, naming the field.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator


class Precision(StrEnum):
    FP32 = "fp32"
    BF16 = "bf16"
    """Ampere and newer (A10G, L4, L40S, A100, H100, H200): no loss scaling needed."""
    FP16 = "fp16"
    """Older GPUs (T4g); uses dynamic loss scaling."""


class OffloadDevice(StrEnum):
    NONE = "none"
    CPU = "cpu"
    NVME = "nvme"


class OptimizerSettings(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    type: Literal["AdamW", "Adam", "SGD"] = "AdamW"
    lr: float = Field(default=3e-5, gt=0, le=1)
    weight_decay: float = Field(default=0.01, ge=0, le=1)
    betas: tuple[float, float] = (0.9, 0.999)


class SchedulerSettings(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    type: Literal["WarmupLR", "WarmupDecayLR", "WarmupCosineLR"] = "WarmupLR"
    warmup_steps: int = Field(default=100, ge=0)
    total_steps: int | None = Field(default=None, gt=0)
    """Required by the decaying schedules."""


class DeepSpeedSettings(BaseModel):
    """What a training job says about DeepSpeed; `ds_config_for` renders it for a world size."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    zero_stage: int = Field(default=2, ge=0, le=3)
    precision: Precision = Precision.BF16
    offload_optimizer: OffloadDevice = OffloadDevice.NONE
    offload_params: OffloadDevice = OffloadDevice.NONE
    micro_batch_size: int = Field(default=16, ge=1)
    """Samples per GPU per forward pass."""
    gradient_accumulation_steps: int = Field(default=1, ge=1)
    train_batch_size: int | None = Field(default=None, ge=1)
    """Global batch; when given it must equal micro_batch_size x gradient_accumulation_steps x GPUs."""
    gradient_clipping: float = Field(default=1.0, ge=0)
    optimizer: OptimizerSettings = OptimizerSettings()
    scheduler: SchedulerSettings | None = SchedulerSettings()

    @model_validator(mode="after")
    def _consistent(self) -> DeepSpeedSettings:
        problems = settings_problems(self)
        if problems:
            raise ValueError("; ".join(problems))
        return self


def settings_problems(settings: DeepSpeedSettings) -> list[str]:
    problems = []
    if settings.offload_optimizer is not OffloadDevice.NONE and settings.zero_stage < 2:
        problems.append(
            f"offload_optimizer={settings.offload_optimizer.value!r} needs zero_stage >= 2 (got {settings.zero_stage})"
        )
    if settings.offload_params is not OffloadDevice.NONE and settings.zero_stage != 3:
        problems.append(
            f"offload_params={settings.offload_params.value!r} needs zero_stage 3 (got {settings.zero_stage})"
        )
    nvme = OffloadDevice.NVME in (settings.offload_optimizer, settings.offload_params)
    if nvme and settings.zero_stage != 3:
        problems.append("NVMe offload needs zero_stage 3")
    scheduler = settings.scheduler
    if scheduler is not None and scheduler.type != "WarmupLR" and scheduler.total_steps is None:
        problems.append(f"scheduler.type={scheduler.type!r} needs scheduler.total_steps")
    if scheduler is not None and scheduler.total_steps is not None and scheduler.warmup_steps > scheduler.total_steps:
        problems.append(
            f"scheduler.warmup_steps={scheduler.warmup_steps}: must not exceed total_steps ({scheduler.total_steps})"
        )
    return problems


def batch_problem(settings: DeepSpeedSettings, world_size: int) -> str | None:
    """Why the batch arithmetic fails for `world_size` GPUs, or None."""
    if world_size < 1:
        return f"world size {world_size}: need at least one process"
    derived = settings.micro_batch_size * settings.gradient_accumulation_steps * world_size
    if settings.train_batch_size is not None and settings.train_batch_size != derived:
        return (
            f"train_batch_size={settings.train_batch_size}: must equal micro_batch_size ({settings.micro_batch_size})"
            f" x gradient_accumulation_steps ({settings.gradient_accumulation_steps}) x GPUs ({world_size}) = {derived}"
        )
    return None


def _offload(device: OffloadDevice, nvme_path: str = "/local_nvme") -> dict[str, Any]:
    config: dict[str, Any] = {"device": device.value, "pin_memory": True}
    if device is OffloadDevice.NVME:
        config["nvme_path"] = nvme_path
    return config


def ds_config_for(settings: DeepSpeedSettings, world_size: int) -> dict[str, Any]:
    """DeepSpeed's JSON config for `settings` on `world_size` processes; ValueError when the batch does not add up."""
    problem = batch_problem(settings, world_size)
    if problem:
        raise ValueError(problem)
    zero: dict[str, Any] = {"stage": settings.zero_stage}
    if settings.zero_stage >= 2:
        zero.update({"overlap_comm": True, "contiguous_gradients": True})
    if settings.offload_optimizer is not OffloadDevice.NONE:
        zero["offload_optimizer"] = _offload(settings.offload_optimizer)
    if settings.offload_params is not OffloadDevice.NONE:
        zero["offload_param"] = _offload(settings.offload_params)
    if settings.zero_stage == 3:
        # Export needs whole weights: gather them on save rather than leave only shards.
        zero["stage3_gather_16bit_weights_on_model_save"] = True
    optimizer = settings.optimizer
    config: dict[str, Any] = {
        "train_batch_size": settings.micro_batch_size * settings.gradient_accumulation_steps * world_size,
        "train_micro_batch_size_per_gpu": settings.micro_batch_size,
        "gradient_accumulation_steps": settings.gradient_accumulation_steps,
        "gradient_clipping": settings.gradient_clipping,
        "zero_optimization": zero,
        "optimizer": {
            "type": optimizer.type,
            "params": {"lr": optimizer.lr, "weight_decay": optimizer.weight_decay}
            | ({"betas": list(optimizer.betas)} if optimizer.type != "SGD" else {}),
        },
        "bf16": {"enabled": settings.precision is Precision.BF16},
        "fp16": {"enabled": settings.precision is Precision.FP16}
        | ({"loss_scale": 0, "initial_scale_power": 16} if settings.precision is Precision.FP16 else {}),
        "steps_per_print": 100,
        "wall_clock_breakdown": False,
    }
    if settings.scheduler is not None:
        params: dict[str, Any] = {
            "warmup_min_lr": 0,
            "warmup_max_lr": optimizer.lr,
            "warmup_num_steps": settings.scheduler.warmup_steps,
        }
        if settings.scheduler.total_steps is not None and settings.scheduler.type != "WarmupLR":
            params["total_num_steps"] = settings.scheduler.total_steps
        config["scheduler"] = {"type": settings.scheduler.type, "params": params}
    return config


PRESETS: dict[str, DeepSpeedSettings] = {
    "ddp-bf16": DeepSpeedSettings(zero_stage=0, precision=Precision.BF16),
    "zero2-bf16": DeepSpeedSettings(zero_stage=2, precision=Precision.BF16),
    "zero3-offload": DeepSpeedSettings(
        zero_stage=3, precision=Precision.BF16, offload_optimizer=OffloadDevice.CPU, offload_params=OffloadDevice.CPU
    ),
    "cpu-fp32": DeepSpeedSettings(zero_stage=0, precision=Precision.FP32, micro_batch_size=8, scheduler=None),
}
"""Named starting points; a job's `deepspeed` block may name one (`preset`) and override fields."""


def settings_from(raw: dict[str, Any]) -> DeepSpeedSettings:
    """A job's `deepspeed` block: an optional `preset` name plus field overrides."""
    fields = dict(raw)
    preset_name = fields.pop("preset", None)
    if preset_name is None:
        return DeepSpeedSettings.model_validate(fields)
    if preset_name not in PRESETS:
        raise ValueError(f"preset={preset_name!r}: unknown; presets: {', '.join(PRESETS)}")
    base = PRESETS[preset_name].model_dump()
    base.update(fields)
    return DeepSpeedSettings.model_validate(base)
