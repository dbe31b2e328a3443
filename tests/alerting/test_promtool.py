from __future__ import annotations

from pathlib import Path

import pytest

from modelplane.components.alerting import promtool
from modelplane.components.alerting.custom_rules import custom_rule_group
from modelplane.components.alerting.rules import rules_yaml
from tests.alerting.rule_sets import CUSTOM_ALERT, RULE_SETS


@pytest.mark.parametrize("rule_set", sorted(RULE_SETS))
def test_rule_set_passes_promtool_check(rule_set: str, tmp_path: Path) -> None:
    rules_file = tmp_path / "rules.yaml"
    rules_file.write_text(rules_yaml(RULE_SETS[rule_set]))

    result = promtool.check_rules(rules_file)

    assert result.ok, result.output


def test_valid_groups_have_no_problems() -> None:
    assert promtool.validate_groups([group for groups in RULE_SETS.values() for group in groups]) == []


def test_broken_custom_promql_is_a_problem_naming_the_rule() -> None:
    broken = {**CUSTOM_ALERT, "alert": "QueueBacklogHigh", "expr": "rate(queue_backlog[5m) > 10"}
    group = custom_rule_group([CUSTOM_ALERT, broken])

    problems = promtool.validate_groups([group])

    assert len(problems) == 1
    assert problems[0].startswith(
        "rule group 'modelplane-custom', alert 'QueueBacklogHigh': could not parse expression"
    )


def test_broken_template_is_a_problem_naming_the_rule() -> None:
    group = custom_rule_group([{**CUSTOM_ALERT, "summary": "lag {{ $value "}])

    [problem] = promtool.validate_groups([group])

    assert "alert 'FeatureStoreLagHigh'" in problem
    assert 'annotation "summary"' in problem


def test_missing_promtool_says_how_to_install_it(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))

    with pytest.raises(promtool.PromtoolMissingError, match="apt-get install prometheus"):
        promtool.check_rules(tmp_path / "rules.yaml")
