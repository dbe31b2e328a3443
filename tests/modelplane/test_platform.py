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


def test_queues_cover_the_pools_training_runs_on_less_what_serving_takes() -> None:
    env = environment_from_stack_file(read_stack_file("prod", STACKS))
    assert {flavor.pool: flavor.gpus_at_max for flavor in env.queue_flavors()} == {"train-h100": 32}
    (service,) = env.inference_services
    assert env.serving_gpus_at_max("infer-l40s") == service.replicas.max + 1  # the canary's replica
    shared = env.model_copy(
        update={"training_jobs": [env.training_jobs[0].model_copy(update={"gpu_pool": "infer-l40s"})]}
    )
    flavors = {flavor.pool: flavor.gpus_at_max for flavor in shared.queue_flavors()}
    assert flavors["infer-l40s"] == env.gpu_pool("infer-l40s").max_size - env.serving_gpus_at_max("infer-l40s")


def test_without_teams_one_default_team_holds_every_queued_gpu() -> None:
    env = environment_from_stack_file(read_stack_file("staging", STACKS))
    (team,) = env.effective_teams()
    assert team.name == "ml"
    assert team.gpu_quota == {flavor.pool: flavor.gpus_at_max for flavor in env.queue_flavors()}
