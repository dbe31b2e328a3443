"""Alerts a user writes in the environment's config, parsed into `AlertRule`s.

Each entry is a mapping with the keys of a Prometheus alerting rule:
`alert`, `expr`, `for` (default 5m), `severity` (default warning), `summary`, and optionally
`description`, `runbook_url`, `labels`. The PromQL itself is checked by promtool
(`promtool.validate_groups`), not here.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from modelplane.components.alerting.rules import AlertRule, RuleGroup, Severity

CUSTOM_GROUP_NAME = "modelplane-custom"


class CustomAlertSpec(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    alert: str
    expr: str
    for_: str = Field(default="5m", alias="for")
    severity: Severity = Severity.WARNING
    summary: str
    description: str = ""
    runbook_url: str = ""
    labels: dict[str, str] = Field(default_factory=dict)


class CustomRuleError(ValueError):
    """Custom alerts are invalid; `problems` lists every reason, each naming the entry."""

    def __init__(self, problems: list[str]):
        self.problems = problems
        super().__init__("invalid custom alerts:\n" + "\n".join(f"  - {problem}" for problem in problems))


def parse_custom_rule(raw: Mapping[str, Any], where: str = "custom_alerts[0]") -> AlertRule:
    """One config entry as an AlertRule; errors start with `where`, the entry's place in the config."""
    try:
        spec = CustomAlertSpec.model_validate(dict(raw))
        return AlertRule(
            alert=spec.alert,
            expr=spec.expr,
            for_=spec.for_,
            severity=spec.severity,
            summary=spec.summary,
            description=spec.description,
            runbook_url=spec.runbook_url,
            labels=spec.labels,
        )
    except ValidationError as invalid:
        details = "; ".join(
            f"{'.'.join(str(part) for part in error['loc'])}: {error['msg']}" for error in invalid.errors()
        )
        raise CustomRuleError([f"{where}: {details}"]) from invalid
    except ValueError as invalid:
        raise CustomRuleError([f"{where}: {invalid}"]) from invalid


def custom_rule_group(raw_rules: Sequence[Mapping[str, Any]], name: str = CUSTOM_GROUP_NAME) -> RuleGroup:
    """All custom alerts as one group; reports every bad entry at once."""
    rules: list[AlertRule] = []
    problems: list[str] = []
    for index, raw in enumerate(raw_rules):
        try:
            rules.append(parse_custom_rule(raw, where=f"custom_alerts[{index}]"))
        except CustomRuleError as invalid:
            problems.extend(invalid.problems)
    if problems:
        raise CustomRuleError(problems)
    return RuleGroup(name=name, rules=tuple(rules))
