"""A policy pack config as the Pulumi engine reads it (`--policy-pack-config FILE`), so the offline check and the
tests apply exactly what `pulumi preview`/`up` would.

The steps follow the engine's own (pulumi/pulumi `pkg/resource/analyzer/config.go`: `parsePolicyPackConfig`,
`ReconcilePolicyPackConfig`, `validatePolicyPackConfig`): each entry is a level or an object with an optional
`enforcementLevel`; every policy starts at the pack's level with its schema's defaults; `all` sets every level,
then each entry sets its own level and merges its properties; last, each policy's properties are validated against
its config schema (an object schema with the policy's properties and required list), every error named.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import jsonschema
from pulumi_policy import Policy

LEVELS = ("advisory", "mandatory", "remediate", "disabled")
PACK_LEVEL = "advisory"
"""The pack's own level (`policies/modelplane_platform/__main__.py`), which every policy starts at."""


class PackConfigError(ValueError):
    """A config the engine would refuse; its message lists every problem."""

    def __init__(self, problems: Sequence[str]):
        super().__init__("policy pack config is invalid: " + "; ".join(problems))
        self.problems = list(problems)


@dataclass(frozen=True)
class PolicySettings:
    level: str
    properties: dict[str, Any] = field(default_factory=dict)


def _level(name: str, level: Any) -> str:
    if level not in LEVELS:
        raise PackConfigError([f"{name}: {level!r} is not a valid enforcement level ({', '.join(LEVELS)})"])
    return str(level)


def _entry(name: str, value: Any) -> tuple[str | None, dict[str, Any]]:
    if isinstance(value, str):
        return _level(name, value), {}
    if isinstance(value, Mapping):
        properties = dict(value)
        level = properties.pop("enforcementLevel", None)
        return (None if level is None else _level(name, level)), properties
    raise PackConfigError([f"{name}: {value!r} is not a valid value; must be a string or object"])


def _schema(policy: Policy) -> dict[str, Any] | None:
    schema = policy.config_schema
    if schema is None:
        return None
    converted: dict[str, Any] = {"type": "object"}
    if schema.properties:
        converted["properties"] = dict(schema.properties)
    if schema.required:
        converted["required"] = list(schema.required)
    return converted


def _defaults(policy: Policy) -> dict[str, Any]:
    schema = _schema(policy) or {}
    return {key: spec["default"] for key, spec in schema.get("properties", {}).items() if "default" in spec}


def reconcile(policies: Sequence[Policy], config: Mapping[str, Any]) -> dict[str, PolicySettings]:
    """Every policy's level and properties under `config`; PackConfigError where the engine would refuse it."""
    given = {name: _entry(name, value) for name, value in config.items() if name != "environments"}
    settings = {policy.name: PolicySettings(PACK_LEVEL, _defaults(policy)) for policy in policies}
    all_level = given.get("all", (None, {}))[0]
    if all_level is not None:
        settings = {name: PolicySettings(all_level, s.properties) for name, s in settings.items()}
    for name, (level, properties) in given.items():
        current = settings.get(name, PolicySettings(PACK_LEVEL))
        settings[name] = PolicySettings(level or current.level, {**current.properties, **properties})
    problems = []
    for policy in policies:
        schema = _schema(policy)
        if schema is None:
            continue
        validator = jsonschema.Draft7Validator(schema)
        for error in sorted(validator.iter_errors(settings[policy.name].properties), key=str):
            where = ".".join(str(step) for step in error.absolute_path)
            problems.append(f"{policy.name}: {where + ': ' if where else ''}{error.message}")
    if problems:
        raise PackConfigError(problems)
    return settings
