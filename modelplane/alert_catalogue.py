"""Every alert modelplane ships, with what it means and what to do: for `modelplane alerts` and the README."""

from __future__ import annotations

from dataclasses import dataclass

from modelplane.components.alerting.gpu_rules import gpu_rules
from modelplane.components.alerting.platform_rules import platform_rules
from modelplane.components.alerting.rules import RuleGroup
from modelplane.workloads.serving.alerts import inference_rules
from modelplane.workloads.serving.spec import Batching, Objectives, inference_objectives
from modelplane.workloads.training.alerts import TrainingAlertThresholds, training_rules

EXAMPLE_POOL = "gpu-small"
EXAMPLE_JOB = "sentiment-train"
EXAMPLE_SERVICE = "sentiment"


@dataclass(frozen=True)
class CatalogueEntry:
    rule_set: str
    alert: str
    severity: str
    meaning: str
    action: str


def _example_groups() -> list[tuple[str, RuleGroup]]:
    # An inference service as declared with every default, so the catalogue's numbers are the ones deployed.
    inference = inference_rules(EXAMPLE_SERVICE, inference_objectives(Objectives(), Batching()))
    return [
        ("GPU", gpu_rules()),
        ("platform", platform_rules({EXAMPLE_POOL: 2})),
        ("training (per job)", training_rules(EXAMPLE_JOB, TrainingAlertThresholds())),
        *[("inference (per service)", group) for group in inference],
    ]


def _split(description: str) -> tuple[str, str]:
    """First sentence says what is wrong; the rest says what to do."""
    head, _, tail = description.partition(". ")
    return head.rstrip(".") + ".", tail.strip() or "-"


def alert_catalogue() -> list[CatalogueEntry]:
    entries = []
    for rule_set, group in _example_groups():
        for rule in group.alerts:
            meaning, action = _split(rule.description)
            entries.append(CatalogueEntry(rule_set, rule.alert, rule.severity.value, meaning, action))
    return entries


def markdown_table() -> str:
    lines = ["| alert | rule set | severity | meaning | what to do |", "| --- | --- | --- | --- | --- |"]
    for entry in alert_catalogue():
        cells = (entry.alert, entry.rule_set, entry.severity, entry.meaning, entry.action)
        lines.append("| " + " | ".join(cell.replace("|", "\\|") for cell in cells) + " |")
    return "\n".join(lines)
