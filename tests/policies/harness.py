"""Run one rule the way the engine would, on resources written as plan.json records them."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from modelplane.plan.policy_check import PlannedResource, Report, run_policy
from modelplane.policies.rules.rule import Rule

STACK_URN = "urn:pulumi:test::modelplane::pulumi:pulumi:Stack::modelplane-test"


def urn_of(type_: str, name: str, parent_type: str | None = None) -> str:
    chain = f"{parent_type}${type_}" if parent_type else type_
    return f"urn:pulumi:test::modelplane::{chain}::{name}"


def resource(
    type_: str,
    name: str,
    inputs: Mapping[str, Any] | None = None,
    *,
    parent: Mapping[str, Any] | None = None,
    dependencies: Sequence[Mapping[str, Any]] = (),
) -> dict[str, Any]:
    """A resource as plan.json records it (inputs camelCase, unknowns as '[unknown]', secrets as '[secret]')."""
    return {
        "urn": urn_of(type_, name, parent["type"] if parent else None),
        "type": type_,
        "name": name,
        "parent": parent["urn"] if parent else STACK_URN,
        "custom": not type_.startswith("modelplane:"),
        "provider": "",
        "inputs": dict(inputs or {}),
        "dependencies": [d["urn"] for d in dependencies],
    }


def violations(
    rule: Rule, resources: Sequence[PlannedResource], config: Mapping[str, Any] | None = None
) -> list[Report]:
    """What `rule` reports, through the SDK's own args objects (modelplane.plan.policy_check.run_policy)."""
    return run_policy(rule.policy(), resources, config)


def messages(rule: Rule, resources: Sequence[PlannedResource], config: Mapping[str, Any] | None = None) -> list[str]:
    """The violations `rule` reports (not its advice on what it could not decide)."""
    return [report.message for report in violations(rule, resources, config) if not report.advice]


def advice(rule: Rule, resources: Sequence[PlannedResource], config: Mapping[str, Any] | None = None) -> list[str]:
    """What `rule` says it could not decide, as the engine's advisory diagnostics carry it."""
    return [report.message for report in violations(rule, resources, config) if report.advice]
