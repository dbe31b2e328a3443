"""The shipped environments plan with no policy violation at all, advisory ones included."""

from __future__ import annotations

from pathlib import Path

import pytest

from modelplane.plan.engine import plan_environment
from modelplane.plan.policy_check import check_plan

STACKS = Path(__file__).resolve().parents[2] / "stacks"


@pytest.mark.parametrize("environment", ["dev", "staging", "prod"])
def test_shipped_stack_has_no_violations(environment: str) -> None:
    violations = check_plan(plan_environment(environment, STACKS))
    assert [f"{v.level} {v.rule} {v.urn}: {v.message}" for v in violations] == []
