"""Decisions the platform composition makes from the environment, tested without Pulumi."""

from __future__ import annotations

from pathlib import Path

from modelplane.components.karpenter_pools import PoolKind
from modelplane.platform import pool_kind
from modelplane.stack_config import environment_from_stack_file, read_stack_file

STACKS = Path(__file__).resolve().parents[2] / "stacks"


def test_a_pool_some_training_job_uses_is_a_training_pool() -> None:
    env = environment_from_stack_file(read_stack_file("prod", STACKS))
    assert pool_kind(env, "train-h100") is PoolKind.TRAINING
    assert pool_kind(env, "infer-l40s") is PoolKind.INFERENCE


def test_queued_gpus_leave_room_for_serving_at_its_max() -> None:
    env = environment_from_stack_file(read_stack_file("prod", STACKS))
    flavors = {flavor.pool: flavor.gpus_at_max for flavor in env.queue_flavors()}
    (service,) = env.inference_services
    infer = env.gpu_pool("infer-l40s")
    assert env.serving_gpus_at_max("infer-l40s") >= service.replicas.max
    assert flavors["infer-l40s"] == infer.max_size - env.serving_gpus_at_max("infer-l40s")
    assert flavors["train-h100"] == 32


def test_without_teams_one_default_team_holds_every_queued_gpu() -> None:
    env = environment_from_stack_file(read_stack_file("staging", STACKS))
    (team,) = env.effective_teams()
    assert team.name == "ml"
    assert team.gpu_quota == {flavor.pool: flavor.gpus_at_max for flavor in env.queue_flavors()}
