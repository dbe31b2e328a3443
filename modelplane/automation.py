"""`up`, `preview` and `destroy` through the Pulumi Automation API, which drives the Pulumi CLI."""

from __future__ import annotations

import shutil
from enum import StrEnum
from pathlib import Path

from modelplane.config import EnvironmentConfig
from modelplane.policy_config import POLICY_PACK_DIR, write_pack_config

PULUMI_INSTALL_HINT = (
    "the Pulumi CLI is not installed (no `pulumi` on PATH): install it "
    "(https://www.pulumi.com/docs/iac/download-install/), log in to a backend, then run this again; "
    "`modelplane plan ENV` previews offline without it"
)


class PulumiCliMissing(RuntimeError):
    pass


class Operation(StrEnum):
    UP = "up"
    PREVIEW = "preview"
    DESTROY = "destroy"


def require_pulumi_cli() -> str:
    path = shutil.which("pulumi")
    if path is None:
        raise PulumiCliMissing(PULUMI_INSTALL_HINT)
    return path


def run_operation(operation: Operation, env: EnvironmentConfig, project_dir: Path) -> None:
    """Run `operation` on the stack of `env` in the project in `project_dir`, streaming the engine's output."""
    require_pulumi_cli()
    from pulumi import automation as auto  # the CLI exists: only now is the Automation API usable

    stack = auto.create_or_select_stack(stack_name=env.name, work_dir=str(project_dir))
    packs, configs = policy_pack_arguments(env, project_dir / "build" / env.name)
    if operation is Operation.UP:
        stack.up(on_output=print, policy_packs=packs, policy_pack_configs=configs)
    elif operation is Operation.PREVIEW:
        stack.preview(on_output=print, policy_packs=packs, policy_pack_configs=configs)
    else:
        stack.destroy(on_output=print)


def policy_pack_arguments(env: EnvironmentConfig, out_dir: Path) -> tuple[list[str], list[str]]:
    """The platform's policy pack and the config `modelplane plan` checks with, written to `out_dir`:
    `up` and `preview` enforce the same rules, at the same levels, with the same budgets."""
    return [str(POLICY_PACK_DIR)], [str(write_pack_config(env, out_dir))]
