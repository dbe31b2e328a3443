"""Prometheus' own checks on rules, by running its `promtool` binary.

Only Prometheus knows for sure whether PromQL parses and templates render, so rules are checked
by the same code that will load them, not by a reimplementation.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from modelplane.components.alerting.rules import AlertRule, RuleGroup, rules_yaml

INSTALL_HINT = "install it with `apt-get install prometheus` (Debian/Ubuntu) or from prometheus.io/download"
PROMTOOL_TIMEOUT_SECONDS = 120
# promtool's error lines: `<file>: [line:col: ]group "g", rule 2, "Name": message`.
RULE_ERROR = re.compile(r'group "(?P<group>[^"]*)", rule (?P<index>\d+), "(?P<name>[^"]*)": (?P<message>.*)$')


class PromtoolMissingError(RuntimeError):
    pass


@dataclass(frozen=True)
class CheckResult:
    """What one promtool run said."""

    command: tuple[str, ...]
    returncode: int
    output: str
    """stdout and stderr together, as promtool interleaves them."""

    @property
    def ok(self) -> bool:
        return self.returncode == 0


def promtool_path() -> str:
    found = shutil.which("promtool")
    if found is None:
        raise PromtoolMissingError(f"promtool is not on PATH: {INSTALL_HINT}")
    return found


def _run(*args: str) -> CheckResult:
    command = (promtool_path(), *args)
    completed = subprocess.run(
        command,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        timeout=PROMTOOL_TIMEOUT_SECONDS,
        check=False,
    )
    return CheckResult(command=command, returncode=completed.returncode, output=completed.stdout)


def check_rules(path: Path) -> CheckResult:
    """`promtool check rules PATH`: syntax, PromQL and templates of a rules file."""
    return _run("check", "rules", str(path))


def test_rules(path: Path) -> CheckResult:
    """`promtool test rules PATH`: run the unit tests of a rules test file."""
    return _run("test", "rules", str(path))


def validate_groups(groups: Sequence[RuleGroup]) -> list[str]:
    """Every problem promtool finds in `groups`, each naming the group and rule; empty when all are valid."""
    with tempfile.TemporaryDirectory(prefix="modelplane-rules-") as directory:
        path = Path(directory) / "rules.yaml"
        path.write_text(rules_yaml(groups))
        result = check_rules(path)
    if result.ok:
        return []
    by_name = {group.name: group for group in groups}
    problems = [_describe(match, by_name) for line in result.output.splitlines() if (match := RULE_ERROR.search(line))]
    # A failure that names no rule (e.g. a repeated group name) is reported as promtool wrote it.
    return problems or [result.output.strip()]


def _describe(match: re.Match[str], by_name: dict[str, RuleGroup]) -> str:
    rule = by_name[match["group"]].rules[int(match["index"]) - 1]
    kind = "alert" if isinstance(rule, AlertRule) else "record"
    return f"rule group {match['group']!r}, {kind} {match['name']!r}: {match['message']}"
