"""examples/ci: the GitHub Actions workflows validate against GitHub's workflow schema, do what the README says,
and the comment script renders what `modelplane plan --json` prints.

The schema is SchemaStore's `github-workflow.json` as vendored in the check-jsonschema wheel (a test dependency in
pyproject.toml: `check-jsonschema --builtin-schema vendor.github-workflows`); actionlint is not installable from
the project's files (its PyPI wrapper downloads the binary while building).
"""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
CI = ROOT / "examples" / "ci"
CHECK_JSONSCHEMA = Path(sys.executable).parent / "check-jsonschema"


def check_workflow(path: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(CHECK_JSONSCHEMA), "--builtin-schema", "vendor.github-workflows", str(path)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def workflow(name: str) -> dict[Any, Any]:
    document = yaml.safe_load((CI / name).read_text())
    assert isinstance(document, dict)
    return document


@pytest.mark.parametrize("name", ["modelplane.yml", "modelplane-apply.yml"])
def test_workflows_validate_against_the_github_workflow_schema(name: str) -> None:
    result = check_workflow(CI / name)
    assert result.returncode == 0, result.stdout + result.stderr


def test_the_schema_check_rejects_a_broken_workflow(tmp_path: Path) -> None:
    broken = workflow("modelplane-apply.yml")
    broken["jobs"]["apply"]["permissions"] = {"id-token": "writable"}
    del broken["jobs"]["apply"]["runs-on"]
    path = tmp_path / "broken.yml"
    path.write_text(yaml.safe_dump(broken))
    assert check_workflow(path).returncode != 0


def test_pull_requests_plan_every_environment_comment_and_fail_on_violations() -> None:
    document = workflow("modelplane.yml")
    triggers = document[True]  # YAML 1.1 reads the key `on` as True
    assert set(triggers) == {"pull_request", "push"}
    plan = document["jobs"]["plan"]
    environments = sorted(path.removeprefix("Pulumi.").removesuffix(".yaml") for path in
                          (p.name for p in (ROOT / "stacks").glob("Pulumi.*.yaml")))  # fmt: skip
    assert sorted(plan["strategy"]["matrix"]["environment"]) == environments
    assert plan["permissions"]["pull-requests"] == "write"
    runs = "\n".join(step.get("run", "") for step in plan["steps"])
    assert 'modelplane plan "$ENVIRONMENT" --json "${diff[@]}"' in runs
    assert "plan_comment.py" in runs
    comment = next(step for step in plan["steps"] if step.get("uses", "").startswith("actions/github-script@"))
    assert comment["if"] == "always()"
    fail = plan["steps"][-1]
    assert fail["if"] == "steps.plan.outputs.exit-code != '0'" and "exit 1" in fail["run"]


def test_merges_apply_in_order_with_oidc_credentials() -> None:
    jobs = workflow("modelplane.yml")["jobs"]
    assert jobs["apply-dev"]["if"] == "github.event_name == 'push'"
    assert jobs["apply-staging"]["needs"] == "apply-dev" and jobs["apply-prod"]["needs"] == "apply-staging"
    for name in ("apply-dev", "apply-staging", "apply-prod"):
        assert jobs[name]["uses"] == "./.github/workflows/modelplane-apply.yml"
        assert jobs[name]["permissions"]["id-token"] == "write"
    apply = workflow("modelplane-apply.yml")["jobs"]["apply"]
    credentials = next(
        s for s in apply["steps"] if s.get("uses", "").startswith("aws-actions/configure-aws-credentials@")
    )
    assert "role-to-assume" in credentials["with"]
    assert not {"aws-access-key-id", "aws-secret-access-key"} & set(credentials["with"])
    assert apply["steps"][-1]["run"] == '.venv/bin/modelplane up "$ENVIRONMENT" --yes'


def plan_comment() -> ModuleType:
    spec = importlib.util.spec_from_file_location("plan_comment", CI / "plan_comment.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_comment_shows_the_diff_policies_and_cost(tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from modelplane.cli import app

    result = CliRunner().invoke(
        app,
        [
            "plan",
            "dev",
            "--json",
            "--no-check-rules",
            "--stacks-dir",
            str(ROOT / "stacks"),
            "--build-dir",
            str(tmp_path),
        ],
    )
    assert result.exit_code == 0, result.output
    document = json.loads(result.stdout)
    urn = document["resources"][-1]["urn"]
    document["diff"] = [
        {"urn": urn, "type": "aws:eks/nodeGroup:NodeGroup", "name": "dev-system", "action": "replace",
         "changes": [{"path": "instanceTypes[0]", "old": "m7i.xlarge", "new": "m7i.2xlarge"}],
         "replaced_by": ["instanceTypes[0]"]},
    ]  # fmt: skip
    document["violations"] = [{"rule": "gpu-budget", "level": "mandatory", "urn": "", "message": "4 GPUs > 2"}]
    text = plan_comment().comment("dev", document, "error: 1 mandatory policy violation(s)\n")
    assert text.startswith("### modelplane plan `dev`: fails")
    assert "0 to add, 0 to change, 1 to replace, 0 to destroy" in text
    assert "`instanceTypes[0]` (forces replacement)" in text
    assert "| mandatory | `gpu-budget` | (stack) | 4 GPUs > 2 |" in text
    assert f"${document['cost']['total_max_monthly_usd']:,.2f}/month" in text


def test_the_comment_of_a_config_error_lists_its_problems() -> None:
    document = {"environment": "dev", "valid": False, "problems": ["network.az_count=1: at least 2"]}
    text = plan_comment().comment("dev", document, "error: environment 'dev': 1 config problem(s)\n")
    assert "fails" in text.splitlines()[0]
    assert "- network.az_count=1: at least 2" in text
