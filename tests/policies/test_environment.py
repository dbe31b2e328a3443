"""Policy config derived from the environment: what `plan` uses, and what the pack reads under `pulumi up`."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from modelplane.policies.rules.alerting import CRITICAL_RECEIVER
from modelplane.policies.rules.budget import GPU_COST_WITHIN_BUDGET, GPU_COUNT_WITHIN_BUDGET
from modelplane.policies.rules.environment import environment_policy_config, running_stack_policy_config
from modelplane.stack_config import environment_from_stack_file, read_stack_file

STACKS = Path(__file__).resolve().parents[2] / "stacks"


def test_budget_and_receivers_come_from_the_environment() -> None:
    env = environment_from_stack_file(read_stack_file("prod", STACKS))
    config = environment_policy_config(env)
    assert config[GPU_COUNT_WITHIN_BUDGET.name] == {"maxGpus": env.budget.max_gpus}
    assert config[GPU_COST_WITHIN_BUDGET.name]["maxMonthlyGpuCostUsd"] == env.budget.max_monthly_gpu_cost_usd
    assert config[CRITICAL_RECEIVER.name] == {"criticalReceivers": ["oncall-pagerduty", "team-slack"]}


def test_pack_reads_the_stack_config_the_engine_hands_it(monkeypatch: pytest.MonkeyPatch) -> None:
    stack_file = read_stack_file("dev", STACKS)
    monkeypatch.setenv("PULUMI_STACK", "dev")
    monkeypatch.setenv("PULUMI_CONFIG", json.dumps(stack_file.engine_config()))
    config = running_stack_policy_config()
    assert config[GPU_COUNT_WITHIN_BUDGET.name] == {"maxGpus": 2}


def test_pack_without_stack_config_derives_nothing(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("PULUMI_STACK", raising=False)
    monkeypatch.delenv("PULUMI_CONFIG", raising=False)
    assert running_stack_policy_config() == {}
