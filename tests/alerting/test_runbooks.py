"""Every alert modelplane ships has its runbook page, the one its `runbook_url` names, and the page's queries parse."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from modelplane.components.alerting.promtool import validate_groups
from modelplane.components.alerting.rules import (
    DEFAULT_RUNBOOK_BASE_URL,
    AlertRule,
    RecordingRule,
    RuleGroup,
    Severity,
    with_runbook_base,
)
from modelplane.workloads.serving.alerts import InferenceObjectives, inference_rules
from modelplane.workloads.serving.kubernetes import CANARY
from tests.alerting.rule_sets import RULE_SETS

ROOT = Path(__file__).resolve().parents[2]
RUNBOOKS = ROOT / "docs" / "runbooks"
SECTIONS = ("## What it means", "## How to confirm", "## What to do")
FENCE = re.compile(r"```(\w+)\n(.*?)\n```", re.DOTALL)
INLINE_COMMAND = re.compile(r"`((kubectl|modelplane|aws|promtool|curl) [^`]+|[a-z_:]+\{[^`]*)`")
"""A command or a PromQL selector written inline."""


def shipped_alerts() -> list[AlertRule]:
    """Every rule set the platform deploys (the custom set is the team's own), the canary track's included."""
    groups = [group for name, groups in RULE_SETS.items() if name != "custom" for group in groups]
    groups += inference_rules("chat", InferenceObjectives(p99_latency_seconds=0.5, max_queue_size=64), track=CANARY)
    return [alert for group in groups for alert in group.alerts]


def page_of(alert: AlertRule) -> Path:
    return RUNBOOKS / f"{alert.alert}.md"


def test_the_shipped_rule_sets_are_all_here() -> None:
    names = {alert.alert for alert in shipped_alerts()}
    assert {"GpuXidError", "KubeNodeNotReady", "TrainingStalled", "InferenceNoReadyReplicas"} <= names
    assert len(names) >= 20


@pytest.mark.parametrize("alert", shipped_alerts(), ids=lambda alert: alert.alert)
def test_every_shipped_alert_links_to_its_page(alert: AlertRule) -> None:
    assert alert.runbook_url == f"{DEFAULT_RUNBOOK_BASE_URL}/{alert.alert}.md"
    relative = alert.runbook_url.removeprefix(DEFAULT_RUNBOOK_BASE_URL.removesuffix("docs/runbooks"))
    assert (ROOT / relative).is_file(), f"{alert.alert}: no runbook at {relative}; write it"


@pytest.mark.parametrize("alert", sorted({a.alert for a in shipped_alerts()}))
def test_every_page_says_what_it_means_how_to_confirm_and_what_to_do(alert: str) -> None:
    text = (RUNBOOKS / f"{alert}.md").read_text()
    assert text.startswith(f"# {alert}\n")
    positions = [text.find(section) for section in SECTIONS]
    assert all(position >= 0 for position in positions), f"{alert}: needs the sections {SECTIONS}"
    assert positions == sorted(positions)
    confirm = text[positions[1] : positions[2]]
    assert FENCE.search(confirm) or INLINE_COMMAND.search(confirm), f"{alert}: 'How to confirm' needs a query to run"


def test_the_pages_queries_are_valid_promql() -> None:
    """Each ```promql block is checked by promtool, as a recording rule of its own."""
    queries = [
        (page.stem, body)
        for page in sorted(RUNBOOKS.glob("*.md"))
        for kind, body in FENCE.findall(page.read_text())
        if kind == "promql"
    ]
    assert len(queries) >= 20
    rules = tuple(
        RecordingRule(record=f"runbook:{stem}:query{index}", expr=body) for index, (stem, body) in enumerate(queries)
    )
    assert validate_groups([RuleGroup(name="runbook-queries", rules=rules)]) == []


def test_the_index_links_every_page() -> None:
    index = (RUNBOOKS / "README.md").read_text()
    for page in RUNBOOKS.glob("*.md"):
        if page.name != "README.md":
            assert f"]({page.name})" in index, page.name


def test_a_configured_base_moves_every_shipped_link_and_keeps_a_teams_own() -> None:
    shipped = shipped_alerts()[0]
    own = AlertRule("Mine", "up == 0", "5m", Severity.WARNING, "x", runbook_url="https://team.example/mine")
    moved = with_runbook_base([RuleGroup(name="g", rules=(shipped, own))], "https://runbooks.example/ml/")
    urls = [alert.runbook_url for alert in moved[0].alerts]
    assert urls == [f"https://runbooks.example/ml/{shipped.alert}.md", "https://team.example/mine"]
