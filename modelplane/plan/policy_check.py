"""Check a plan against the platform policy pack offline, as `pulumi preview --policy-pack` would.

pulumi-policy has no test harness (pulumi-policy#445), so this builds the SDK's own
`ResourceValidationArgs` and `StackValidationArgs` from the plan's recorded resources exactly as the
engine presents them (camelCase inputs, unknowns as the engine's sentinels behind the SDK's proxy,
parents and dependencies as resource objects), runs each policy's `validate`, and collects what it
reports. `run_policy` is the one way in, for the plan and for the policy tests alike.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass
from functools import partial
from inspect import isawaitable
from pathlib import Path
from typing import Any

from pulumi_policy import (
    Policy,
    PolicyCustomTimeouts,
    PolicyResource,
    PolicyResourceOptions,
    ReportViolation,
    ResourceValidationArgs,
    ResourceValidationPolicy,
    StackValidationArgs,
    StackValidationPolicy,
)
from pulumi_policy.policy import _NotApplicableError
from pulumi_policy.proxy import UNKNOWN_STRING_VALUE, UnknownValueError, unknown_checking_proxy
from rich.table import Table

from modelplane.plan.engine import Plan
from modelplane.plan.pack_config import reconcile
from modelplane.policies.rules.catalog import pack_policies
from modelplane.policies.rules.rule import CannotDecide
from modelplane.policy_config import pack_config

PLAN_UNKNOWN = "[unknown]"

PlannedResource = Mapping[str, Any]
"""One resource as plan.json records it: urn, type, name, parent, inputs, dependencies."""


@dataclass(frozen=True)
class Violation:
    rule: str
    level: str
    urn: str
    """The resource in violation; '' for the stack as a whole."""
    message: str

    def to_json(self) -> dict[str, str]:
        return asdict(self)


@dataclass(frozen=True)
class Report:
    message: str
    urn: str
    advice: bool = False
    """The policy could not decide (see `CannotDecide`): the engine shows it as advisory whatever the rule's level."""


def _engine_value(value: Any) -> Any:
    if isinstance(value, dict):
        return {key: _engine_value(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_engine_value(item) for item in value]
    return UNKNOWN_STRING_VALUE if value == PLAN_UNKNOWN else value


def _engine_props(resource: PlannedResource) -> Any:
    """Inputs as the SDK hands them to a policy: unknowns as sentinels, behind the unknown-checking proxy."""
    return unknown_checking_proxy(_engine_value(dict(resource.get("inputs") or {})))


def _options(resource: PlannedResource) -> PolicyResourceOptions:
    return PolicyResourceOptions(
        protect=False,
        ignore_changes=[],
        delete_before_replace=None,
        aliases=[],
        custom_timeouts=PolicyCustomTimeouts(0, 0, 0),
        additional_secret_outputs=[],
        parent=resource.get("parent") or None,
    )


def resource_validation_args(resource: PlannedResource, config: Mapping[str, Any] | None) -> ResourceValidationArgs:
    return ResourceValidationArgs(
        resource["type"], _engine_props(resource), resource["urn"], resource["name"], _options(resource), None, config
    )


def stack_validation_args(
    resources: Sequence[PlannedResource], config: Mapping[str, Any] | None
) -> StackValidationArgs:
    """The stack as AnalyzeStack builds it: each resource's parent and dependencies linked as objects."""
    by_urn = {
        r["urn"]: PolicyResource(r["type"], _engine_props(r), r["urn"], r["name"], _options(r), None, None, [], {})
        for r in resources
    }
    for r in resources:
        policy_resource = by_urn[r["urn"]]
        policy_resource.parent = by_urn.get(r.get("parent") or "")
        policy_resource.dependencies = [by_urn[d] for d in r.get("dependencies") or [] if d in by_urn]
    return StackValidationArgs(list(by_urn.values()), config)


def _settle(result: Any) -> None:
    if result is not None and isawaitable(result):
        asyncio.run(result)  # type: ignore[arg-type]


def run_policy(policy: Policy, resources: Sequence[PlannedResource], config: Mapping[str, Any] | None) -> list[Report]:
    """Everything `policy` reports over `resources`: one call per resource, or one for the stack.

    As in the engine, a validation that reads a value not yet known, or calls `not_applicable`, reports nothing,
    and one that cannot decide reports why as advice.
    """
    reports: list[Report] = []

    def reporter(subject: str) -> ReportViolation:
        def report_violation(message: str, urn: str | None = None) -> None:
            # A resource policy's violations are always about the resource validated.
            reports.append(Report(message, subject or urn or ""))

        return report_violation

    def run(validate: Callable[[], Any], subject: str) -> None:
        try:
            with contextlib.suppress(_NotApplicableError):
                _settle(validate())
        except CannotDecide as undecided:
            reports.append(Report(undecided.message, subject, advice=True))
        except UnknownValueError:
            pass  # the engine's "can't run during preview": a value not yet known is not a violation

    if isinstance(policy, ResourceValidationPolicy):
        for resource in resources:
            args, urn = resource_validation_args(resource, config), resource["urn"]
            run(partial(policy.validate, args, reporter(urn)), urn)
    elif isinstance(policy, StackValidationPolicy):
        run(partial(policy.validate, stack_validation_args(resources, config), reporter("")), "")
    return reports


def check_resources(resources: Sequence[PlannedResource], config: Mapping[str, Any]) -> list[Violation]:
    """Every policy's reports under `config`, read as the engine reads `--policy-pack-config` (see `pack_config`)."""
    policies = pack_policies()
    settings = reconcile(policies, config)
    violations = []
    for policy in policies:
        level = settings[policy.name].level
        if level == "disabled":
            continue
        for report in run_policy(policy, resources, settings[policy.name].properties or None):
            reported = "advisory" if report.advice else "mandatory" if level == "remediate" else level
            violations.append(Violation(policy.name, reported, report.urn, report.message))
    return violations


def planned_resources(plan: Plan) -> list[dict[str, Any]]:
    return [asdict(resource) for resource in plan.resources]


def check_plan(plan: Plan, config_file: Path | None = None) -> list[Violation]:
    """The plan's violations, with the environment's policy config (`config/ENV.json`, else `config/default.json`)."""
    config = pack_config(plan.config, config_file)
    return check_resources(planned_resources(plan), config)


def mandatory(violations: Sequence[Violation]) -> list[Violation]:
    return [v for v in violations if v.level == "mandatory"]


def violations_table(violations: Sequence[Violation], resources: Sequence[PlannedResource]) -> Table:
    """Violations grouped by resource (the stack's own first), each with its rule, level and message."""
    names = {r["urn"]: f"{r['type']} {r['name']}" for r in resources}
    table = Table(title=f"Policy violations ({len(mandatory(violations))} mandatory)")
    for column in ("resource", "rule", "level", "message"):
        table.add_column(column)
    previous = None
    for violation in sorted(violations, key=lambda v: (v.urn, v.rule)):
        resource = names.get(violation.urn, violation.urn) if violation.urn else "(stack)"
        level = f"[red]{violation.level}[/red]" if violation.level == "mandatory" else violation.level
        table.add_row(resource if resource != previous else "", violation.rule, level, violation.message)
        previous = resource
    return table
