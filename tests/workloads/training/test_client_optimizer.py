from __future__ import annotations

import pytest
import torch

from modelplane.workloads.training.trainer.config import TrainerConfig
from modelplane.workloads.training.trainer.train import client_optimizer

REQUIRED = {
    "job_name": "j",
    "dataset_uri": "d.jsonl",
    "checkpoint_uri": "c",
    "model_uri": "m",
    "deepspeed_config": "ds.json",
    "base_model": "b",
}


def test_the_config_optimizer_becomes_a_torch_optimizer() -> None:
    model = torch.nn.Linear(2, 2)
    config = {"optimizer": {"type": "AdamW", "params": {"lr": 0.01, "weight_decay": 0.1, "betas": [0.8, 0.9]}}, "x": 1}
    remaining, optimizer = client_optimizer(config, model, default_lr=5e-5)
    assert remaining == {"x": 1}
    assert isinstance(optimizer, torch.optim.AdamW)
    group = optimizer.param_groups[0]
    assert (group["lr"], group["weight_decay"], group["betas"]) == (0.01, 0.1, (0.8, 0.9))


def test_without_a_section_the_default_learning_rate_is_used() -> None:
    _, optimizer = client_optimizer({}, torch.nn.Linear(2, 2), default_lr=3e-4)
    assert optimizer.param_groups[0]["lr"] == 3e-4


def test_optimizer_offload_keeps_deepspeeds_own_optimizer() -> None:
    config = {"zero_optimization": {"stage": 3, "offload_optimizer": {"device": "cpu"}}, "optimizer": {"type": "AdamW"}}
    remaining, optimizer = client_optimizer(config, torch.nn.Linear(2, 2), default_lr=1e-3)
    assert optimizer is None
    assert remaining is config


def test_unknown_optimizer_is_named() -> None:
    with pytest.raises(ValueError, match=r"optimizer\.type='Lamb': use one of AdamW, Adam, SGD"):
        client_optimizer({"optimizer": {"type": "Lamb"}}, torch.nn.Linear(2, 2), default_lr=1e-3)


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [("restart_budget", -1, "restart_budget=-1: must be at least 0"), ("max_run_minutes", 0, "max_run_minutes=0")],
)
def test_budget_and_deadline_settings_are_checked(field: str, value: int, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        TrainerConfig(**REQUIRED, **{field: value})  # type: ignore[arg-type]


def test_budget_and_deadline_come_from_the_environment_kubernetes_sets() -> None:
    environ = {f"MODELPLANE_{k.upper()}": v for k, v in REQUIRED.items()}
    config = TrainerConfig.from_args(
        [], {**environ, "MODELPLANE_RESTART_BUDGET": "2", "MODELPLANE_MAX_RUN_MINUTES": "90"}
    )
    assert (config.restart_budget, config.max_run_minutes) == (2, 90)


def test_a_lone_fp32_process_on_cpu_skips_the_identity_all_reduce_and_gets_cpu_dropout(one_rank: None) -> None:
    from modelplane.workloads.training.trainer import distributed
    from modelplane.workloads.training.trainer.cpu_dropout import CpuDropout
    from modelplane.workloads.training.trainer.distributed import Ranks
    from modelplane.workloads.training.trainer.train import fill_missing_gradients, initialize_engine

    ranks = Ranks.from_env()
    distributed.init_process_group(ranks, 60)
    model = torch.nn.Sequential(torch.nn.Linear(4, 4), torch.nn.Dropout(0.1), torch.nn.Linear(4, 2))
    config = {"train_micro_batch_size_per_gpu": 2, "zero_optimization": {"stage": 0}}
    engine = initialize_engine(model, torch.optim.SGD(model.parameters(), lr=0.1), config, ranks)
    assert engine.enable_backward_allreduce is False
    assert type(engine.module[1]) is CpuDropout

    unused = torch.nn.Linear(2, 2)
    fill_missing_gradients(unused)
    assert all(p.grad is not None and not p.grad.any() for p in unused.parameters())
