"""The deployability checks as stack rules of the pack, so `pulumi preview`/`up` enforce what `plan` reports."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from modelplane.policies.deployability.analysis import CHECKS, Check
from modelplane.policies.rules.rule import Finding, Rule, StackResource, StackRule


def planned_form(resource: StackResource) -> dict[str, Any]:
    """A stack rule's resource as the checks read plan.json's."""
    return {
        "urn": resource.urn,
        "type": resource.type,
        "name": resource.name,
        "parent": resource.parent or "",
        "inputs": resource.props,
        "dependencies": list(resource.dependencies),
    }


def _stack_check(check: Check) -> Any:
    def run(resources: list[StackResource], _config: Mapping[str, Any]) -> list[Finding]:
        planned = [planned_form(resource) for resource in resources]
        return [Finding(finding.message(), finding.urn) for finding in check(planned)]

    return run


RULES: list[Rule] = [
    StackRule(
        name=f"modelplane-stack-deployability-{name}",
        description=description,
        why=why,
        check=_stack_check(check),
    )
    for name, (check, description, why) in CHECKS.items()
]
