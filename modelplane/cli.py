"""The `modelplane` command.

Every failure a user can cause ends in one `error:` line on stderr (a config error: one line per problem)
and exit code 1; a usage error exits 2 (click's), Ctrl-C 130. `MODELPLANE_DEBUG=1` shows the traceback
of an unexpected error instead of its one line.
"""

from __future__ import annotations

import functools
import json
import os
import sys
from collections.abc import Callable
from importlib import metadata
from pathlib import Path
from typing import Annotated, Any, TypeVar

import click
import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from modelplane.alert_catalogue import alert_catalogue, markdown_table
from modelplane.automation import (
    DeployError,
    Operation,
    PreviewOutcome,
    apply,
    init_stack,
    open_stack,
    policy_pack_arguments,
    preview_changes,
)
from modelplane.components.alerting.promtool import PromtoolMissingError
from modelplane.config import ConfigError, EnvironmentConfig, environment_warnings
from modelplane.local.monitoring import MonitoringToolMissing
from modelplane.local.settings import LOCAL
from modelplane.plan.crd_validation import KARPENTER_VERSION, KUEUE_VERSION
from modelplane.plan.diff import diff_plans
from modelplane.plan.engine import plan_environment, write_plan
from modelplane.plan.manifests import custom_object_problems
from modelplane.plan.policy_check import check_plan, mandatory, planned_resources, violations_table
from modelplane.plan.report import (
    cost_table,
    counts_table,
    deployability_table,
    diff_symbol,
    price_notes,
    print_diff,
    resource_tree,
)
from modelplane.plan.rules import check_rule_files
from modelplane.policies.deployability.analysis import CHECKS as DEPLOYABILITY_CHECKS
from modelplane.policies.deployability.analysis import deployability_findings
from modelplane.policy_config import write_pack_config
from modelplane.stack_config import environment_from_stack_file, read_stack_file
from modelplane.terms.gpu_catalog import GPU_INSTANCE_TYPES, PRICE_DATE, PRICE_SOURCE

app = typer.Typer(
    help="modelplane: a GPU machine-learning platform on AWS, as code.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)
PIPED_WIDTH = 160


def _console(stream: Any, stderr: bool = False) -> Console:
    """A terminal's width, or COLUMNS when set; piped output (CI logs, make demo) is read wide, at 160."""
    width = None if stream.isatty() or os.environ.get("COLUMNS", "").isdigit() else PIPED_WIDTH
    return Console(stderr=stderr, width=width)


console = _console(sys.stdout)
errors = _console(sys.stderr, stderr=True)

EnvArg = Annotated[str, typer.Argument(help="Environment: the stack name, e.g. dev, staging, prod.")]
LocalArg = Annotated[str, typer.Argument(help="Only `local`: the environment `modelplane up local` runs here.")]
StacksOpt = Annotated[
    Path | None,
    typer.Option(
        "--stacks-dir", help="Folder of the stack program and its config files; default: the project's stacks/."
    ),
]
BuildOpt = Annotated[Path, typer.Option("--build-dir", help="Where the plan writes its files.")]
JsonOpt = Annotated[bool, typer.Option("--json", help="Print one JSON document on stdout (for CI) instead of tables.")]
YesOpt = Annotated[
    bool, typer.Option("--yes", "-y", help="Apply without asking (CI); required when not on a terminal.")
]

F = TypeVar("F", bound=Callable[..., Any])


def _fail(message: str) -> typer.Exit:
    """Print `error: message` on stderr (the message verbatim: brackets are not markup); exit 1."""
    errors.print(f"[red]error:[/red] {escape(message)}", highlight=False, soft_wrap=True)
    return typer.Exit(code=1)


def one_line_errors(command: F) -> F:
    """Every failure a user can cause, as `error: ...` and exit 1; Ctrl-C as one line and exit 130."""

    @functools.wraps(command)
    def run(*args: Any, **kwargs: Any) -> Any:
        try:
            return command(*args, **kwargs)
        except (typer.Exit, click.exceptions.ClickException, click.exceptions.Abort):
            raise
        except KeyboardInterrupt:
            errors.print("interrupted", highlight=False)
            raise typer.Exit(code=130) from None
        except (
            ConfigError,
            DeployError,
            MonitoringToolMissing,
            PromtoolMissingError,
            ValueError,  # a component refusing its inputs names them; UnicodeDecodeError is one
        ) as error:
            raise _fail(str(error)) from None
        except OSError as error:
            where = f"{error.filename}: " if error.filename else ""
            raise _fail(f"{where}{error.strerror or error}") from None
        except Exception as error:
            if os.environ.get("MODELPLANE_DEBUG"):
                raise
            raise _fail(
                f"unexpected {type(error).__name__}: {error} (a modelplane bug: please report it; "
                "MODELPLANE_DEBUG=1 shows the traceback)"
            ) from None

    return run  # type: ignore[return-value]


def command(*args: Any, **kwargs: Any) -> Callable[[F], F]:
    """`app.command`, with one-line errors."""

    def register(function: F) -> F:
        app.command(*args, **kwargs)(one_line_errors(function))
        return function

    return register


def project_root(start: Path) -> Path | None:
    """The nearest folder, from `start` up, holding the project: `stacks/` or `Pulumi.yaml` (as Pulumi looks)."""
    for folder in (start, *start.parents):
        if (folder / "stacks").is_dir() or (folder / "Pulumi.yaml").is_file():
            return folder
    return None


def project_dir() -> Path:
    """Where the local environment keeps its state and the Automation API finds Pulumi.yaml."""
    return project_root(Path.cwd()) or Path.cwd()


def stacks_folder(stacks_dir: Path | None) -> Path:
    """`--stacks-dir`, or the project's `stacks/` found from the working directory up."""
    if stacks_dir is not None:
        if not stacks_dir.is_dir():
            raise _fail(f"--stacks-dir {stacks_dir}: no such folder")
        return stacks_dir
    root = project_root(Path.cwd())
    if root is None or not (root / "stacks").is_dir():
        raise _fail(
            f"no stacks/ folder in {Path.cwd()} or any folder above it: run modelplane inside the project "
            "(the folder with Pulumi.yaml and stacks/), or pass --stacks-dir"
        )
    return root / "stacks"


def _version(value: bool) -> None:
    if value:
        try:
            version = metadata.version("modelplane")
        except metadata.PackageNotFoundError:
            version = "unknown (not installed)"
        typer.echo(f"modelplane {version}")
        raise typer.Exit()


@app.callback()
def main(
    version: Annotated[
        bool, typer.Option("--version", callback=_version, is_eager=True, help="Print the version and exit.")
    ] = False,
) -> None:
    """modelplane: a GPU machine-learning platform on AWS, as code."""
    global console, errors
    console = _console(sys.stdout)
    errors = _console(sys.stderr, stderr=True)


def _emit_json(document: Any) -> None:
    typer.echo(json.dumps(document, indent=2, default=str))


def _config_failure_json(environment: str, error: ConfigError) -> dict[str, Any]:
    return {"environment": environment, "valid": False, "problems": list(error.problems)}


@command()
def plan(
    environment: EnvArg,
    diff: Annotated[Path | None, typer.Option("--diff", help="A previous plan.json to compare with.")] = None,
    stacks_dir: StacksOpt = None,
    build_dir: BuildOpt = Path("build"),
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="Print only counts and cost, not the tree.")] = False,
    check_rules: Annotated[
        bool, typer.Option("--check-rules/--no-check-rules", help="Check the rendered alert rules with promtool.")
    ] = True,
    as_json: JsonOpt = False,
) -> None:
    """Preview ENV offline: no Pulumi CLI, no cloud credentials, no network.

    With --json, stdout holds plan.json's document plus `checks` (promtool, CRD schemas, deployability,
    policies) and, with --diff, `diff`; the exit code is 1 on any problem, as without it.
    """
    stacks = stacks_folder(stacks_dir)
    old_plan = None
    if diff is not None:
        try:
            old_plan = json.loads(diff.read_text())
        except (OSError, ValueError) as exc:
            raise _fail(f"--diff {diff}: cannot read a plan.json ({exc})") from None
    try:
        result = plan_environment(environment, stacks)
    except ConfigError as exc:
        if as_json:
            _emit_json(_config_failure_json(environment, exc))
        raise
    _print_warnings(result.config)
    violations = check_plan(result)
    result.extras["violations"] = [v.to_json() for v in violations]
    findings = deployability_findings(planned_resources(result))
    result.extras["deployability"] = [finding.to_json() for finding in findings]
    files = write_plan(result, build_dir)
    policy_config = write_pack_config(result.config, files.plan_json.parent)
    out = files.plan_json.parent
    changes = diff_plans(old_plan, result.to_json()) if old_plan is not None else None
    rule_problems: list[str] = []
    if check_rules:
        try:
            rule_problems = check_rule_files(files.rules)
        except PromtoolMissingError as exc:
            raise _fail(f"{exc}; or plan with --no-check-rules") from None
    object_problems = custom_object_problems(result.resources)
    rule_failure = "promtool rejects alert rules:\n" + "\n".join(f"  - {p}" for p in rule_problems)
    object_failure = "custom objects the cluster's CRDs would reject:\n" + "\n".join(
        f"  - {p}" for p in object_problems
    )
    policy_failure = f"{len(mandatory(violations))} mandatory policy violation(s)"
    failures = [
        failure
        for failure, failed in (
            (rule_failure, rule_problems),
            (object_failure, object_problems),
            (policy_failure, mandatory(violations)),
        )
        if failed
    ]

    if as_json:
        document = result.to_json()
        document["checks"] = {
            "promtool": {"checked": check_rules, "problems": rule_problems},
            "crd_schemas": {"karpenter": KARPENTER_VERSION, "kueue": KUEUE_VERSION, "problems": object_problems},
            "deployability": {"checks": list(DEPLOYABILITY_CHECKS), "findings": len(findings)},
            "policies": {"violations": len(violations), "mandatory": len(mandatory(violations))},
        }
        document["files"] = {"plan_json": str(files.plan_json), "policy_config": str(policy_config)}
        if changes is not None:
            document["diff"] = [change.to_json() for change in changes]
        _emit_json(document)
        if failures:
            raise _fail(failures[0])
        return

    if not quiet:
        console.print(resource_tree(environment, result.resources))
    console.print(counts_table(result.resources))
    console.print(cost_table(result.cost))
    for note in price_notes(result.cost):
        console.print(note, highlight=False)
    console.print(
        f"Wrote {files.plan_json}, {len(files.manifests)} manifests under {out}/manifests "
        f"and {len(files.rules)} rule files under {out}/rules; the policy pack's config: {policy_config}",
        highlight=False,
    )
    for key in result.extras.get("unset_secrets", []):
        console.print(
            f"[yellow]note:[/yellow] secret {key} is not set; before `up`: "
            f"pulumi config set --secret --stack {environment} {key} '...'",
            highlight=False,
        )
    if changes is not None:
        print_diff(console, changes)
    if check_rules and not rule_problems:
        console.print(f"promtool: {len(files.rules)} rule files OK")
    if rule_problems:
        raise _fail(rule_failure)
    if object_problems:
        raise _fail(object_failure)
    console.print(f"CRD schemas: Karpenter {KARPENTER_VERSION} and Kueue {KUEUE_VERSION} objects OK")
    if findings:
        console.print(deployability_table(findings, planned_resources(result)))
    else:
        console.print(f"deployability: no problems ({', '.join(DEPLOYABILITY_CHECKS)})")
    if violations:
        console.print(violations_table(violations, planned_resources(result)))
    else:
        console.print("policies: no violations")
    if mandatory(violations):
        raise _fail(f"{policy_failure}; see the table above")


@command()
def validate(environment: EnvArg, stacks_dir: StacksOpt = None, as_json: JsonOpt = False) -> None:
    """Check ENV's config and list every problem at once."""
    stacks = stacks_folder(stacks_dir)
    try:
        env = environment_from_stack_file(read_stack_file(environment, stacks))
    except ConfigError as exc:
        if as_json:
            _emit_json(_config_failure_json(environment, exc))
        raise
    warnings = environment_warnings(env)
    if as_json:
        _emit_json(
            {
                "environment": environment,
                "valid": True,
                "problems": [],
                "warnings": warnings,
                "region": env.region,
                "gpu_node_pools": len(env.gpu_node_pools),
            }
        )
        return
    _print_warnings(env)
    console.print(f"{environment}: config is valid ({len(env.gpu_node_pools)} GPU node pools, region {env.region})")


def _print_warnings(env: EnvironmentConfig) -> None:
    for warning in environment_warnings(env):
        errors.print(f"[yellow]warning:[/yellow] {escape(warning)}", highlight=False, soft_wrap=True)


@command()
def catalog() -> None:
    """List the GPU instance types modelplane knows, with their on-demand prices."""
    table = Table(title=f"GPU instance types ({PRICE_SOURCE}, {PRICE_DATE})")
    for column in ("type", "GPUs", "GPU", "GPU GiB", "vCPUs", "GiB", "EFA", "arch", "$/hour"):
        numeric = column not in ("type", "GPU", "arch")
        table.add_column(column, justify="right" if numeric else "left", no_wrap=numeric, overflow="fold")
    for t in GPU_INSTANCE_TYPES.values():
        table.add_row(
            t.name,
            str(t.gpus),
            t.gpu_model,
            f"{t.gpu_memory_gib:g}",
            str(t.vcpus),
            str(t.memory_gib),
            str(t.efa_interfaces),
            t.architecture.value,
            f"{t.on_demand_usd_per_hour:.4f}",
        )
    console.print(table)


@command()
def alerts(markdown: Annotated[bool, typer.Option("--markdown", help="Print as a Markdown table.")] = False) -> None:
    """List every alert modelplane ships: severity, meaning and what to do."""
    if markdown:
        print(markdown_table())
        return
    table = Table(title="Alerts")
    # Alert names are identifiers: they fold whole onto the next line rather than being cut with an ellipsis.
    for column in ("alert", "rule set", "severity", "meaning", "what to do"):
        table.add_column(column, overflow="fold")
    for entry in alert_catalogue():
        table.add_row(entry.alert, entry.rule_set, entry.severity, entry.meaning, entry.action)
    console.print(table)


def _interactive() -> bool:
    """Whether a person can answer a question: stdin is a terminal."""
    return sys.stdin.isatty()


def print_preview(environment: str, outcome: PreviewOutcome, policy_checked: bool) -> None:
    """The steps a preview found, what the policy pack said, and the counts, as `plan --diff` prints them."""
    console.print(f"[bold]Preview of {escape(environment)}[/bold] against its live state:")
    for step in outcome.steps:
        symbol, style = diff_symbol(step.action if step.action != "import" else "create")
        detail = ""
        if step.replaced_by:
            detail = f" (replaced because of: {', '.join(step.replaced_by)})"
        elif step.changed:
            detail = f" (changed: {', '.join(step.changed)})"
        console.print(
            f"[{style}]{symbol} {step.action:7} {escape(step.type)} {escape(step.name)}[/{style}]{escape(detail)}",
            highlight=False,
        )
    if policy_checked:
        if outcome.policies:
            table = Table(title="Policy results")
            for column in ("level", "policy", "resource", "message"):
                table.add_column(column, overflow="fold")
            for policy in outcome.policies:
                resource = policy.urn.rsplit("::", 1)[-1] if policy.urn else "(stack)"
                table.add_row(policy.level, f"{policy.pack}/{policy.policy}", resource, policy.message)
            console.print(table)
        else:
            console.print("policies: no violations")
    counts = outcome.counts()
    console.print(
        f"Preview: {counts['create'] + counts['import']} to add, {counts['update']} to change, "
        f"{counts['replace']} to replace, {counts['delete']} to destroy."
    )


def _deploy(operation: Operation, environment: str, stacks_dir: Path | None, yes: bool, create: bool) -> None:
    """Preview, show, confirm, apply: `up` and `destroy`; `preview` stops after showing."""
    env = environment_from_stack_file(read_stack_file(environment, stacks_folder(stacks_dir)))
    root = project_dir()
    packs, configs = (
        ([], []) if operation is Operation.DESTROY else policy_pack_arguments(env, root / "build" / env.name)
    )
    stack = open_stack(env.name, root, create=create)
    outcome = preview_changes(stack, operation, packs, configs)
    print_preview(environment, outcome, policy_checked=bool(packs))
    if outcome.failure is not None:
        raise _fail(f"the preview of {environment} failed: {outcome.failure}; nothing was applied")
    if outcome.mandatory_violations:
        raise _fail(f"{len(outcome.mandatory_violations)} mandatory policy violation(s): nothing was applied")
    if operation is Operation.PREVIEW:
        return
    if not outcome.steps:
        console.print(f"{environment} is up to date: nothing to apply.")
        return
    if not yes:
        if not _interactive():
            raise _fail(
                f"{operation.value} {environment}: not on a terminal, so no one can confirm; "
                "review the preview above and run again with --yes to apply it"
            )
        if operation is Operation.DESTROY:
            typed = typer.prompt(f"This destroys every resource of {environment}. Type {environment} to confirm")
            confirmed = typed.strip() == environment
        else:
            confirmed = typer.confirm(f"Apply these changes to {environment}?", default=False)
        if not confirmed:
            raise _fail(f"not confirmed: nothing was applied to {environment}")
    try:
        apply(stack, operation, lambda line: console.out(line, highlight=False), packs, configs)
    except KeyboardInterrupt:
        errors.print(
            f"interrupted: Pulumi stops after the operations in flight; {environment} may be partly updated "
            f"(`modelplane preview {environment}` shows what remains)",
            highlight=False,
        )
        raise typer.Exit(code=130) from None
    console.print(f"{operation.value} {environment}: done.")


@command()
def init(environment: EnvArg, stacks_dir: StacksOpt = None) -> None:
    """Create ENV's Pulumi stack (needs the Pulumi CLI, logged in); its config must be valid first."""
    env = environment_from_stack_file(read_stack_file(environment, stacks_folder(stacks_dir)))
    init_stack(env.name, project_dir())
    console.print(f"Created stack {environment}. Before `modelplane up {environment}`, set its secrets:")
    for name in env.monitoring.secret_keys():
        console.print(f"  pulumi config set --secret --stack {environment} modelplane:{name} '...'", highlight=False)


@command()
def up(
    environment: EnvArg,
    stacks_dir: StacksOpt = None,
    yes: YesOpt = False,
    create: Annotated[
        bool, typer.Option("--create", help="Create the stack when it does not exist (else: `modelplane init`).")
    ] = False,
    once: Annotated[bool, typer.Option("--once", help="local: run, print the summary, then stop everything.")] = False,
) -> None:
    """Preview ENV, show the changes and the policy result, ask, then deploy (Pulumi Automation API).

    `up local` runs the workloads on this machine instead.
    """
    if environment == LOCAL:
        from modelplane.local.runner import LocalError
        from modelplane.local_commands import LocalInterrupted, local_up

        try:
            local_up(stacks_folder(stacks_dir), project_dir(), once, console)
        except LocalInterrupted as exc:
            errors.print(escape(str(exc)), highlight=False, soft_wrap=True)
            raise typer.Exit(code=130) from None
        except LocalError as exc:
            raise _fail(str(exc)) from None
        return
    if once:
        raise _fail("--once applies to the local environment only")
    _deploy(Operation.UP, environment, stacks_dir, yes, create)


@command()
def status(environment: LocalArg, stacks_dir: StacksOpt = None, as_json: JsonOpt = False) -> None:
    """Show what the local environment runs (exit 1 when a process it started has crashed)."""
    if environment != LOCAL:
        raise _fail(
            f"status {environment}: only the local environment has processes here; for a cloud stack: "
            f"`pulumi stack --stack {environment}` (resources) and `modelplane logs {environment} WORKLOAD`"
        )
    from modelplane.local_commands import local_status, local_status_json

    stacks = stacks_folder(stacks_dir)
    if as_json:
        document = local_status_json(stacks, project_dir())
        _emit_json(document)
        healthy = bool(document["healthy"])
    else:
        healthy = local_status(stacks, project_dir(), console)
    if not healthy:
        raise typer.Exit(code=1)


@command()
def down(environment: LocalArg, stacks_dir: StacksOpt = None) -> None:
    """Stop every process `up local` started (by PID); artifacts are kept."""
    if environment != LOCAL:
        raise _fail(
            f"down {environment}: only for the local environment; "
            f"`modelplane destroy {environment}` removes cloud resources"
        )
    from modelplane.local_commands import local_down

    local_down(stacks_folder(stacks_dir), project_dir(), console)


@command()
def preview(environment: EnvArg, stacks_dir: StacksOpt = None) -> None:
    """Preview ENV against its live state, with the policy pack (needs the Pulumi CLI); changes nothing."""
    _deploy(Operation.PREVIEW, environment, stacks_dir, yes=False, create=False)


@command()
def destroy(environment: EnvArg, stacks_dir: StacksOpt = None, yes: YesOpt = False) -> None:
    """Preview what destroying ENV removes, ask (type ENV's name), then destroy it (needs the Pulumi CLI)."""
    _deploy(Operation.DESTROY, environment, stacks_dir, yes, create=False)


@command()
def logs(
    environment: EnvArg,
    workload: Annotated[str, typer.Argument(help="A training job's or inference service's name.")],
    since: Annotated[str, typer.Option("--since", help="How far back to start: 10m, 2h, 1d.")] = "1h",
    follow: Annotated[bool, typer.Option("--follow", "-f", help="Keep printing new lines until Ctrl-C.")] = False,
    stacks_dir: StacksOpt = None,
) -> None:
    """Print WORKLOAD's log lines: from CloudWatch Logs for a cloud ENV, from `up local`'s files for local."""
    from modelplane.logs import LogsError, workload_logs

    printed = 0
    try:
        for line in workload_logs(
            environment,
            workload,
            since=since,
            follow=follow,
            stacks_dir=stacks_folder(stacks_dir),
            project_dir=project_dir(),
        ):
            typer.echo(line)
            printed += 1
    except LogsError as exc:
        raise _fail(str(exc)) from None
    except KeyboardInterrupt:
        return
    if not printed and not follow:
        errors.print(f"no log lines of {workload} in {environment} in the last {since}; look further back with --since")


@command()
def seed(
    environment: EnvArg,
    bucket: Annotated[
        str | None, typer.Option("--bucket", help="The artifact bucket; default: found as modelplane-ENV-artifacts-*.")
    ] = None,
    base_model: Annotated[
        Path | None, typer.Option("--base-model", help="A Hugging Face model directory; default the bundled MiniLM.")
    ] = None,
    dataset: Annotated[
        Path | None, typer.Option("--dataset", help="A JSONL or CSV file (text, label); default the synthetic set.")
    ] = None,
    stacks_dir: StacksOpt = None,
) -> None:
    """Upload every training job's base model and dataset to ENV's artifact bucket, where they are missing."""
    import boto3
    from botocore.exceptions import BotoCoreError, ClientError

    from modelplane.seeding import SeedError, artifact_bucket_of, seed_jobs
    from modelplane.workloads.storage import StorageError

    try:
        env = environment_from_stack_file(read_stack_file(environment, stacks_folder(stacks_dir)))
        if not env.training_jobs:
            raise _fail(f"{environment} declares no training jobs: nothing to seed")
        name = bucket or artifact_bucket_of(environment, boto3.client("s3", region_name=env.region))
        report = seed_jobs(env.training_jobs, f"s3://{name}", base_model=base_model, dataset=dataset)
    except SeedError as exc:
        raise _fail(str(exc)) from None
    except (BotoCoreError, ClientError, StorageError) as exc:
        raise _fail(f"seeding {environment} failed: {exc}; check your AWS credentials and the bucket") from None
    for uri in report.seeded:
        console.print(f"seeded {uri}")
    for uri in report.present:
        console.print(f"kept {uri} (already there)")
