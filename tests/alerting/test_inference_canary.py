"""A canary's inference rules: its own groups, selectors and alert labels, beside the service-wide ones."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from modelplane.components.alerting import promtool
from modelplane.components.alerting.rules import AlertRule, RecordingRule, RuleGroup, render_rules_file, rules_yaml
from modelplane.workloads.serving.alerts import InferenceObjectives, inference_rules

OBJECTIVES = InferenceObjectives(p99_latency_seconds=0.5, max_queue_size=64)
SERVICE_WIDE = inference_rules("chat", OBJECTIVES)
CANARY = inference_rules("chat", OBJECTIVES, track="canary")
BOTH = (*SERVICE_WIDE, *CANARY)


def alerts(groups: tuple[RuleGroup, ...]) -> dict[str, AlertRule]:
    return {rule.alert: rule for group in groups for rule in group.alerts}


def test_the_canary_has_groups_of_its_own() -> None:
    assert [g.name for g in CANARY] == [
        "modelplane-inference-chat-canary-error-ratios",
        "modelplane-inference-chat-canary",
    ]
    assert [g.name for g in SERVICE_WIDE] == ["modelplane-inference-chat-error-ratios", "modelplane-inference-chat"]
    assert len(render_rules_file(BOTH)["groups"]) == 4


def test_canary_recordings_are_named_apart_and_keep_the_track() -> None:
    canary_records = {rule.record for rule in CANARY[0].rules if isinstance(rule, RecordingRule)}
    wide_records = {rule.record for rule in SERVICE_WIDE[0].rules if isinstance(rule, RecordingRule)}
    assert not canary_records & wide_records
    assert all(record.startswith("service_track:") for record in canary_records)
    for rule in CANARY[0].rules:
        assert isinstance(rule, RecordingRule)
        assert "sum by (service, modelplane_io_track)" in rule.expr
        assert rule.expr.count('modelplane_io_track="canary"') == 2


def test_every_canary_alert_selects_the_canary_and_says_so() -> None:
    canary = alerts(CANARY)
    assert set(canary) == set(alerts(SERVICE_WIDE))
    for name, rule in canary.items():
        assert rule.labels["track"] == "canary", name
        if name != "InferenceNoReadyReplicas":
            assert 'modelplane_io_track="canary"' in rule.expr, name
    assert 'deployment="chat-canary"' in canary["InferenceNoReadyReplicas"].expr
    assert canary["InferenceErrorBudgetFastBurn"].summary.startswith("chat (canary) burns")


def test_service_wide_alerts_are_unchanged_by_the_option() -> None:
    wide = alerts(SERVICE_WIDE)
    assert all("modelplane_io_track" not in rule.expr for rule in wide.values())
    assert all("track" not in rule.labels for rule in wide.values())
    assert 'deployment="chat"' in wide["InferenceNoReadyReplicas"].expr
    assert (
        alerts(inference_rules("chat", OBJECTIVES, track="stable"))["InferenceNoReadyReplicas"].expr.count(
            'deployment="chat"'
        )
        == 2
    )


def test_a_track_must_be_a_kubernetes_name() -> None:
    with pytest.raises(ValueError, match="track='Canary!'"):
        inference_rules("chat", OBJECTIVES, track="Canary!")


def test_stable_and_canary_rules_pass_promtool_check_together() -> None:
    assert promtool.validate_groups(list(BOTH)) == []


def _burn(summary: str, *, canary: bool) -> dict[str, Any]:
    """The expected fast-burn alert: the canary's carries the scraped track label and its own `track`."""
    rule = alerts(CANARY)["InferenceErrorBudgetFastBurn"]
    track = {"modelplane_io_track": "canary", "track": "canary"} if canary else {}
    return {
        "exp_labels": {"severity": "critical", "service": "chat", **track},
        "exp_annotations": {"summary": summary, "description": rule.description, "runbook_url": rule.runbook_url},
    }


def _requests(track: str, code: str, values: str) -> dict[str, str]:
    labels = f'service="chat",model="intents",code="{code}",modelplane_io_track="{track}"'
    return {"series": f"modelplane_inference_requests_total{{{labels}}}", "values": values}


def test_a_failing_canary_fires_its_own_alert_and_a_failing_stable_does_not(tmp_path: Path) -> None:
    canary_summary = (
        "chat (canary) burns its error budget fast: the 99.9% availability objective is at risk within hours"
    )
    wide_summary = "chat burns its error budget fast: the 99.9% availability objective is at risk within hours"
    canary_failing = [
        _requests("stable", "200", "0+90x70"),
        _requests("canary", "200", "0+5x70"),
        _requests("canary", "500", "0+5x70"),
    ]
    stable_failing = [
        _requests("stable", "200", "0+90x70"),
        _requests("stable", "500", "0+10x70"),
        _requests("canary", "200", "0+10x70"),
    ]

    def scenario(series: list[dict[str, str]], exp_alerts: list[dict[str, Any]]) -> dict[str, Any]:
        return {
            "interval": "1m",
            "input_series": series,
            "alert_rule_test": [
                {"eval_time": "70m", "alertname": "InferenceErrorBudgetFastBurn", "exp_alerts": exp_alerts}
            ],
        }

    (tmp_path / "rules.yaml").write_text(rules_yaml(BOTH))
    tests_file = tmp_path / "tests.yaml"
    tests = {
        "rule_files": ["rules.yaml"],
        "evaluation_interval": "1m",
        "tests": [
            # Users get the canary's errors too: the service-wide budget burns as well, unlabelled.
            scenario(canary_failing, [_burn(wide_summary, canary=False), _burn(canary_summary, canary=True)]),
            scenario(stable_failing, [_burn(wide_summary, canary=False)]),
        ],
    }
    tests_file.write_text(yaml.safe_dump(tests, sort_keys=False))

    result = promtool.test_rules(tests_file)

    assert result.ok, result.output
