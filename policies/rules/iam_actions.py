"""Which IAM actions can be scoped to resources, from the IAM privilege table `parliament` ships.

Some actions (`ec2:DescribeInstances`, `pricing:GetProducts`, `iam:ListInstanceProfiles`) support no
resource-level permissions: AWS only accepts `"Resource": "*"` for them, so a rule against wildcard resources
must not flag those. The table is read as data: importing parliament itself needs setuptools' pkg_resources.
"""

from __future__ import annotations

import fnmatch
import importlib.util
import json
from functools import cache
from pathlib import Path


@cache
def _resource_types_by_action() -> dict[str, tuple[str, ...]]:
    """`service:Action` (lowercase) -> the resource types the action can be scoped to ('' for none)."""
    spec = importlib.util.find_spec("parliament")
    if spec is None or not spec.submodule_search_locations:
        return {}
    table = json.loads((Path(spec.submodule_search_locations[0]) / "iam_definition.json").read_text())
    return {
        f"{service['prefix']}:{privilege['privilege']}".lower(): tuple(
            entry["resource_type"] for entry in privilege["resource_types"]
        )
        for service in table
        for privilege in service["privileges"]
    }


def known_actions(pattern: str) -> list[str]:
    """The actions `pattern` (which may hold `*` and `?`) names, lowercased; [] when none is known."""
    table = _resource_types_by_action()
    lowered = pattern.lower()
    if "*" not in lowered and "?" not in lowered:
        return [lowered] if lowered in table else []
    return [action for action in table if fnmatch.fnmatchcase(action, lowered)]


def only_unscopable(actions: list[str]) -> bool:
    """True when every action named supports no resource-level permissions, so `*` is the only resource."""
    table = _resource_types_by_action()
    expanded = [known_actions(action) for action in actions]
    if not actions or any(not names for names in expanded):
        return False
    return all(set(table[name]) == {""} for names in expanded for name in names)
