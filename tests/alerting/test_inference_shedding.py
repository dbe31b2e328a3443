"""Shed load is not an error of the service: the burn-rate alerts ignore it and InferenceRequestsShed sees it."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from modelplane.components.alerting import promtool
from modelplane.components.alerting.rules import rules_yaml
from tests.alerting.rule_sets import RULE_SETS, alert_named

SERIES = 'service="chat",model="llama"'


def series(name: str, labels: str, values: str) -> dict[str, str]:
    return {"series": f"{name}{{{SERIES},{labels}}}", "values": values}


def expected_shed_alert(value: str) -> dict[str, Any]:
    rule = alert_named("inference", "InferenceRequestsShed")
    return {
        "exp_labels": {"severity": "warning", "service": "chat", "model": "llama"},
        "exp_annotations": {
            "summary": f"chat/llama turns away {value} of requests",
            "description": rule.description,
            "runbook_url": rule.runbook_url,
        },
    }


def run_scenarios(tmp_path: Path, scenarios: list[dict[str, Any]]) -> promtool.CheckResult:
    (tmp_path / "rules.yaml").write_text(rules_yaml(RULE_SETS["inference"]))
    tests_file = tmp_path / "tests.yaml"
    tests = {"rule_files": ["rules.yaml"], "evaluation_interval": "1m", "tests": scenarios}
    tests_file.write_text(yaml.safe_dump(tests, sort_keys=False))
    return promtool.test_rules(tests_file)


def test_overload_503s_page_nobody_but_the_shedding_alert_fires(tmp_path: Path) -> None:
    # Half the requests turned away for 70 minutes: far past the fast burn's 14.4 x 0.1% if they were errors.
    shedding_half = [
        series("modelplane_inference_requests_total", 'code="200"', "0+50x70"),
        series("modelplane_inference_requests_shed_total", 'reason="queue_full"', "0+50x70"),
    ]
    alerts: list[dict[str, Any]] = [
        {"eval_time": "70m", "alertname": name, "exp_alerts": []}
        for name in ("InferenceErrorBudgetFastBurn", "InferenceErrorBudgetSlowBurn", "InferenceModelErrorRatioHigh")
    ]
    alerts.append(
        {"eval_time": "70m", "alertname": "InferenceRequestsShed", "exp_alerts": [expected_shed_alert("50%")]}
    )

    result = run_scenarios(tmp_path, [{"interval": "1m", "input_series": shedding_half, "alert_rule_test": alerts}])

    assert result.ok, result.output


def test_a_model_that_sheds_every_request_still_alerts(tmp_path: Path) -> None:
    """No request was answered, so `requests_total` has no series at all: the ratio must not vanish with it."""
    everything_shed = [
        series("modelplane_inference_requests_shed_total", 'reason="deadline"', "0+30x20"),
        series("modelplane_inference_requests_shed_total", 'reason="queue_full"', "0+70x20"),
    ]
    alert = {"eval_time": "20m", "alertname": "InferenceRequestsShed", "exp_alerts": [expected_shed_alert("100%")]}

    result = run_scenarios(tmp_path, [{"interval": "1m", "input_series": everything_shed, "alert_rule_test": [alert]}])

    assert result.ok, result.output


def test_real_5xx_still_burn_the_budget_beside_shed_load(tmp_path: Path) -> None:
    failing = [
        series("modelplane_inference_requests_total", 'code="200"', "0+90x70"),
        series("modelplane_inference_requests_total", 'code="500"', "0+10x70"),
        series("modelplane_inference_requests_shed_total", 'reason="queue_full"', "0x70"),
    ]
    fast_burn = alert_named("inference", "InferenceErrorBudgetFastBurn")
    expected = {
        "exp_labels": {"severity": "critical", "service": "chat"},
        "exp_annotations": {
            "summary": "chat burns its error budget fast: the 99.9% availability objective is at risk within hours",
            "description": fast_burn.description,
            "runbook_url": fast_burn.runbook_url,
        },
    }
    alerts = [
        {"eval_time": "70m", "alertname": "InferenceErrorBudgetFastBurn", "exp_alerts": [expected]},
        {"eval_time": "70m", "alertname": "InferenceRequestsShed", "exp_alerts": []},
    ]

    result = run_scenarios(tmp_path, [{"interval": "1m", "input_series": failing, "alert_rule_test": alerts}])

    assert result.ok, result.output
