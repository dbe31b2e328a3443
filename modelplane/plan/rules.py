"""The alert rules a plan deploys, as plain Prometheus rule files, checked by promtool.

They are read back from the PrometheusRule objects the program registered, so the files hold
exactly what the cluster's Prometheus will load: one source, two renderings.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from modelplane.components.alerting import promtool
from modelplane.plan.manifests import manifest_filename, manifests_of_kind
from modelplane.plan.mocks import RecordedResource

PROMETHEUS_RULE_KIND = "PrometheusRule"


@dataclass(frozen=True)
class RuleFile:
    name: str
    content: dict[str, Any]

    @property
    def alerts(self) -> list[str]:
        return [rule["alert"] for group in self.content.get("groups", []) for rule in group["rules"] if "alert" in rule]

    def summary(self) -> dict[str, Any]:
        return {
            "file": f"rules/{self.name}",
            "groups": [group["name"] for group in self.content.get("groups", [])],
            "alerts": self.alerts,
        }


def rule_files(resources: list[RecordedResource]) -> list[RuleFile]:
    return [
        RuleFile(manifest_filename(manifest).removesuffix(".yaml") + ".yml", {"groups": manifest["spec"]["groups"]})
        for manifest in manifests_of_kind(resources, PROMETHEUS_RULE_KIND)
    ]


def write_rule_files(files: list[RuleFile], directory: Path) -> list[Path]:
    directory.mkdir(parents=True, exist_ok=True)
    for stale in directory.glob("*.yml"):
        stale.unlink()
    paths = []
    for rule_file in files:
        path = directory / rule_file.name
        path.write_text(yaml.safe_dump(rule_file.content, sort_keys=False))
        paths.append(path)
    return paths


def check_rule_files(paths: list[Path]) -> list[str]:
    """promtool's complaints about each file, naming the file, group and rule; empty when all pass."""
    problems = []
    for path in paths:
        result = promtool.check_rules(path)
        if not result.ok:
            lines = [line.strip() for line in result.output.splitlines() if promtool.RULE_ERROR.search(line)]
            problems.extend(lines or [f"{path}: {result.output.strip()}"])
    return problems
