"""IAM actions as AWS defines them, from the IAM privilege table `parliament` ships.

An action pattern (`s3:*Object`, `iam:Pass*`, `*`) is expanded against the real action list, so a rule knows
what it grants: each action's access level (List, Read, Write, Tagging, Permissions management) and whether it
can be scoped to resources at all. Some actions (`ec2:DescribeInstances`, `pricing:GetProducts`) support no
resource-level permissions: AWS only accepts `"Resource": "*"` for them, so a rule against wildcard resources
must not flag those. The table is read as data: importing parliament itself needs setuptools' pkg_resources.
"""

from __future__ import annotations

import fnmatch
import importlib.util
import json
from dataclasses import dataclass
from functools import cache
from pathlib import Path

READ_LEVELS = frozenset({"List", "Read"})
"""Access levels that change nothing: a wildcard over these names no power beyond reading."""


@dataclass(frozen=True)
class Privilege:
    action: str
    """`service:Action` as AWS spells it."""
    access_level: str
    resource_types: tuple[str, ...]
    """The resource types it can be scoped to; '' where it applies to no resource type."""

    @property
    def scopable(self) -> bool:
        return any(self.resource_types)


@cache
def _privileges() -> dict[str, Privilege]:
    """`service:action` (lowercase) -> its privilege; empty when parliament is not installed."""
    spec = importlib.util.find_spec("parliament")
    if spec is None or not spec.submodule_search_locations:
        return {}
    table = json.loads((Path(spec.submodule_search_locations[0]) / "iam_definition.json").read_text())
    return {
        f"{service['prefix']}:{privilege['privilege']}".lower(): Privilege(
            action=f"{service['prefix']}:{privilege['privilege']}",
            access_level=privilege["access_level"],
            resource_types=tuple(entry["resource_type"] for entry in privilege["resource_types"]),
        )
        for service in table
        for privilege in service["privileges"]
    }


def is_pattern(action: str) -> bool:
    return "*" in action or "?" in action


def expand(pattern: str) -> list[Privilege]:
    """The actions `pattern` (which may hold `*` and `?`, matched case-insensitively) names; [] when none is known."""
    table = _privileges()
    lowered = pattern.lower()
    if not is_pattern(lowered):
        return [table[lowered]] if lowered in table else []
    return [privilege for action, privilege in table.items() if fnmatch.fnmatchcase(action, lowered)]


def only_unscopable(actions: list[str]) -> bool:
    """True when every action named supports no resource-level permissions, so `*` is the only resource."""
    expanded = [expand(action) for action in actions]
    if not actions or any(not privileges for privileges in expanded):
        return False
    return not any(privilege.scopable for privileges in expanded for privilege in privileges)
