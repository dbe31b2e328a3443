"""The policy pack's config for one environment: its file's enforcement levels plus the facts derived from
the environment's own config (budgets, receivers), so those facts have one home.

The pack reads nothing but this config (CrossGuard's `--policy-pack-config`): `modelplane plan` checks with it
offline and writes it to `build/ENV/policy-config.json`; `modelplane up`/`preview` hand that file to the engine.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import modelplane.policies
from modelplane.config import EnvironmentConfig
from modelplane.policies.rules.alerting import CRITICAL_RECEIVER
from modelplane.policies.rules.budget import GPU_COST_WITHIN_BUDGET, GPU_COUNT_WITHIN_BUDGET

POLICY_PACK_DIR = Path(modelplane.policies.__file__).parent / "modelplane_platform"
STRICTEST_ENVIRONMENT = "prod"
"""An environment without a policy config file of its own is checked as prod is."""
POLICY_CONFIG_FILE = "policy-config.json"


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


def policy_config_file(environment: str, pack_dir: Path = POLICY_PACK_DIR) -> Path:
    """The environment's shipped levels (`config/ENV.json`), else prod's."""
    path = pack_dir / "config" / f"{environment}.json"
    return path if path.is_file() else pack_dir / "config" / f"{STRICTEST_ENVIRONMENT}.json"


def pack_config(env: EnvironmentConfig, config_file: Path | None = None) -> dict[str, Any]:
    """The pack config the engine gets: the environment's file, plus the values derived from `env`."""
    config: dict[str, Any] = json.loads((config_file or policy_config_file(env.name)).read_text())
    for rule, properties in environment_policy_config(env).items():
        entry = config.get(rule)
        config[rule] = {**(entry if isinstance(entry, dict) else {}), **properties}
    return config


def write_pack_config(env: EnvironmentConfig, out_dir: Path) -> Path:
    """`out_dir/policy-config.json`, for `pulumi up --policy-pack-config`."""
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / POLICY_CONFIG_FILE
    path.write_text(json.dumps(pack_config(env), indent=2, sort_keys=True) + "\n")
    return path
