"""The policy pack's config for one environment: its file's enforcement levels plus the facts derived from
the environment's own config (budgets, receivers), so those facts have one home.

The pack reads nothing but this config (CrossGuard's `--policy-pack-config`): `modelplane plan` checks with it
offline and writes it to `build/ENV/policy-config.json`; `modelplane up`/`preview` hand that file to the engine.

An environment without a levels file of its own (a copy of dev, say, as the README's recipe makes one) gets
`config/default.json`: every rule mandatory but two a copy of dev cannot meet by design: its public API endpoint
(which config validation already keeps to the deployers' CIDRs) is left to the environment's own file, and a missing
critical receiver is advice. Its facts (budget, registries, receivers) come from its own config
like any other's, and its GPU types default to the catalog's single-GPU ones until `config/ENV.json` lists more.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import modelplane.policies
from modelplane.config import EnvironmentConfig
from modelplane.platform import registry_prefix
from modelplane.policies.rules.alerting import CRITICAL_RECEIVER
from modelplane.policies.rules.budget import GPU_COST_WITHIN_BUDGET, GPU_COUNT_WITHIN_BUDGET
from modelplane.policies.rules.catalog import NEW_ENVIRONMENT
from modelplane.policies.rules.workloads import REQUIRE_PLATFORM_REGISTRY

POLICY_PACK_DIR = Path(modelplane.policies.__file__).parent / "modelplane_platform"
POLICY_CONFIG_FILE = "policy-config.json"


def environment_policy_config(env: EnvironmentConfig) -> dict[str, dict[str, Any]]:
    """Per-rule config properties that restate nothing: each value is read from `env`."""
    rates = {pool.name: pool.usd_per_hour for pool in env.gpu_node_pools if pool.usd_per_hour is not None}
    return {
        REQUIRE_PLATFORM_REGISTRY.name: {"allowedRegistries": [registry_pattern(env)]},
        GPU_COUNT_WITHIN_BUDGET.name: {"maxGpus": env.budget.max_gpus},
        GPU_COST_WITHIN_BUDGET.name: {
            "maxMonthlyGpuCostUsd": env.budget.max_monthly_gpu_cost_usd,
            "hourlyRates": rates,
        },
        CRITICAL_RECEIVER.name: {
            "criticalReceivers": [r.name for r in env.monitoring.receivers if "critical" in r.severities]
        },
    }


def registry_pattern(env: EnvironmentConfig) -> str:
    """The images the environment's own registry holds: its repositories, in any account, in its region."""
    host = re.escape(f".dkr.ecr.{env.region}.amazonaws.com/{registry_prefix(env)}/")
    return f"^[0-9]{{12}}{host}"


def policy_config_file(environment: str, pack_dir: Path = POLICY_PACK_DIR) -> Path:
    """The environment's shipped levels (`config/ENV.json`), else those of a new environment."""
    path = pack_dir / "config" / f"{environment}.json"
    return path if path.is_file() else pack_dir / "config" / f"{NEW_ENVIRONMENT}.json"


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
