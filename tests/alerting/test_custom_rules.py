from __future__ import annotations

import pytest

from modelplane.components.alerting.custom_rules import CustomRuleError, custom_rule_group, parse_custom_rule
from modelplane.components.alerting.rules import AlertRule, Severity
from tests.alerting.rule_sets import CUSTOM_ALERT


def test_config_entry_becomes_an_alert_rule() -> None:
    assert parse_custom_rule(CUSTOM_ALERT) == AlertRule(
        alert="FeatureStoreLagHigh",
        expr="feature_store_lag_seconds > 300",
        for_="10m",
        severity=Severity.WARNING,
        summary="Feature store lag is {{ $value }}s",
        labels={"team": "data"},
    )


def test_defaults_for_duration_and_severity() -> None:
    rule = parse_custom_rule({"alert": "QueueBacklogHigh", "expr": "queue_backlog > 10", "summary": "Backlog"})

    assert (rule.for_, rule.severity) == ("5m", Severity.WARNING)


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"severity": "page"}, r"custom_alerts\[0\]: severity: Input should be 'critical', 'warning' or 'info'"),
        ({"fro": "5m"}, r"custom_alerts\[0\]: fro: Extra inputs are not permitted"),
        ({"alert": "feature lag"}, r"custom_alerts\[0\]: alert='feature lag': must be a CamelCase identifier"),
        ({"for": "ten minutes"}, r"custom_alerts\[0\]: alert FeatureStoreLagHigh: for_='ten minutes'"),
    ],
)
def test_bad_entry_names_its_place_and_the_fix(changes: dict[str, str], message: str) -> None:
    with pytest.raises(CustomRuleError, match=message):
        parse_custom_rule({**CUSTOM_ALERT, **changes})


def test_group_reports_every_bad_entry() -> None:
    entries = [CUSTOM_ALERT, {**CUSTOM_ALERT, "summary": ""}, {**CUSTOM_ALERT, "severity": "page"}]

    with pytest.raises(CustomRuleError) as raised:
        custom_rule_group(entries)

    assert [problem.split(":")[0] for problem in raised.value.problems] == ["custom_alerts[1]", "custom_alerts[2]"]
