"""Reading resource properties as the policy engine hands them over: proxies, unknowns and secrets.

During preview the engine marks values that depend on outputs not yet known with sentinels,
and the SDK wraps properties in a proxy that raises on reading one. Rules read plain data
instead, with every unknown replaced by `UNKNOWN`, and decide for themselves: a rule never
fires on a value that is not yet known.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Final

from pulumi_policy import proxy

SECRET_PLACEHOLDER = "[secret]"
"""How plan.json shows a secret value; rules treat it like an unknown one."""


class _Unknown:
    def __repr__(self) -> str:
        return "UNKNOWN"


UNKNOWN: Final = _Unknown()
"""A value the engine cannot know yet (preview) or may not show (a secret in the offline plan)."""

ENGINE_UNKNOWNS = frozenset(
    {
        proxy.UNKNOWN_BOOLEAN_VALUE,
        proxy.UNKNOWN_NUMBER_VALUE,
        proxy.UNKNOWN_STRING_VALUE,
        proxy.UNKNOWN_ARRAY_VALUE,
        proxy.UNKNOWN_ASSET_VALUE,
        proxy.UNKNOWN_ARCHIVE_VALUE,
        proxy.UNKNOWN_OBJECT_VALUE,
    }
)
"""The policy engine's sentinels for values not known during preview."""


def plain(value: Any) -> Any:
    """`value` with the SDK's proxies unwrapped into dicts and lists and every unknown or secret as UNKNOWN."""
    if isinstance(value, (proxy._DictProxy, proxy._ListProxy)):
        value = value["__target"]
    if isinstance(value, Mapping):
        return {str(key): plain(item) for key, item in value.items()}
    if isinstance(value, Sequence) and not isinstance(value, str):
        return [plain(item) for item in value]
    if isinstance(value, str) and (value in ENGINE_UNKNOWNS or value == SECRET_PLACEHOLDER):
        return UNKNOWN
    return value


def is_unknown(value: Any) -> bool:
    return value is UNKNOWN


def dig(value: Any, *path: str | int) -> Any:
    """The value at `path`, None where the path is missing, UNKNOWN where a step is not yet known."""
    for step in path:
        if value is UNKNOWN:
            return UNKNOWN
        if isinstance(step, int):
            value = value[step] if isinstance(value, list) and -len(value) <= step < len(value) else None
        else:
            value = value.get(step) if isinstance(value, dict) else None
        if value is None:
            return None
    return value


def as_list(value: Any) -> list[Any]:
    """A list input, or [] where it is missing or not a list (an unknown list is checked with is_unknown first)."""
    return value if isinstance(value, list) else []


def as_dict(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def is_true(value: Any) -> bool:
    """Booleans arrive as booleans or, for some provider fields (EBS `encrypted`), as the strings 'true'/'false'."""
    return value is True or (isinstance(value, str) and value.lower() == "true")
