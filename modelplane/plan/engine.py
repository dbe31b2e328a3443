"""Plan an environment offline: validate its config, run the real stack program under mocks, record the result."""

from __future__ import annotations

import json
import runpy
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from modelplane.config import EnvironmentConfig
from modelplane.plan.cost import CostReport, cost_report
from modelplane.plan.harness import run_under_mocks
from modelplane.plan.manifests import kubernetes_manifests, write_manifests
from modelplane.plan.mocks import RecordedResource
from modelplane.plan.rules import RuleFile, rule_files, write_rule_files
from modelplane.stack_config import environment_from_stack_file, read_stack_file, with_secret_placeholders

PLAN_SCHEMA_VERSION = 1


@dataclass
class Plan:
    environment: str
    config: EnvironmentConfig
    resources: list[RecordedResource]
    cost: CostReport
    extras: dict[str, Any] = field(default_factory=dict)
    """Sections later stages add to plan.json (rules, violations, ...)."""

    def manifests(self) -> list[dict[str, Any]]:
        return kubernetes_manifests(self.resources)

    def rule_files(self) -> list[RuleFile]:
        return rule_files(self.resources)

    def to_json(self) -> dict[str, Any]:
        return {
            "schema_version": PLAN_SCHEMA_VERSION,
            "environment": self.environment,
            "resources": [
                {
                    "urn": r.urn,
                    "type": r.type,
                    "name": r.name,
                    "parent": r.parent,
                    "custom": r.custom,
                    "provider": r.provider,
                    "inputs": r.inputs,
                    "dependencies": r.dependencies,
                }
                for r in self.resources
            ],
            "cost": self.cost.to_json(),
            "rules": [rule_file.summary() for rule_file in self.rule_files()],
            **self.extras,
        }


def stack_program(stacks_dir: Path) -> Path:
    return stacks_dir / "__main__.py"


def plan_environment(environment: str, stacks_dir: Path) -> Plan:
    """Plan `environment` from `stacks_dir`; raises ConfigError before any resource on bad config."""
    stack_file = read_stack_file(environment, stacks_dir)
    env = environment_from_stack_file(stack_file)
    stack_file, unset_secrets = with_secret_placeholders(stack_file, env.monitoring.secret_keys())
    program = stack_program(stacks_dir)
    resources = run_under_mocks(
        lambda: runpy.run_path(str(program), run_name="__main__"),
        stack=environment,
        config=stack_file.engine_config(),
        region=env.region,
        secret_keys=stack_file.secret_keys,
    )
    return Plan(
        environment=environment,
        config=env,
        resources=resources,
        cost=cost_report(env),
        extras={"unset_secrets": [f"modelplane:{name}" for name in unset_secrets]},
    )


@dataclass(frozen=True)
class PlanFiles:
    plan_json: Path
    manifests: list[Path]
    rules: list[Path]


def write_plan(plan: Plan, build_dir: Path) -> PlanFiles:
    """Write `build/ENV/plan.json`, `build/ENV/manifests/*.yaml` and `build/ENV/rules/*.yml`."""
    out = build_dir / plan.environment
    out.mkdir(parents=True, exist_ok=True)
    plan_json = out / "plan.json"
    plan_json.write_text(json.dumps(plan.to_json(), indent=2, sort_keys=False) + "\n")
    manifests = write_manifests(plan.manifests(), out / "manifests")
    rules = write_rule_files(plan.rule_files(), out / "rules")
    return PlanFiles(plan_json=plan_json, manifests=manifests, rules=rules)
