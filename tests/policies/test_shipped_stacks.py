"""The shipped environments plan with no policy violation at all, advisory ones included."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from modelplane.plan.engine import plan_environment
from modelplane.plan.policy_check import check_plan
from modelplane.policies.rules.catalog import NEW_ENVIRONMENT
from modelplane.policy_config import POLICY_PACK_DIR, policy_config_file

STACKS = Path(__file__).resolve().parents[2] / "stacks"


@pytest.mark.parametrize("environment", ["dev", "staging", "prod"])
def test_shipped_stack_has_no_violations(environment: str) -> None:
    violations = check_plan(plan_environment(environment, STACKS))
    assert [f"{v.level} {v.rule} {v.urn}: {v.message}" for v in violations] == []


def test_a_new_environment_copied_from_dev_plans_clean(tmp_path: Path) -> None:
    """The README's recipe: copy dev's stack file to a new name and plan it, in a checkout of its own."""
    checkout = STACKS.parent
    for entry in checkout.iterdir():
        if entry.name not in ("stacks", "build", ".git"):
            (tmp_path / entry.name).symlink_to(entry)
    shutil.copytree(STACKS, tmp_path / "stacks")
    shutil.copy(STACKS / "Pulumi.dev.yaml", tmp_path / "stacks" / "Pulumi.qa.yaml")
    plan = plan_environment("qa", tmp_path / "stacks")
    assert policy_config_file("qa") == POLICY_PACK_DIR / "config" / f"{NEW_ENVIRONMENT}.json"
    violations = check_plan(plan)
    assert [f"{v.level} {v.rule} {v.urn}: {v.message}" for v in violations] == []
