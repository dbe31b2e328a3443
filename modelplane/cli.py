"""The `modelplane` command."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from modelplane.alert_catalogue import alert_catalogue, markdown_table
from modelplane.automation import Operation, PulumiCliMissing, run_operation
from modelplane.components.alerting.promtool import PromtoolMissingError
from modelplane.config import ConfigError, EnvironmentConfig, environment_warnings
from modelplane.local.monitoring import MonitoringToolMissing
from modelplane.local.settings import LOCAL
from modelplane.plan.crd_validation import KARPENTER_VERSION, KUEUE_VERSION
from modelplane.plan.diff import diff_plans
from modelplane.plan.engine import plan_environment, write_plan
from modelplane.plan.manifests import custom_object_problems
from modelplane.plan.policy_check import check_plan, mandatory, planned_resources, violations_table
from modelplane.plan.report import cost_table, counts_table, deployability_table, print_diff, resource_tree
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
# Piped output (CI logs, make demo) is read wide: do not truncate tables to 80 columns.
console = Console(width=None if sys.stdout.isatty() else 160)
errors = Console(stderr=True, width=None if sys.stderr.isatty() else 160)

PROJECT_DIR = Path.cwd()
EnvArg = Annotated[str, typer.Argument(help="Environment: the stack name, e.g. dev, staging, prod.")]
StacksOpt = Annotated[Path, typer.Option("--stacks-dir", help="Folder of the stack program and its config files.")]
BuildOpt = Annotated[Path, typer.Option("--build-dir", help="Where the plan writes its files.")]


def _fail(message: str) -> typer.Exit:
    errors.print(f"[red]error:[/red] {message}", highlight=False, soft_wrap=True)
    return typer.Exit(code=1)


@app.command()
def plan(
    environment: EnvArg,
    diff: Annotated[Path | None, typer.Option("--diff", help="A previous plan.json to compare with.")] = None,
    stacks_dir: StacksOpt = Path("stacks"),
    build_dir: BuildOpt = Path("build"),
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="Print only counts and cost, not the tree.")] = False,
    check_rules: Annotated[
        bool, typer.Option("--check-rules/--no-check-rules", help="Check the rendered alert rules with promtool.")
    ] = True,
) -> None:
    """Preview ENV offline: no Pulumi CLI, no cloud credentials, no network."""
    old_plan = None
    if diff is not None:
        try:
            old_plan = json.loads(diff.read_text())
        except (OSError, json.JSONDecodeError) as exc:
            raise _fail(f"--diff {diff}: cannot read a plan.json ({exc})") from None
    try:
        result = plan_environment(environment, stacks_dir)
    except (ConfigError, ValueError) as exc:
        # A component refuses its inputs with a ValueError naming them: one line, like a config problem.
        raise _fail(str(exc)) from None
    _print_warnings(result.config)
    violations = check_plan(result)
    result.extras["violations"] = [v.to_json() for v in violations]
    findings = deployability_findings(planned_resources(result))
    result.extras["deployability"] = [finding.to_json() for finding in findings]
    files = write_plan(result, build_dir)
    policy_config = write_pack_config(result.config, files.plan_json.parent)
    if not quiet:
        console.print(resource_tree(environment, result.resources))
    console.print(counts_table(result.resources))
    console.print(cost_table(result.cost))
    out = files.plan_json.parent
    console.print(
        f"Wrote {files.plan_json}, {len(files.manifests)} manifests under {out}/manifests "
        f"and {len(files.rules)} rule files under {out}/rules; the policy pack's config: {policy_config}"
    )
    for key in result.extras.get("unset_secrets", []):
        console.print(f"[yellow]note:[/yellow] secret {key} is not set; before `up`: pulumi config set --secret {key}")
    if old_plan is not None:
        print_diff(console, diff_plans(old_plan, result.to_json()))
    if check_rules:
        try:
            problems = check_rule_files(files.rules)
        except PromtoolMissingError as exc:
            raise _fail(f"{exc}; or plan with --no-check-rules") from None
        if problems:
            raise _fail("promtool rejects alert rules:\n" + "\n".join(f"  - {p}" for p in problems))
        console.print(f"promtool: {len(files.rules)} rule files OK")
    object_problems = custom_object_problems(result.resources)
    if object_problems:
        raise _fail(
            "custom objects the cluster's CRDs would reject:\n" + "\n".join(f"  - {p}" for p in object_problems)
        )
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
        raise _fail(f"{len(mandatory(violations))} mandatory policy violation(s); see the table above")


@app.command()
def validate(environment: EnvArg, stacks_dir: StacksOpt = Path("stacks")) -> None:
    """Check ENV's config and list every problem at once."""
    try:
        env = environment_from_stack_file(read_stack_file(environment, stacks_dir))
    except ConfigError as exc:
        raise _fail(str(exc)) from None
    _print_warnings(env)
    console.print(f"{environment}: config is valid ({len(env.gpu_node_pools)} GPU node pools, region {env.region})")


def _print_warnings(env: EnvironmentConfig) -> None:
    for warning in environment_warnings(env):
        errors.print(f"[yellow]warning:[/yellow] {warning}", highlight=False, soft_wrap=True)


@app.command()
def catalog() -> None:
    """List the GPU instance types modelplane knows, with their on-demand prices."""
    table = Table(title=f"GPU instance types ({PRICE_SOURCE}, {PRICE_DATE})")
    for column in ("type", "GPUs", "GPU", "GPU GiB", "vCPUs", "GiB", "EFA", "arch", "$/hour"):
        table.add_column(column)
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


@app.command()
def alerts(markdown: Annotated[bool, typer.Option("--markdown", help="Print as a Markdown table.")] = False) -> None:
    """List every alert modelplane ships: severity, meaning and what to do."""
    if markdown:
        print(markdown_table())
        return
    table = Table(title="Alerts")
    for column in ("alert", "rule set", "severity", "meaning", "what to do"):
        table.add_column(column)
    for entry in alert_catalogue():
        table.add_row(entry.alert, entry.rule_set, entry.severity, entry.meaning, entry.action)
    console.print(table)


def _drive(operation: Operation, environment: str, stacks_dir: Path) -> None:
    try:
        env = environment_from_stack_file(read_stack_file(environment, stacks_dir))
        run_operation(operation, env, PROJECT_DIR)
    except ConfigError as exc:
        raise _fail(str(exc)) from None
    except PulumiCliMissing as exc:
        raise _fail(str(exc)) from None


@app.command()
def up(
    environment: EnvArg,
    stacks_dir: StacksOpt = Path("stacks"),
    once: Annotated[bool, typer.Option("--once", help="local: run, print the summary, then stop everything.")] = False,
) -> None:
    """Deploy ENV with the Pulumi Automation API; `up local` runs the workloads on this machine instead."""
    if environment == LOCAL:
        from modelplane.local.runner import LocalError
        from modelplane.local_commands import local_up

        try:
            local_up(stacks_dir, PROJECT_DIR, once, console)
        except (LocalError, ConfigError, MonitoringToolMissing) as exc:
            raise _fail(str(exc)) from None
        return
    if once:
        raise _fail("--once applies to the local environment only")
    _drive(Operation.UP, environment, stacks_dir)


@app.command()
def status(environment: EnvArg, stacks_dir: StacksOpt = Path("stacks")) -> None:
    """Show what the local environment runs (exit 1 when a process it started has crashed)."""
    if environment != LOCAL:
        raise _fail(
            f"status {environment}: only the local environment has processes here; use `pulumi stack` for {environment}"
        )
    from modelplane.local_commands import local_status

    if not local_status(stacks_dir, PROJECT_DIR, console):
        raise typer.Exit(code=1)


@app.command()
def down(environment: EnvArg, stacks_dir: StacksOpt = Path("stacks")) -> None:
    """Stop every process `up local` started (by PID); artifacts are kept."""
    if environment != LOCAL:
        raise _fail(
            f"down {environment}: only for the local environment; "
            f"`modelplane destroy {environment}` removes cloud resources"
        )
    from modelplane.local_commands import local_down

    local_down(stacks_dir, PROJECT_DIR, console)


@app.command()
def preview(environment: EnvArg, stacks_dir: StacksOpt = Path("stacks")) -> None:
    """Preview ENV against its live state with the Pulumi Automation API (needs the Pulumi CLI)."""
    _drive(Operation.PREVIEW, environment, stacks_dir)


@app.command()
def destroy(environment: EnvArg, stacks_dir: StacksOpt = Path("stacks")) -> None:
    """Destroy ENV's resources with the Pulumi Automation API (needs the Pulumi CLI)."""
    _drive(Operation.DESTROY, environment, stacks_dir)


@app.command()
def logs(
    environment: EnvArg,
    workload: Annotated[str, typer.Argument(help="A training job's or inference service's name.")],
    since: Annotated[str, typer.Option("--since", help="How far back to start: 10m, 2h, 1d.")] = "1h",
    follow: Annotated[bool, typer.Option("--follow", "-f", help="Keep printing new lines until Ctrl-C.")] = False,
    stacks_dir: StacksOpt = Path("stacks"),
) -> None:
    """Print WORKLOAD's log lines: from CloudWatch Logs for a cloud ENV, from `up local`'s files for local."""
    from modelplane.logs import LogsError, workload_logs

    printed = 0
    try:
        for line in workload_logs(
            environment, workload, since=since, follow=follow, stacks_dir=stacks_dir, project_dir=PROJECT_DIR
        ):
            typer.echo(line)
            printed += 1
    except (LogsError, ConfigError) as exc:
        raise _fail(str(exc)) from None
    except KeyboardInterrupt:
        return
    if not printed and not follow:
        errors.print(f"no log lines of {workload} in {environment} in the last {since}; look further back with --since")


@app.command()
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
    stacks_dir: StacksOpt = Path("stacks"),
) -> None:
    """Upload every training job's base model and dataset to ENV's artifact bucket, where they are missing."""
    import boto3
    from botocore.exceptions import BotoCoreError, ClientError

    from modelplane.seeding import SeedError, artifact_bucket_of, seed_jobs

    try:
        env = environment_from_stack_file(read_stack_file(environment, stacks_dir))
        if not env.training_jobs:
            raise _fail(f"{environment} declares no training jobs: nothing to seed")
        name = bucket or artifact_bucket_of(environment, boto3.client("s3", region_name=env.region))
        report = seed_jobs(env.training_jobs, f"s3://{name}", base_model=base_model, dataset=dataset)
    except (ConfigError, SeedError) as exc:
        raise _fail(str(exc)) from None
    except (BotoCoreError, ClientError) as exc:
        raise _fail(f"seeding {environment} failed: {exc}; check your AWS credentials and the bucket") from None
    for uri in report.seeded:
        console.print(f"seeded {uri}")
    for uri in report.present:
        console.print(f"kept {uri} (already there)")
