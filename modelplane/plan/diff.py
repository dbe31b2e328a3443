"""Compare two plan.json documents: what a change adds, removes and changes, for review in pull requests."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class InputChange:
    path: str
    old: Any
    new: Any


@dataclass(frozen=True)
class ResourceChange:
    urn: str
    type: str
    name: str
    action: str
    """'create', 'delete' or 'update'."""
    changes: tuple[InputChange, ...] = ()


_ABSENT = object()


def _flatten(value: Any, prefix: str = "") -> dict[str, Any]:
    if isinstance(value, dict) and value:
        flat: dict[str, Any] = {}
        for key, item in value.items():
            flat.update(_flatten(item, f"{prefix}.{key}" if prefix else str(key)))
        return flat
    if isinstance(value, list) and value:
        flat = {}
        for index, item in enumerate(value):
            flat.update(_flatten(item, f"{prefix}[{index}]"))
        return flat
    return {prefix: value}


def input_changes(old: dict[str, Any], new: dict[str, Any]) -> tuple[InputChange, ...]:
    before, after = _flatten(old), _flatten(new)
    changes = []
    for path in sorted(set(before) | set(after)):
        old_value, new_value = before.get(path, _ABSENT), after.get(path, _ABSENT)
        if old_value != new_value:
            changes.append(
                InputChange(
                    path, None if old_value is _ABSENT else old_value, None if new_value is _ABSENT else new_value
                )
            )
    return tuple(changes)


def diff_plans(old_plan: dict[str, Any], new_plan: dict[str, Any]) -> list[ResourceChange]:
    """Changes from `old_plan` to `new_plan`, resources matched by URN, in the new plan's order."""
    old = {r["urn"]: r for r in old_plan.get("resources", [])}
    new = {r["urn"]: r for r in new_plan.get("resources", [])}
    result = []
    for urn, resource in new.items():
        if urn not in old:
            result.append(ResourceChange(urn, resource["type"], resource["name"], "create"))
            continue
        changes = input_changes(old[urn].get("inputs", {}), resource.get("inputs", {}))
        if changes:
            result.append(ResourceChange(urn, resource["type"], resource["name"], "update", changes))
    for urn, resource in old.items():
        if urn not in new:
            result.append(ResourceChange(urn, resource["type"], resource["name"], "delete"))
    return result
