"""Read an environment's config: from Pulumi (in the stack program) or its stack file (offline)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pulumi
import yaml

from modelplane.config import CONFIG_NAMESPACE, SECTIONS, ConfigError, EnvironmentConfig, parse_environment

SECRET_PLACEHOLDER = "plan-placeholder-secret"


@dataclass(frozen=True)
class StackFile:
    """The `config:` block of `stacks/Pulumi.ENV.yaml`, as the engine would hand it to the program."""

    environment: str
    path: Path
    values: dict[str, Any]
    secret_keys: list[str]

    @property
    def region(self) -> str | None:
        region = self.values.get("aws:region")
        return str(region) if region is not None else None

    def sections(self) -> dict[str, Any]:
        prefix = f"{CONFIG_NAMESPACE}:"
        return {key.removeprefix(prefix): value for key, value in self.values.items() if key.startswith(prefix)}

    def engine_config(self) -> dict[str, str]:
        """Config as the engine passes it: every value a string, objects as JSON."""
        return {key: value if isinstance(value, str) else json.dumps(value) for key, value in self.values.items()}


def _plan_value(key: str, value: Any, secret_keys: list[str]) -> Any:
    """Secure values cannot be decrypted offline: the plan sees a placeholder and marks the key secret."""
    if isinstance(value, dict) and set(value) == {"secure"}:
        secret_keys.append(key)
        return SECRET_PLACEHOLDER
    return value


def read_stack_file(environment: str, stacks_dir: Path) -> StackFile:
    path = stacks_dir / f"Pulumi.{environment}.yaml"
    if not path.is_file():
        known = sorted(p.name.removeprefix("Pulumi.").removesuffix(".yaml") for p in stacks_dir.glob("Pulumi.*.yaml"))
        raise ConfigError(environment, [f"{path}: no such stack file; environments: {', '.join(known) or 'none'}"])
    try:
        document = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as exc:
        raise ConfigError(environment, [f"{path}: not valid YAML: {exc}"]) from None
    raw_config = document.get("config") or {}
    if not isinstance(raw_config, dict):
        raise ConfigError(environment, [f"{path}: `config` must be a mapping of keys to values"])
    secret_keys: list[str] = []
    values = {str(key): _plan_value(str(key), value, secret_keys) for key, value in raw_config.items()}
    # Secret values (Grafana's password, receivers' URLs) live beside the sections under any name.
    unknown = [
        key
        for key in values
        if key.startswith(f"{CONFIG_NAMESPACE}:")
        and key.removeprefix(f"{CONFIG_NAMESPACE}:") not in SECTIONS
        and key not in secret_keys
    ]
    if unknown:
        raise ConfigError(
            environment,
            [
                f"{key}: unknown config key; known: {', '.join(f'{CONFIG_NAMESPACE}:{s}' for s in SECTIONS)}"
                for key in unknown
            ],
        )
    return StackFile(environment, path, values, secret_keys)


def with_secret_placeholders(stack_file: StackFile, secret_names: list[str]) -> tuple[StackFile, list[str]]:
    """The stack file with a placeholder for each secret the environment references but the file lacks.

    Operators set secrets per stack with `pulumi config set --secret`; an offline plan never has
    their values, so it plans with placeholders (marked secret) and reports which are still unset.
    """
    missing = [name for name in secret_names if f"{CONFIG_NAMESPACE}:{name}" not in stack_file.values]
    values = dict(stack_file.values)
    secret_keys = list(stack_file.secret_keys)
    for name in missing:
        key = f"{CONFIG_NAMESPACE}:{name}"
        values[key] = SECRET_PLACEHOLDER
        secret_keys.append(key)
    return StackFile(stack_file.environment, stack_file.path, values, secret_keys), missing


def environment_from_stack_file(stack_file: StackFile) -> EnvironmentConfig:
    return parse_environment(stack_file.environment, stack_file.region, stack_file.sections())


def environment_from_pulumi_config() -> EnvironmentConfig:
    """The running stack's environment, from `pulumi.Config` (what `pulumi up` and the plan both use)."""
    config = pulumi.Config(CONFIG_NAMESPACE)
    sections = {section: value for section in SECTIONS if (value := config.get_object(section)) is not None}
    return parse_environment(pulumi.get_stack(), pulumi.Config("aws").get("region"), sections)
