"""The pack's config derived from the environment: what `plan` checks with and `up` hands the engine."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from modelplane.plan.pack_config import reconcile
from modelplane.policies.rules.alerting import CRITICAL_RECEIVER
from modelplane.policies.rules.budget import GPU_COST_WITHIN_BUDGET, GPU_COUNT_WITHIN_BUDGET
from modelplane.policies.rules.catalog import pack_policies
from modelplane.policies.rules.workloads import REQUIRE_PLATFORM_REGISTRY
from modelplane.policy_config import (
    POLICY_PACK_DIR,
    environment_policy_config,
    pack_config,
    policy_config_file,
    write_pack_config,
)
from modelplane.stack_config import environment_from_stack_file, read_stack_file

STACKS = Path(__file__).resolve().parents[2] / "stacks"


def test_budget_and_receivers_come_from_the_environment() -> None:
    env = environment_from_stack_file(read_stack_file("prod", STACKS))
    config = environment_policy_config(env)
    assert config[GPU_COUNT_WITHIN_BUDGET.name] == {"maxGpus": env.budget.max_gpus}
    assert config[GPU_COST_WITHIN_BUDGET.name]["maxMonthlyGpuCostUsd"] == env.budget.max_monthly_gpu_cost_usd
    assert config[CRITICAL_RECEIVER.name] == {"criticalReceivers": ["oncall-pagerduty", "team-slack"]}


def test_pack_config_keeps_the_files_levels_and_adds_the_environments_facts() -> None:
    env = environment_from_stack_file(read_stack_file("dev", STACKS))
    shipped = json.loads((POLICY_PACK_DIR / "config" / "dev.json").read_text())
    config = pack_config(env)
    assert config["all"] == shipped["all"]
    assert config[GPU_COUNT_WITHIN_BUDGET.name] == {"maxGpus": 2}


def test_written_config_is_what_the_engine_reads(tmp_path: Path) -> None:
    env = environment_from_stack_file(read_stack_file("staging", STACKS))
    path = write_pack_config(env, tmp_path / "staging")
    assert path == tmp_path / "staging" / "policy-config.json"
    assert json.loads(path.read_text()) == pack_config(env)


def test_an_environment_without_a_file_of_its_own_gets_the_new_environment_levels() -> None:
    assert policy_config_file("dev") == POLICY_PACK_DIR / "config" / "dev.json"
    assert policy_config_file("sandbox") == POLICY_PACK_DIR / "config" / "default.json"


@pytest.mark.parametrize("environment", ["dev", "staging", "prod"])
def test_images_must_come_from_the_environments_own_registry(environment: str) -> None:
    env = environment_from_stack_file(read_stack_file(environment, STACKS))
    (pattern,) = pack_config(env)[REQUIRE_PLATFORM_REGISTRY.name]["allowedRegistries"]
    own = f"123456789012.dkr.ecr.{env.region}.amazonaws.com/modelplane-{environment}/trainer:1.0"
    assert re.match(pattern, own)
    assert not re.match(pattern, own.replace(f"modelplane-{environment}/", "modelplane-other/"))
    assert not re.match(pattern, own.replace(env.region, "eu-west-3"))


@pytest.mark.parametrize("environment", ["dev", "staging", "prod"])
def test_the_generated_config_is_what_the_engine_accepts(environment: str) -> None:
    env = environment_from_stack_file(read_stack_file(environment, STACKS))
    settings = reconcile(pack_policies(), pack_config(env))
    assert settings[GPU_COUNT_WITHIN_BUDGET.name].properties == {"maxGpus": env.budget.max_gpus}
