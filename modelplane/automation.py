"""`init`, `up`, `preview` and `destroy` through the Pulumi Automation API, which drives the Pulumi CLI.

`up` and `destroy` never apply blind: the CLI previews first (what `preview_changes` returns: every step and
every policy the pack reports), shows it, and asks before `apply`. A stack is only ever selected here; it is
created by `init` (or `--create`) alone, so a typo in an environment's name cannot make a new stack.
Every failure the Pulumi CLI reports becomes a `DeployError` of one line with the fix, for the CLI to print.
"""

from __future__ import annotations

import re
import shutil
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Any

from modelplane.config import EnvironmentConfig
from modelplane.policy_config import POLICY_PACK_DIR, write_pack_config

if TYPE_CHECKING:
    from pulumi.automation import EngineEvent, Stack

PULUMI_INSTALL_HINT = (
    "the Pulumi CLI is not installed (no `pulumi` on PATH): install it "
    "(https://www.pulumi.com/docs/iac/download-install/), log in to a backend, then run this again; "
    "`modelplane plan ENV` previews offline without it"
)
NOT_LOGGED_IN_HINT = (
    "the Pulumi CLI is not logged in to a backend: run `pulumi login` (Pulumi Cloud; in CI set "
    "PULUMI_ACCESS_TOKEN), `pulumi login s3://BUCKET` or `pulumi login --local`, then run this again"
)


class DeployError(RuntimeError):
    """A failure of `init`/`up`/`preview`/`destroy`, as one line that says what to do."""


class PulumiCliMissing(DeployError):
    pass


class Operation(StrEnum):
    UP = "up"
    PREVIEW = "preview"
    DESTROY = "destroy"


# The engine's step kinds, folded into what a reviewer needs: what is added, changed, replaced, removed.
_ACTIONS = {
    "create": "create",
    "update": "update",
    "replace": "replace",
    "create-replacement": "replace",
    "delete": "delete",
    "import": "import",
}


@dataclass(frozen=True)
class PlannedStep:
    action: str
    """create, update, replace, delete or import."""
    urn: str
    type: str
    changed: tuple[str, ...] = ()
    """The inputs that differ (for update and replace)."""
    replaced_by: tuple[str, ...] = ()
    """The inputs whose change forces the replacement."""

    @property
    def name(self) -> str:
        return self.urn.rsplit("::", 1)[-1]

    def to_json(self) -> dict[str, Any]:
        return {
            "action": self.action,
            "urn": self.urn,
            "type": self.type,
            "name": self.name,
            "changed": list(self.changed),
            "replaced_by": list(self.replaced_by),
        }


@dataclass(frozen=True)
class PolicyResult:
    pack: str
    policy: str
    level: str
    """advisory, mandatory or remediate, as the pack reports it."""
    message: str
    urn: str | None = None

    @property
    def mandatory(self) -> bool:
        return self.level == "mandatory"

    def to_json(self) -> dict[str, Any]:
        return {"pack": self.pack, "policy": self.policy, "level": self.level, "message": self.message, "urn": self.urn}


@dataclass
class PreviewOutcome:
    """What a preview found: the steps it would take, what the policy pack said, and whether it failed."""

    steps: list[PlannedStep] = field(default_factory=list)
    policies: list[PolicyResult] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    """The engine's error diagnostics (a program exception, a provider refusal)."""
    failure: str | None = None
    """One line when the preview itself failed."""

    @property
    def mandatory_violations(self) -> list[PolicyResult]:
        return [policy for policy in self.policies if policy.mandatory]

    def counts(self) -> Counter[str]:
        return Counter(step.action for step in self.steps)

    def to_json(self) -> dict[str, Any]:
        return {
            "steps": [step.to_json() for step in self.steps],
            "counts": dict(self.counts()),
            "policies": [policy.to_json() for policy in self.policies],
            "errors": self.errors,
            "failure": self.failure,
        }

    def record(self, event: EngineEvent) -> None:
        """Keep what matters to a reviewer from one engine event."""
        if event.resource_pre_event is not None:
            step = event.resource_pre_event.metadata
            action = _ACTIONS.get(str(getattr(step.op, "value", step.op)))
            # A replacement is several engine steps (create-replacement, replace, delete-replaced): keep one.
            if action is None or step.type == "pulumi:pulumi:Stack":
                return
            if any(known.urn == step.urn and known.action == action for known in self.steps):
                return
            replaced = tuple(step.keys or ()) if action == "replace" else ()
            self.steps.append(PlannedStep(action, step.urn, step.type, tuple(step.diffs or ()), replaced))
        elif event.policy_event is not None:
            policy = event.policy_event
            self.policies.append(
                PolicyResult(
                    policy.policy_pack_name, policy.policy_name, policy.enforcement_level, policy.message,
                    policy.resource_urn,
                )
            )  # fmt: skip
        elif event.diagnostic_event is not None and event.diagnostic_event.severity == "error":
            message = _strip_ansi(event.diagnostic_event.message).strip()
            if message:
                self.errors.append(message.splitlines()[0])


def require_pulumi_cli() -> str:
    path = shutil.which("pulumi")
    if path is None:
        raise PulumiCliMissing(PULUMI_INSTALL_HINT)
    return path


def init_stack(environment: str, project_dir: Path) -> None:
    """Create the stack `environment` in the backend the CLI is logged in to."""
    require_pulumi_cli()
    from pulumi import automation as auto

    try:
        auto.create_stack(stack_name=environment, work_dir=str(project_dir))
    except auto.StackAlreadyExistsError:
        raise DeployError(f"stack {environment!r} already exists; `modelplane up {environment}` deploys it") from None
    except auto.CommandError as error:
        raise DeployError(command_error_line(error, environment)) from None


def open_stack(environment: str, project_dir: Path, *, create: bool = False) -> Stack:
    """Select the stack `environment`; only with `create` is a missing one created (else: DeployError)."""
    require_pulumi_cli()
    from pulumi import automation as auto

    try:
        if create:
            return auto.create_or_select_stack(stack_name=environment, work_dir=str(project_dir))
        return auto.select_stack(stack_name=environment, work_dir=str(project_dir))
    except auto.StackNotFoundError:
        raise DeployError(
            f"stack {environment!r} does not exist in this backend (`pulumi whoami -v` shows which): "
            f"create it with `modelplane init {environment}`, or pass --create"
        ) from None
    except auto.CommandError as error:
        raise DeployError(command_error_line(error, environment)) from None


def preview_changes(
    stack: Stack,
    operation: Operation,
    policy_packs: Sequence[str] = (),
    policy_pack_configs: Sequence[str] = (),
) -> PreviewOutcome:
    """Preview `operation` (up or destroy): every step and policy result, never raising for a failed preview."""
    from pulumi import automation as auto

    outcome = PreviewOutcome()
    try:
        if operation is Operation.DESTROY:
            stack.preview_destroy(on_event=outcome.record, on_output=_quiet)
        else:
            stack.preview(
                on_event=outcome.record,
                on_output=_quiet,
                policy_packs=list(policy_packs),
                policy_pack_configs=list(policy_pack_configs),
                diff=True,
            )
    except auto.CommandError as error:
        outcome.failure = _preview_failure(outcome, error, stack)
    return outcome


def apply(
    stack: Stack,
    operation: Operation,
    on_output: Callable[[str], None],
    policy_packs: Sequence[str] = (),
    policy_pack_configs: Sequence[str] = (),
) -> None:
    """Run `up` or `destroy`, streaming the engine's output; a failure becomes a DeployError."""
    from pulumi import automation as auto

    try:
        if operation is Operation.DESTROY:
            stack.destroy(on_output=on_output)
        else:
            stack.up(
                on_output=on_output,
                policy_packs=list(policy_packs),
                policy_pack_configs=list(policy_pack_configs),
            )
    except auto.CommandError as error:
        raise DeployError(command_error_line(error, _stack_name(stack))) from None


def policy_pack_arguments(env: EnvironmentConfig, out_dir: Path) -> tuple[list[str], list[str]]:
    """The platform's policy pack and the config `modelplane plan` checks with, written to `out_dir`:
    `up` and `preview` enforce the same rules, at the same levels, with the same budgets."""
    return [str(POLICY_PACK_DIR)], [str(write_pack_config(env, out_dir))]


_ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]|<\{%[^%]*%\}>")


def _strip_ansi(text: str) -> str:
    return _ANSI.sub("", text)


def _quiet(_line: str) -> None:
    """The preview's own rendering is not printed: the CLI prints the steps and policies it collected."""


def _stack_name(stack: Stack) -> str:
    return str(getattr(stack, "name", "ENV"))


def _preview_failure(outcome: PreviewOutcome, error: Exception, stack: Stack) -> str:
    if outcome.mandatory_violations:
        return f"{len(outcome.mandatory_violations)} mandatory policy violation(s)"
    if outcome.errors:
        return outcome.errors[0]
    return command_error_line(error, _stack_name(stack))


def command_error_line(error: Exception, environment: str) -> str:
    """The Pulumi CLI's failure (a CommandError holding its whole stdout and stderr) as one line with the fix."""
    text = _strip_ansi(str(error))
    stderr = text.split(" stderr: ", 1)[-1]
    if "PULUMI_ACCESS_TOKEN must be set" in text or ("pulumi login" in stderr and "not logged in" in stderr):
        return NOT_LOGGED_IN_HINT
    if "passphrase" in stderr.lower() and "PULUMI_CONFIG_PASSPHRASE" in stderr:
        return (
            f"stack {environment!r} keeps its secrets with a passphrase: set PULUMI_CONFIG_PASSPHRASE "
            "(or PULUMI_CONFIG_PASSPHRASE_FILE) and run this again"
        )
    if "Another update is currently in progress" in text or "the stack is currently locked by" in text:
        return (
            f"another update of stack {environment!r} is in progress; wait for it, or if none runs, "
            f"`pulumi cancel --stack {environment}` (Pulumi Cloud) or `pulumi stack select {environment} && "
            "pulumi state unlock` (self-managed backend)"
        )
    if re.search(r"no valid credential sources|NoCredentialProviders|ExpiredToken|InvalidClientTokenId", text):
        return (
            "AWS rejected the credentials (none found, or expired): `aws sts get-caller-identity` shows what "
            "the CLI uses; log in (`aws sso login`) or, in CI, assume the deploy role, then run this again"
        )
    lines = [line.strip() for line in stderr.splitlines() if line.strip()]
    errors = [line.removeprefix("error:").strip() for line in lines if line.startswith("error:")]
    detail = errors[-1] if errors else (lines[-1] if lines else "no message")
    return f"pulumi failed on stack {environment!r}: {detail}"
