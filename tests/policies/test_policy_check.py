"""The offline check: config resolution, levels, unknowns, and `modelplane plan`'s violations step."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from typer.testing import CliRunner

from modelplane.cli import app
from modelplane.plan.policy_check import Violation, check_resources
from modelplane.policies.rules.registry import ECR_IMMUTABLE_TAGS
from tests.policies.harness import resource

STACKS = Path(__file__).resolve().parents[2] / "stacks"
BAD_STACKS = Path(__file__).resolve().parent / "bad_stacks"
MUTABLE_REPOSITORY = resource(
    "aws:ecr/repository:Repository",
    "repo",
    {"imageTagMutability": "MUTABLE", "imageScanningConfiguration": {"scanOnPush": True}},
)


def test_violations_carry_rule_level_and_resource() -> None:
    config = {"all": "disabled", ECR_IMMUTABLE_TAGS.name: {"enforcementLevel": "mandatory"}}
    (violation,) = check_resources([MUTABLE_REPOSITORY], config)
    assert violation == Violation(ECR_IMMUTABLE_TAGS.name, "mandatory", MUTABLE_REPOSITORY["urn"], violation.message)
    assert check_resources([MUTABLE_REPOSITORY], {**config, ECR_IMMUTABLE_TAGS.name: "disabled"}) == []


def test_plan_records_violations_and_passes_on_advisory_ones(tmp_path: Path) -> None:
    stacks = tmp_path / "stacks"
    stacks.mkdir()
    shutil.copy(STACKS / "__main__.py", stacks)
    # dev's policy config is advisory: a bad stack named dev is reported but not refused.
    shutil.copy(BAD_STACKS / "partial-logging.yaml", stacks / "Pulumi.dev.yaml")
    result = CliRunner().invoke(
        app, ["plan", "dev", "-q", "--stacks-dir", str(stacks), "--build-dir", str(tmp_path), "--no-check-rules"]
    )
    assert result.exit_code == 0, result.output
    assert "aws-eks-cluster-enable-control-plane-logging" in result.output
    (violation,) = json.loads((tmp_path / "dev" / "plan.json").read_text())["violations"]
    assert violation["rule"] == "aws-eks-cluster-enable-control-plane-logging"
    assert violation["level"] == "advisory"
    assert violation["urn"].endswith("::cluster-cluster")


def test_plan_fails_on_a_mandatory_violation(tmp_path: Path) -> None:
    stacks = tmp_path / "stacks"
    stacks.mkdir()
    shutil.copy(STACKS / "__main__.py", stacks)
    shutil.copy(BAD_STACKS / "partial-logging.yaml", stacks / "Pulumi.partial-logging.yaml")
    result = CliRunner().invoke(
        app,
        [
            "plan",
            "partial-logging",
            "-q",
            "--stacks-dir",
            str(stacks),
            "--build-dir",
            str(tmp_path),
            "--no-check-rules",
        ],
    )
    assert result.exit_code == 1
    assert "1 mandatory policy violation" in result.output
    assert json.loads((tmp_path / "partial-logging" / "plan.json").read_text())["violations"]
