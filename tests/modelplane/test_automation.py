"""`up`, `preview`, `destroy` and `init` through the Automation API: preview first, confirm, never create by accident.

There is no Pulumi CLI on this machine and none may be faked for the happy path. These tests replace the
Automation API at its boundary instead: `open_stack` returns `StubStack`, which emits the engine's real event
types (`pulumi.automation.EngineEvent` and friends) the way a preview does, and records what was applied.
The one test that runs a `pulumi` executable uses a script that only ever fails as a not-logged-in CLI does
(the error path of a real install with no `pulumi login`); nothing succeeds through it.
"""

from __future__ import annotations

import os
import stat
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from pulumi import automation as auto
from pulumi.automation import events
from typer.testing import CliRunner

from modelplane import automation, cli
from modelplane.automation import DeployError, Operation, PreviewOutcome, command_error_line, preview_changes

ROOT = Path(__file__).resolve().parents[2]
STACKS = ROOT / "stacks"
runner = CliRunner()
NODE_GROUP = "urn:pulumi:dev::modelplane::modelplane:compute:SystemNodePool$aws:eks/nodeGroup:NodeGroup::dev-system"
BUCKET = "urn:pulumi:dev::modelplane::aws:s3/bucket:Bucket::dev-artifacts"


def step_event(sequence: int, op: str, urn: str, diffs: list[str] | None = None, keys: list[str] | None = None):
    metadata = events.StepEventMetadata(
        op=events.OpType(op), urn=urn, type=urn.split("::")[2].split("$")[-1], provider="", diffs=diffs, keys=keys
    )
    return events.EngineEvent(sequence, 0, resource_pre_event=events.ResourcePreEvent(metadata))


def policy_event(sequence: int, level: str, message: str, urn: str | None = None):
    policy = events.PolicyEvent(message, "", "gpu-pool-budget", "modelplane-platform", "1", "", level, urn)
    return events.EngineEvent(sequence, 0, policy_event=policy)


class StubStack:
    """Stands in for `pulumi.automation.Stack`: a preview replays `preview_events`; up/destroy are recorded."""

    name = "dev"

    def __init__(self, preview_events: list[Any], fail_preview: Exception | None = None):
        self.preview_events = preview_events
        self.fail_preview = fail_preview
        self.applied: list[tuple[str, dict[str, Any]]] = []
        self.previews: list[tuple[str, dict[str, Any]]] = []

    def _replay(self, kind: str, kwargs: dict[str, Any]) -> None:
        self.previews.append((kind, kwargs))
        for event in self.preview_events:
            kwargs["on_event"](event)
        if self.fail_preview is not None:
            raise self.fail_preview

    def preview(self, **kwargs: Any) -> None:
        self._replay("preview", kwargs)

    def preview_destroy(self, **kwargs: Any) -> None:
        self._replay("preview_destroy", kwargs)

    def up(self, **kwargs: Any) -> None:
        kwargs["on_output"]("Updating (dev)")
        self.applied.append(("up", kwargs))

    def destroy(self, **kwargs: Any) -> None:
        self.applied.append(("destroy", kwargs))


CHANGES = [
    step_event(1, "same", "urn:pulumi:dev::modelplane::pulumi:pulumi:Stack::modelplane-dev"),
    step_event(2, "create-replacement", NODE_GROUP, ["instanceTypes"], ["instanceTypes"]),
    step_event(3, "replace", NODE_GROUP, ["instanceTypes"], ["instanceTypes"]),
    step_event(4, "update", BUCKET, ["tags"]),
    step_event(5, "delete-replaced", NODE_GROUP),
    policy_event(6, "advisory", "gpu pools cost $1,175.01/month at max size", BUCKET),
]


@pytest.fixture
def stub(monkeypatch: pytest.MonkeyPatch, tmp_path: Path):
    """Every command gets the stub from `open_stack`; the project (build/, policy config) lives in tmp_path."""
    holder: dict[str, Any] = {"stack": StubStack(CHANGES), "opened": []}

    def open_stub(environment: str, project_dir: Path, *, create: bool = False) -> StubStack:
        holder["opened"].append((environment, create))
        return holder["stack"]

    monkeypatch.setattr(cli, "open_stack", open_stub)
    monkeypatch.setattr(cli, "project_dir", lambda: tmp_path)
    return holder


def invoke(*args: str, stdin: str | None = None):
    return runner.invoke(cli.app, [*args, "--stacks-dir", str(STACKS)], input=stdin)


def test_outcome_folds_a_replacement_into_one_step_and_keeps_the_policy_result() -> None:
    outcome = PreviewOutcome()
    for event in CHANGES:
        outcome.record(event)
    assert [(step.action, step.name) for step in outcome.steps] == [
        ("replace", "dev-system"),
        ("update", "dev-artifacts"),
    ]
    assert outcome.steps[0].replaced_by == ("instanceTypes",)
    (policy,) = outcome.policies
    assert (policy.level, policy.policy, policy.mandatory) == ("advisory", "gpu-pool-budget", False)


def test_up_without_yes_off_a_terminal_previews_and_refuses(stub: dict[str, Any]) -> None:
    result = invoke("up", "dev")
    assert result.exit_code == 1, result.output
    assert "+- replace aws:eks/nodeGroup:NodeGroup dev-system (replaced because of: instanceTypes)" in result.output
    assert "~ update  aws:s3/bucket:Bucket dev-artifacts (changed: tags)" in result.output
    assert "gpu-pool-budget" in result.output and "advisory" in result.output
    assert "Preview: 0 to add, 1 to change, 1 to replace, 0 to destroy." in result.output
    assert "not on a terminal" in result.output and "--yes" in result.output
    assert stub["stack"].applied == []
    # The preview ran with the platform's policy pack and the config `plan` writes.
    (kind, kwargs), *_ = stub["stack"].previews
    assert kind == "preview"
    assert kwargs["policy_packs"] == [str(ROOT / "modelplane" / "policies" / "modelplane_platform")]
    assert kwargs["policy_pack_configs"][0].endswith("build/dev/policy-config.json")


def test_up_never_creates_a_stack_unless_asked(stub: dict[str, Any]) -> None:
    invoke("up", "dev")
    invoke("up", "dev", "--create", "--yes")
    assert stub["opened"] == [("dev", False), ("dev", True)]


def test_up_with_yes_applies_with_the_policy_pack(stub: dict[str, Any]) -> None:
    result = invoke("up", "dev", "--yes")
    assert result.exit_code == 0, result.output
    ((kind, kwargs),) = stub["stack"].applied
    assert kind == "up"
    assert kwargs["policy_packs"] == [str(ROOT / "modelplane" / "policies" / "modelplane_platform")]
    assert "Updating (dev)" in result.output
    assert "up dev: done." in result.output


@pytest.mark.parametrize(("answer", "applied"), [("y\n", True), ("n\n", False), ("\n", False)])
def test_up_on_a_terminal_asks_and_defaults_to_no(
    stub: dict[str, Any], monkeypatch: pytest.MonkeyPatch, answer: str, applied: bool
) -> None:
    monkeypatch.setattr(cli, "_interactive", lambda: True)
    result = invoke("up", "dev", stdin=answer)
    assert "Apply these changes to dev? [y/N]" in result.output
    assert bool(stub["stack"].applied) is applied
    assert result.exit_code == (0 if applied else 1), result.output
    if not applied:
        assert "not confirmed: nothing was applied to dev" in result.output


def test_a_mandatory_violation_in_the_preview_refuses_even_with_yes(stub: dict[str, Any]) -> None:
    mandatory = policy_event(7, "mandatory", "pools exceed the budget: 4 GPUs > 2", BUCKET)
    failure = auto.CommandError(auto.CommandResult("", "error: preview failed", 255))
    stub["stack"] = StubStack([*CHANGES, mandatory], fail_preview=failure)
    result = invoke("up", "dev", "--yes")
    assert result.exit_code == 1
    assert "pools exceed the budget" in result.output
    assert "1 mandatory policy violation(s)" in result.output
    assert "nothing was applied" in result.output
    assert stub["stack"].applied == []


def test_no_changes_apply_nothing(stub: dict[str, Any]) -> None:
    stub["stack"] = StubStack([step_event(1, "same", BUCKET)])
    result = invoke("up", "dev", "--yes")
    assert result.exit_code == 0
    assert "dev is up to date: nothing to apply." in result.output
    assert stub["stack"].applied == []


def test_destroy_previews_deletions_and_wants_the_name_typed(
    stub: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    stub["stack"] = StubStack([step_event(1, "delete", BUCKET), step_event(2, "delete", NODE_GROUP)])
    monkeypatch.setattr(cli, "_interactive", lambda: True)
    refused = invoke("destroy", "dev", stdin="yes\n")
    assert refused.exit_code == 1
    assert "Preview: 0 to add, 0 to change, 0 to replace, 2 to destroy." in refused.output
    assert "Type dev to confirm" in refused.output
    assert stub["stack"].applied == []
    assert stub["stack"].previews[0][0] == "preview_destroy"
    confirmed = invoke("destroy", "dev", stdin="dev\n")
    assert confirmed.exit_code == 0, confirmed.output
    assert [kind for kind, _ in stub["stack"].applied] == ["destroy"]


def test_preview_shows_and_applies_nothing(stub: dict[str, Any]) -> None:
    result = invoke("preview", "dev")
    assert result.exit_code == 0, result.output
    assert "1 to replace" in result.output
    assert stub["stack"].applied == []


def test_a_failed_preview_is_one_line(stub: dict[str, Any]) -> None:
    failure = auto.CommandError(auto.CommandResult("", "error: could not load plugin aws: not found", 255))
    stub["stack"] = StubStack([], fail_preview=failure)
    result = invoke("up", "dev", "--yes")
    assert result.exit_code == 1
    (line,) = [line for line in result.output.splitlines() if line.startswith("error:")]
    assert "could not load plugin aws: not found; nothing was applied" in line
    assert "Traceback" not in result.output


def test_preview_changes_passes_the_packs_and_collects_events() -> None:
    stack = StubStack(CHANGES)
    outcome = preview_changes(stack, Operation.UP, ["pack"], ["config.json"])  # type: ignore[arg-type]
    assert outcome.failure is None
    assert outcome.counts() == {"replace": 1, "update": 1}
    (_, kwargs), *_ = stack.previews
    assert (kwargs["policy_packs"], kwargs["policy_pack_configs"]) == (["pack"], ["config.json"])


def command_error(stderr: str, stdout: str = "") -> auto.CommandError:
    from pulumi.automation.errors import create_command_error

    return create_command_error(auto.CommandResult(stdout, stderr, 255))


@pytest.mark.parametrize(
    ("stderr", "expected"),
    [
        (
            "error: PULUMI_ACCESS_TOKEN must be set for login during non-interactive CLI sessions\n",
            "not logged in to a backend: run `pulumi login`",
        ),
        (
            'error: constructing secrets manager of type "passphrase": passphrase must be set with '
            "PULUMI_CONFIG_PASSPHRASE or PULUMI_CONFIG_PASSPHRASE_FILE environment variables\n",
            "set PULUMI_CONFIG_PASSPHRASE",
        ),
        ("error: [409] Conflict: Another update is currently in progress.\n", "pulumi cancel --stack dev"),
        ("error: the stack is currently locked by 1 lock(s)\n", "pulumi state unlock"),
        ("error: no valid credential sources for AWS Provider found\n", "aws sts get-caller-identity"),
        ("warning: something\nerror: something else broke\n", "pulumi failed on stack 'dev': something else broke"),
    ],
)
def test_pulumi_failures_become_one_line_with_the_fix(stderr: str, expected: str) -> None:
    line = command_error_line(command_error(stderr), "dev")
    assert expected in line
    assert "\n" not in line


def test_a_missing_stack_is_reported_not_created(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    calls: list[str] = []

    def select_stack(stack_name: str, work_dir: str) -> None:
        calls.append("select")
        raise command_error("error: no stack named 'dve' found\n")

    def create_or_select_stack(stack_name: str, work_dir: str) -> None:
        calls.append("create")

    monkeypatch.setattr(automation.shutil, "which", lambda name: "/usr/local/bin/pulumi")
    monkeypatch.setattr(auto, "select_stack", select_stack)
    monkeypatch.setattr(auto, "create_or_select_stack", create_or_select_stack)
    with pytest.raises(DeployError, match=r"stack 'dve' does not exist.*`modelplane init dve`, or pass --create"):
        automation.open_stack("dve", tmp_path)
    assert calls == ["select"]
    automation.open_stack("dve", tmp_path, create=True)
    assert calls == ["select", "create"]


def test_init_of_an_existing_stack_is_one_line(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    def create_stack(stack_name: str, work_dir: str) -> None:
        raise command_error("error: stack 'dev' already exists\n")

    monkeypatch.setattr(automation.shutil, "which", lambda name: "/usr/local/bin/pulumi")
    monkeypatch.setattr(auto, "create_stack", create_stack)
    monkeypatch.setattr(cli, "project_dir", lambda: tmp_path)
    result = runner.invoke(cli.app, ["init", "dev", "--stacks-dir", str(STACKS)])
    assert result.exit_code == 1
    assert result.output.strip() == "error: stack 'dev' already exists; `modelplane up dev` deploys it"


def test_init_refuses_an_environment_without_a_stack_file() -> None:
    result = runner.invoke(cli.app, ["init", "dve", "--stacks-dir", str(STACKS)])
    assert result.exit_code == 1
    assert "no such stack file" in result.output


NOT_LOGGED_IN_PULUMI = """#!/bin/sh
# A Pulumi CLI that is installed but not logged in: `version` answers, everything else fails as the real one does.
if [ "$1" = "version" ]; then echo "v3.200.0"; exit 0; fi
echo "error: PULUMI_ACCESS_TOKEN must be set for login during non-interactive CLI sessions" >&2
exit 255
"""


@pytest.mark.parametrize("command", ["up", "preview", "destroy", "init"])
def test_a_cli_that_is_not_logged_in_is_one_line(command: str, tmp_path: Path) -> None:
    """Error path only: a stand-in `pulumi` that fails like an installed, logged-out CLI (see the module doc)."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    fake = bin_dir / "pulumi"
    fake.write_text(NOT_LOGGED_IN_PULUMI)
    fake.chmod(fake.stat().st_mode | stat.S_IEXEC)
    env = {**os.environ, "PATH": f"{bin_dir}:{Path(sys.executable).parent}:/usr/bin:/bin", "PULUMI_HOME": str(tmp_path)}
    env.pop("PULUMI_ACCESS_TOKEN", None)
    result = subprocess.run(
        [str(Path(sys.executable).parent / "modelplane"), command, "dev"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 1, result.stdout + result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("error: the Pulumi CLI is not logged in to a backend: run `pulumi login`")
    assert "Traceback" not in result.stdout + result.stderr
