"""Policy config derived from the environment's own config, so the budget and receivers have one home.

`modelplane plan` derives it from the EnvironmentConfig it planned; under `pulumi up` the pack derives
it from the stack config the engine hands every policy pack (PULUMI_STACK and PULUMI_CONFIG).
"""

from __future__ import annotations

import json
import os
from typing import Any

from pulumi.runtime.config import get_config_env
from pulumi_policy import EnforcementLevel

from modelplane.config import CONFIG_NAMESPACE, SECTIONS, ConfigError, EnvironmentConfig, parse_environment
from policies.rules.alerting import CRITICAL_RECEIVER
from policies.rules.budget import GPU_COST_WITHIN_BUDGET, GPU_COUNT_WITHIN_BUDGET

PackConfig = dict[str, EnforcementLevel | dict[str, Any]]


def environment_policy_config(env: EnvironmentConfig) -> dict[str, dict[str, Any]]:
    """Per-rule config properties that restate nothing: each value is read from `env`."""
    rates = {pool.name: pool.usd_per_hour for pool in env.gpu_node_pools if pool.usd_per_hour is not None}
    return {
        GPU_COUNT_WITHIN_BUDGET.name: {"maxGpus": env.budget.max_gpus},
        GPU_COST_WITHIN_BUDGET.name: {
            "maxMonthlyGpuCostUsd": env.budget.max_monthly_gpu_cost_usd,
            "hourlyRates": rates,
        },
        CRITICAL_RECEIVER.name: {
            "criticalReceivers": [r.name for r in env.monitoring.receivers if "critical" in r.severities]
        },
    }


def _decoded(value: str) -> Any:
    try:
        return json.loads(value)
    except json.JSONDecodeError:
        return value


def running_stack_policy_config() -> PackConfig:
    """The derived config of the stack the engine runs the pack for; {} when there is none to read."""
    stack = os.environ.get("PULUMI_STACK")
    values = {key.replace(":config:", ":"): value for key, value in get_config_env().items()}
    prefix = f"{CONFIG_NAMESPACE}:"
    sections = {
        key.removeprefix(prefix): _decoded(value)
        for key, value in values.items()
        if key.startswith(prefix) and key.removeprefix(prefix) in SECTIONS
    }
    if not stack or not sections:
        return {}
    try:
        env = parse_environment(stack, values.get("aws:region"), sections)
    except ConfigError:
        return {}
    return dict(environment_policy_config(env))
