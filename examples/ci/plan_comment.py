"""Turn `modelplane plan ENV --json` output (and its stderr) into a pull-request comment in Markdown.

Usage: python plan_comment.py ENV plan-output.json plan-errors.txt > comment.md
Standard library only: it runs in CI next to the plan, in the same virtual environment.
"""

from __future__ import annotations

import json
import sys
from collections import Counter
from pathlib import Path
from typing import Any

MAX_DIFF_ROWS = 60
SYMBOLS = {"create": "+", "update": "~", "replace": "+-", "delete": "-"}


def _cell(value: object) -> str:
    return str(value).replace("|", "\\|").replace("\n", " ")


def _short(urn: str) -> str:
    return urn.rsplit("::", 1)[-1] if urn else "(stack)"


def diff_section(changes: list[dict[str, Any]]) -> list[str]:
    if not changes:
        return ["**Changes against the base branch:** none."]
    counts = Counter(change["action"] for change in changes)
    lines = [
        f"**Changes against the base branch:** {counts['create']} to add, {counts['update']} to change, "
        f"{counts['replace']} to replace, {counts['delete']} to destroy.",
        "",
        "<details><summary>Resources</summary>",
        "",
        "| | action | type | name | changed inputs |",
        "| --- | --- | --- | --- | --- |",
    ]
    for change in changes[:MAX_DIFF_ROWS]:
        forcing = set(change.get("replaced_by", []))
        inputs = ", ".join(
            f"`{item['path']}`{' (forces replacement)' if item['path'] in forcing else ''}"
            for item in change.get("changes", [])
        )
        symbol = SYMBOLS.get(change["action"], "?")
        lines.append(
            f"| `{symbol}` | {change['action']} | `{change['type']}` | {_cell(change['name'])} | {_cell(inputs)} |"
        )
    if len(changes) > MAX_DIFF_ROWS:
        lines.append(f"| | | | … {len(changes) - MAX_DIFF_ROWS} more | |")
    lines += ["", "</details>"]
    return lines


def policy_section(violations: list[dict[str, Any]]) -> list[str]:
    if not violations:
        return ["**Policies:** no violations."]
    mandatory = sum(1 for violation in violations if violation["level"] == "mandatory")
    lines = [
        f"**Policies:** {len(violations)} violation(s), {mandatory} mandatory.",
        "",
        "| level | rule | resource | message |",
        "| --- | --- | --- | --- |",
    ]
    for violation in violations:
        lines.append(
            f"| {violation['level']} | `{violation['rule']}` | {_cell(_short(violation['urn']))} "
            f"| {_cell(violation['message'])} |"
        )
    return lines


def cost_section(cost: dict[str, Any]) -> list[str]:
    approximate = " (approximate: see each pool's price basis in plan.json)" if cost.get("approximate") else ""
    verdict = "within budget" if cost.get("within_budget") else "**OVER BUDGET**"
    total, budget = cost["total_max_monthly_usd"], cost["budget_max_monthly_usd"]
    gpus = f"{cost['total_max_gpus']} of {cost['budget_max_gpus']} GPUs"
    return [f"**GPU cost at max size:** ${total:,.2f}/month of ${budget:,.2f}, {gpus}: {verdict}{approximate}."]


def comment(environment: str, document: dict[str, Any] | None, errors: str) -> str:
    """The comment's Markdown: the verdict, then what failed, the diff, the policies, deployability, cost."""
    failed = document is None or any(line.startswith("error:") for line in errors.splitlines())
    lines = [f"### modelplane plan `{environment}`: {'fails' if failed else 'passes'}", ""]
    if errors.strip():
        lines += ["```", errors.strip(), "```", ""]
    if document is None or "resources" not in document:
        problems = (document or {}).get("problems", [])
        lines += [f"- {_cell(problem)}" for problem in problems]
        return "\n".join(lines) + "\n"
    if "diff" in document:
        lines += [*diff_section(document["diff"]), ""]
    else:
        lines += ["**Changes:** the base branch does not plan this environment; everything is new.", ""]
    lines += [*policy_section(document.get("violations", [])), ""]
    findings = document.get("deployability", [])
    if findings:
        lines.append(f"**Deployability:** {len(findings)} problem(s).")
        lines += [f"- `{finding['check']}` {_cell(_short(finding['urn']))}: needs {_cell(finding['needs'])}; "
                  f"{_cell(finding['missing'])}; fix: {_cell(finding['fix'])}" for finding in findings]  # fmt: skip
    else:
        lines.append("**Deployability:** no problems.")
    lines += ["", *cost_section(document["cost"])]
    return "\n".join(lines) + "\n"


def main(argv: list[str]) -> int:
    environment, output, errors = argv[1], Path(argv[2]), Path(argv[3])
    try:
        document = json.loads(output.read_text())
    except (OSError, ValueError):
        document = None
    stderr = errors.read_text() if errors.is_file() else ""
    sys.stdout.write(comment(environment, document, stderr))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
