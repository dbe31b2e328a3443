"""Human-readable views of a plan: resource tree, counts by type, cost against budget, diff."""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence
from typing import Any

from rich.console import Console
from rich.table import Table
from rich.tree import Tree

from modelplane.plan.cost import CostReport
from modelplane.plan.diff import ResourceChange
from modelplane.plan.mocks import RecordedResource
from modelplane.policies.deployability.findings import Finding

_ACTION_STYLE = {"create": ("+", "green"), "delete": ("-", "red"), "update": ("~", "yellow")}


def resource_tree(environment: str, resources: list[RecordedResource]) -> Tree:
    root = Tree(f"[bold]modelplane-{environment}[/bold] (pulumi:pulumi:Stack)")
    nodes: dict[str, Tree] = {}
    for resource in resources:
        parent = nodes.get(resource.parent, root)
        style = "" if resource.custom else "bold cyan"
        label = f"[{style}]{resource.name}[/{style}]" if style else resource.name
        nodes[resource.urn] = parent.add(f"{label} [dim]{resource.type}[/dim]")
    return root


def counts_table(resources: list[RecordedResource]) -> Table:
    table = Table(title="Resources by type")
    table.add_column("type")
    table.add_column("count", justify="right")
    for type_, count in sorted(Counter(r.type for r in resources).items()):
        table.add_row(type_, str(count))
    table.add_row("[bold]total[/bold]", f"[bold]{len(resources)}[/bold]")
    return table


def cost_table(cost: CostReport) -> Table:
    table = Table(title=f"GPU capacity and cost at max size (on-demand list prices, {cost.price_date})")
    for column in ("pool", "instance type", "capacity", "GPU", "GPUs/node", "max nodes", "max GPUs", "$/hour"):
        table.add_column(column, justify="right" if column.startswith(("GPUs", "max", "$")) else "left")
    table.add_column("max $/month", justify="right")
    for pool in cost.pools:
        table.add_row(
            pool.pool,
            pool.instance_type,
            pool.capacity_type,
            pool.gpu_model,
            str(pool.gpus_per_node),
            str(pool.max_nodes),
            str(pool.max_gpus),
            f"{pool.usd_per_hour:,.4f}",
            f"{pool.max_monthly_usd:,.2f}",
        )
    verdict = "[green]within budget[/green]" if cost.within_budget else "[red]OVER BUDGET[/red]"
    table.add_row(
        "[bold]total[/bold]",
        "",
        "",
        "",
        "",
        "",
        f"[bold]{cost.total_max_gpus}[/bold]",
        "",
        f"[bold]{cost.total_max_monthly_usd:,.2f}[/bold]",
    )
    table.add_row(
        "budget", "", "", "", "", "", str(cost.budget_max_gpus), verdict, f"{cost.budget_max_monthly_usd:,.2f}"
    )
    return table


def print_diff(console: Console, changes: list[ResourceChange]) -> None:
    if not changes:
        console.print("No changes: the plans are identical.")
        return
    for change in changes:
        symbol, style = _ACTION_STYLE[change.action]
        console.print(f"[{style}]{symbol} {change.action:6} {change.type} {change.name}[/{style}]")
        for item in change.changes:
            console.print(f"      {item.path}: {item.old!r} -> {item.new!r}")
    counts = Counter(c.action for c in changes)
    console.print(f"Plan: {counts['create']} to add, {counts['update']} to change, {counts['delete']} to destroy.")


def deployability_table(findings: Sequence[Finding], resources: Sequence[Mapping[str, Any]]) -> Table:
    """Each finding: the resource, the check, what it needs and is missing, and the fix."""
    names = {resource["urn"]: f"{resource['type']} {resource['name']}" for resource in resources}
    table = Table(title=f"Deployability ({len(findings)} problems)")
    for column in ("resource", "check", "needs", "missing", "fix"):
        table.add_column(column, overflow="fold")
    for finding in findings:
        table.add_row(names.get(finding.urn, finding.urn), finding.check, finding.needs, finding.missing, finding.fix)
    return table
