"""Compare two plan.json documents: what a change adds, removes and changes, for review in pull requests."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from modelplane.plan.replacement import replacing_paths


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
    """'create', 'delete', 'update' or 'replace' (a changed input the provider cannot update in place)."""
    changes: tuple[InputChange, ...] = ()
    replaced_by: tuple[str, ...] = ()
    """For 'replace': the changed input paths that force it."""

    def to_json(self) -> dict[str, Any]:
        return {
            "urn": self.urn,
            "type": self.type,
            "name": self.name,
            "action": self.action,
            "changes": [{"path": c.path, "old": c.old, "new": c.new} for c in self.changes],
            "replaced_by": list(self.replaced_by),
        }


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
            forcing = replacing_paths(resource["type"], (change.path for change in changes))
            action = "replace" if forcing else "update"
            result.append(ResourceChange(urn, resource["type"], resource["name"], action, changes, forcing))
    for urn, resource in old.items():
        if urn not in new:
            result.append(ResourceChange(urn, resource["type"], resource["name"], "delete"))
    return result
