"""Human-readable views of a plan: resource tree, counts by type, cost against budget, diff."""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence
from typing import Any

from rich.console import Console
from rich.table import Table
from rich.tree import Tree

from modelplane.plan.cost import PRICE_MARKS, CostReport
from modelplane.plan.diff import ResourceChange
from modelplane.plan.mocks import RecordedResource
from modelplane.policies.deployability.findings import Finding

_ACTION_STYLE = {
    "create": ("+", "green"),
    "delete": ("-", "red"),
    "update": ("~", "yellow"),
    "replace": ("+-", "magenta"),
}


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
    _name_column(table, "type")
    _figure_column(table, "count")
    for type_, count in sorted(Counter(r.type for r in resources).items()):
        table.add_row(type_, str(count))
    table.add_row("[bold]total[/bold]", f"[bold]{len(resources)}[/bold]")
    return table


def _figure_column(table: Table, header: str) -> None:
    """Right-aligned and never wrapped: when the terminal is narrow the name columns fold, figures stay whole."""
    table.add_column(header, justify="right", no_wrap=True)


def _name_column(table: Table, header: str) -> None:
    table.add_column(header, overflow="fold")


_CAPACITY_WORDS = {"ON_DEMAND": "on-demand", "SPOT": "spot", "CAPACITY_BLOCK": "block"}


def cost_table(cost: CostReport) -> Table:
    """The GPU pools at max size against the budget; each row marks what its price is (see `price_notes`).

    Fits 80 columns with every figure whole: GPUs per node is the instance type's (`modelplane catalog`).
    """
    verdict = "[green]within budget[/green]" if cost.within_budget else "[red]OVER BUDGET[/red]"
    table = Table(title=f"GPU capacity and cost at max size ({cost.price_date} prices)", caption=verdict)
    for header in ("pool", "instance type", "capacity", "GPU"):
        _name_column(table, header)
    for header in ("max\nnodes", "max\nGPUs", "$/hour", "max\n$/month"):
        _figure_column(table, header)
    _name_column(table, "price")
    for pool in cost.pools:
        table.add_row(
            pool.pool,
            pool.instance_type,
            _CAPACITY_WORDS.get(pool.capacity_type, pool.capacity_type),
            pool.gpu_model,
            str(pool.max_nodes),
            str(pool.max_gpus),
            f"{pool.usd_per_hour:,.4f}",
            f"{pool.max_monthly_usd:,.2f}",
            PRICE_MARKS[pool.price_basis],
        )
    table.add_row(
        "[bold]total[/bold]",
        "",
        "",
        "",
        "",
        f"[bold]{cost.total_max_gpus}[/bold]",
        "",
        f"[bold]{cost.total_max_monthly_usd:,.2f}[/bold]",
        "≈" if cost.approximate else "",
    )
    table.add_row("budget", "", "", "", "", str(cost.budget_max_gpus), "", f"{cost.budget_max_monthly_usd:,.2f}", "")
    return table


def price_notes(cost: CostReport) -> list[str]:
    """One line per kind of price the table shows: what it is, and whether it is exact."""
    notes = {pool.price_basis: f"{PRICE_MARKS[pool.price_basis]}: {pool.price_note}" for pool in cost.pools}
    return [f"price {note}" for note in notes.values()]


def diff_symbol(action: str) -> tuple[str, str]:
    return _ACTION_STYLE[action]


def print_diff(console: Console, changes: list[ResourceChange]) -> None:
    if not changes:
        console.print("No changes: the plans are identical.")
        return
    for change in changes:
        symbol, style = _ACTION_STYLE[change.action]
        console.print(f"[{style}]{symbol} {change.action:7} {change.type} {change.name}[/{style}]", highlight=False)
        forcing = set(change.replaced_by)
        for item in change.changes:
            reason = " [red](forces replacement)[/red]" if item.path in forcing else ""
            console.print(f"      {item.path}: {item.old!r} -> {item.new!r}{reason}", highlight=False)
    counts = Counter(c.action for c in changes)
    console.print(
        f"Plan: {counts['create']} to add, {counts['update']} to change, {counts['replace']} to replace, "
        f"{counts['delete']} to destroy."
    )


def deployability_table(findings: Sequence[Finding], resources: Sequence[Mapping[str, Any]]) -> Table:
    """Each finding: the resource, the check, what it needs and is missing, and the fix."""
    names = {resource["urn"]: f"{resource['type']} {resource['name']}" for resource in resources}
    table = Table(title=f"Deployability ({len(findings)} problems)")
    for column in ("resource", "check", "needs", "missing", "fix"):
        table.add_column(column, overflow="fold")
    for finding in findings:
        table.add_row(names.get(finding.urn, finding.urn), finding.check, finding.needs, finding.missing, finding.fix)
    return table
