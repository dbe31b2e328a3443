from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from datetime import date
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from modelplane.cli import app

ROOT = Path(__file__).resolve().parents[2]
STACKS = ROOT / "stacks"
runner = CliRunner()


def edit_monitoring(stacks: Path, **changes: object) -> None:
    """Change keys of the dev stack's `modelplane:monitoring` section."""
    stack_file = stacks / "Pulumi.dev.yaml"
    document = yaml.safe_load(stack_file.read_text())
    document["config"]["modelplane:monitoring"].update(changes)
    stack_file.write_text(yaml.safe_dump(document, sort_keys=False))


def copy_stacks(tmp_path: Path) -> Path:
    """The stacks in a checkout of their own: the program builds the images from its checkout's Dockerfiles."""
    stacks = tmp_path / "stacks"
    shutil.copytree(STACKS, stacks)
    (tmp_path / "workloads").symlink_to(STACKS.parent / "workloads")
    return stacks


def test_plan_prints_tree_counts_cost_and_writes_plan(tmp_path: Path) -> None:
    result = runner.invoke(app, ["plan", "dev", "--stacks-dir", str(STACKS), "--build-dir", str(tmp_path)])
    assert result.exit_code == 0, result.output
    assert "aws:eks/cluster:Cluster" in result.output
    assert "Resources by type" in result.output
    assert "gpu-small" in result.output
    assert "within budget" in result.output
    assert re.search(r"promtool: \d+ rule files OK", result.output)
    document = json.loads((tmp_path / "dev" / "plan.json").read_text())
    assert document["environment"] == "dev"


def test_plan_fails_with_every_config_problem(tmp_path: Path) -> None:
    stacks = copy_stacks(tmp_path)
    stack_file = stacks / "Pulumi.dev.yaml"
    text = stack_file.read_text().replace("instance_type: g6.xlarge", "instance_type: p9.huge")
    stack_file.write_text(text.replace("az_count: 2", "az_count: 1"))
    result = runner.invoke(app, ["plan", "dev", "--stacks-dir", str(stacks), "--build-dir", str(tmp_path / "b")])
    assert result.exit_code == 1
    assert "gpu_node_pools[0].instance_type='p9.huge': unknown GPU instance type" in result.output
    assert "network.az_count=1" in result.output
    assert not (tmp_path / "b" / "dev" / "plan.json").exists()


def test_plan_diff_lists_changes_against_an_older_plan(tmp_path: Path) -> None:
    stacks = copy_stacks(tmp_path)
    build = tmp_path / "build"
    assert runner.invoke(app, ["plan", "dev", "--stacks-dir", str(stacks), "--build-dir", str(build)]).exit_code == 0
    old_plan = tmp_path / "old-plan.json"
    shutil.copy(build / "dev" / "plan.json", old_plan)
    stack_file = stacks / "Pulumi.dev.yaml"
    text = stack_file.read_text().replace(
        "max_size: 2\n      disk_size_gib: 150", "max_size: 1\n      disk_size_gib: 150"
    )
    # The system pool is an EKS managed node group: AWS cannot change its instance types in place.
    stack_file.write_text(text.replace("instance_type: m7i.xlarge", "instance_type: m7i.2xlarge", 1))
    result = runner.invoke(
        app, ["plan", "dev", "-q", "--stacks-dir", str(stacks), "--build-dir", str(build), "--diff", str(old_plan)]
    )
    assert result.exit_code == 0, result.output
    # Karpenter enforces the pool's max size as the NodePool's limits.
    assert "~ update  kubernetes:karpenter.sh/v1:NodePool" in result.output
    assert "spec.limits.nvidia.com/gpu: '2' -> '1'" in result.output
    # The pool's at-max-size alert follows its max size, and the default team's GPU quota follows the pool.
    assert "~ update  kubernetes:monitoring.coreos.com/v1:PrometheusRule" in result.output
    assert "~ update  kubernetes:kueue.x-k8s.io/v1beta2:ClusterQueue" in result.output
    assert "+- replace aws:eks/nodeGroup:NodeGroup" in result.output
    assert "instanceTypes[0]: 'm7i.xlarge' -> 'm7i.2xlarge' (forces replacement)" in result.output
    assert re.search(r"Plan: 0 to add, \d+ to change, 1 to replace, 0 to destroy\.", result.output)


def test_validate_reports_ok_and_errors(tmp_path: Path) -> None:
    assert runner.invoke(app, ["validate", "prod", "--stacks-dir", str(STACKS)]).exit_code == 0
    result = runner.invoke(app, ["validate", "qa", "--stacks-dir", str(STACKS)])
    assert result.exit_code == 1
    assert "environments: dev, prod, staging" in result.output


@pytest.mark.parametrize("command", ["up", "preview", "destroy"])
def test_automation_commands_fail_at_once_without_the_pulumi_cli(command: str, tmp_path: Path) -> None:
    env = {**os.environ, "PATH": str(Path(sys.executable).parent)}
    assert shutil.which("pulumi", path=env["PATH"]) is None
    result = subprocess.run(
        [str(Path(sys.executable).parent / "modelplane"), command, "dev"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 1
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1
    assert "the Pulumi CLI is not installed" in lines[0]
    assert "modelplane plan ENV" in lines[0]


def test_custom_alert_with_broken_promql_fails_the_plan_naming_it(tmp_path: Path) -> None:
    stacks = copy_stacks(tmp_path)
    broken = {
        "alert": "QueueBacklogHigh",
        "expr": "sum(rate(modelplane_inference_requests_total[5m]) >",
        "summary": "Pile",
    }
    edit_monitoring(stacks, custom_alerts=[broken])
    result = runner.invoke(app, ["plan", "dev", "-q", "--stacks-dir", str(stacks), "--build-dir", str(tmp_path / "b")])
    assert result.exit_code == 1
    assert "promtool rejects alert rules" in result.output
    assert '"QueueBacklogHigh": could not parse expression' in result.output


def test_custom_alert_without_summary_is_a_config_error(tmp_path: Path) -> None:
    stacks = copy_stacks(tmp_path)
    edit_monitoring(stacks, custom_alerts=[{"alert": "Quiet", "expr": "up == 0"}])
    result = runner.invoke(app, ["validate", "dev", "--stacks-dir", str(stacks)])
    assert result.exit_code == 1
    assert "monitoring.custom_alerts[0]: summary: Field required" in result.output


def test_valid_custom_alert_is_deployed_and_written_to_the_rule_files(tmp_path: Path) -> None:
    stacks = copy_stacks(tmp_path)
    custom = {
        "alert": "TrainerImagePullFailing",
        "expr": 'kube_pod_container_status_waiting_reason{reason="ImagePullBackOff"} > 0',
        "summary": "An image cannot be pulled",
    }
    edit_monitoring(stacks, custom_alerts=[custom])
    result = runner.invoke(app, ["plan", "dev", "-q", "--stacks-dir", str(stacks), "--build-dir", str(tmp_path / "b")])
    assert result.exit_code == 0, result.output
    rules = json.loads((tmp_path / "b" / "dev" / "plan.json").read_text())["rules"]
    assert any("TrainerImagePullFailing" in r["alerts"] for r in rules)


def test_up_and_preview_enforce_the_platform_policy_pack_with_the_plans_config(tmp_path: Path) -> None:
    from modelplane.automation import policy_pack_arguments
    from modelplane.policy_config import pack_config
    from modelplane.stack_config import environment_from_stack_file, read_stack_file

    env = environment_from_stack_file(read_stack_file("staging", ROOT / "stacks"))
    packs, configs = policy_pack_arguments(env, tmp_path)
    assert packs == [str(ROOT / "modelplane" / "policies" / "modelplane_platform")]
    assert configs == [str(tmp_path / "policy-config.json")]
    assert json.loads(Path(configs[0]).read_text()) == pack_config(env)
    assert (Path(packs[0]) / "PulumiPolicy.yaml").is_file()


def test_a_version_in_extended_support_is_valid_but_warned_about_with_its_cost(tmp_path: Path) -> None:
    from modelplane.components.eks_versions import EKS_RELEASES, Support, support_on

    extended = next((r.version for r in EKS_RELEASES if support_on(r, date.today()) is Support.EXTENDED), None)
    assert extended is not None, "the calendar has no version in extended support today: add a newer row"
    stacks = copy_stacks(tmp_path)
    stack_file = stacks / "Pulumi.dev.yaml"
    text = stack_file.read_text()
    stack_file.write_text(re.sub(r'kubernetes_version: "[0-9.]+"', f'kubernetes_version: "{extended}"', text))
    result = runner.invoke(app, ["validate", "dev", "--stacks-dir", str(stacks)])
    assert result.exit_code == 0, result.output
    assert f"cluster.kubernetes_version='{extended}'" in result.output
    assert "0.60" in result.output


def test_stacks_outside_a_checkout_say_how_to_plan_without_building_images(tmp_path: Path) -> None:
    stacks = tmp_path / "stacks"
    shutil.copytree(STACKS, stacks)
    result = runner.invoke(app, ["plan", "dev", "-q", "--stacks-dir", str(stacks), "--build-dir", str(tmp_path / "b")])
    assert result.exit_code == 1
    assert result.output.startswith("error: images.build=true: no workloads/serving/Dockerfile under")
    assert "set modelplane:images: {build: false}" in result.output


def test_plan_json_prints_the_plan_document_and_the_checks_on_stdout(tmp_path: Path) -> None:
    result = runner.invoke(app, ["plan", "dev", "--json", "--stacks-dir", str(STACKS), "--build-dir", str(tmp_path)])
    assert result.exit_code == 0, result.output
    document = json.loads(result.stdout)
    written = json.loads((tmp_path / "dev" / "plan.json").read_text())
    # plan.json is the contract: --json prints it, with the checks' results added.
    assert {key: document[key] for key in written} == written
    assert document["checks"]["promtool"] == {"checked": True, "problems": []}
    assert document["checks"]["crd_schemas"]["problems"] == []
    assert document["checks"]["policies"]["mandatory"] == 0
    assert "diff" not in document


def test_plan_json_with_diff_and_a_config_error(tmp_path: Path) -> None:
    build = tmp_path / "build"
    assert (
        runner.invoke(app, ["plan", "dev", "-q", "--stacks-dir", str(STACKS), "--build-dir", str(build)]).exit_code == 0
    )
    old = tmp_path / "old.json"
    shutil.copy(build / "dev" / "plan.json", old)
    same = runner.invoke(
        app, ["plan", "dev", "--json", "--diff", str(old), "--stacks-dir", str(STACKS), "--build-dir", str(build)]
    )
    assert same.exit_code == 0, same.output
    assert json.loads(same.stdout)["diff"] == []
    stacks = copy_stacks(tmp_path)
    stack_file = stacks / "Pulumi.dev.yaml"
    stack_file.write_text(stack_file.read_text().replace("instance_type: g6.xlarge", "instance_type: p9.huge"))
    broken = runner.invoke(app, ["plan", "dev", "--json", "--stacks-dir", str(stacks), "--build-dir", str(build)])
    assert broken.exit_code == 1
    document = json.loads(broken.stdout)
    assert document["valid"] is False
    assert any("p9.huge" in problem for problem in document["problems"])


def test_plan_at_80_columns_keeps_every_figure_whole(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """COLUMNS=80 as a terminal of 80 columns sets it: the cost table folds names, never figures."""
    monkeypatch.setenv("COLUMNS", "80")
    for environment in ("dev", "staging", "prod"):
        result = runner.invoke(
            app,
            ["plan", environment, "-q", "--no-check-rules", "--stacks-dir", str(STACKS), "--build-dir", str(tmp_path)],
        )
        assert result.exit_code == 0, result.output
        assert max(len(line) for line in result.stdout.splitlines()) <= 80
        cost = json.loads((tmp_path / environment / "plan.json").read_text())["cost"]
        figures = [f"{cost['total_max_monthly_usd']:,.2f}", f"{cost['budget_max_monthly_usd']:,.2f}"]
        for pool in cost["pools"]:
            figures += [f"{pool['usd_per_hour']:,.4f}", f"{pool['max_monthly_usd']:,.2f}"]
        for figure in figures:
            assert figure in result.stdout, (environment, figure, result.stdout)
        assert "…" not in result.stdout
        # Every row says what its price is: exact (list, set) or an approximation (≈) or an upper bound (≤).
        for pool in cost["pools"]:
            assert pool["price_basis"] in {"list", "configured", "spot-ceiling", "capacity-block", "other-region"}
        assert "price " in result.stdout


def test_unset_secret_notes_name_the_stack(tmp_path: Path) -> None:
    result = runner.invoke(
        app, ["plan", "staging", "-q", "--no-check-rules", "--stacks-dir", str(STACKS), "--build-dir", str(tmp_path)]
    )
    assert result.exit_code == 0, result.output
    notes = [line for line in result.stdout.splitlines() if line.startswith("note: secret")]
    assert notes
    assert all("pulumi config set --secret --stack staging modelplane:" in note for note in notes)


def test_alerts_at_80_columns_fold_names_instead_of_cutting_them(monkeypatch: pytest.MonkeyPatch) -> None:
    from modelplane.alert_catalogue import alert_catalogue

    monkeypatch.setenv("COLUMNS", "80")
    result = runner.invoke(app, ["alerts"])
    assert result.exit_code == 0
    assert "…" not in result.stdout
    flat = "".join(line.split("│")[1].strip() for line in result.stdout.splitlines() if line.startswith("│"))
    for entry in alert_catalogue():
        assert entry.alert in flat


def test_version() -> None:
    from importlib import metadata

    result = runner.invoke(app, ["--version"])
    assert result.exit_code == 0
    assert result.stdout.strip() == f"modelplane {metadata.version('modelplane')}"


@pytest.mark.parametrize("command", ["status", "down"])
def test_status_and_down_say_they_take_only_local(command: str) -> None:
    help_text = runner.invoke(app, [command, "--help"], env={"COLUMNS": "200"}).stdout
    assert "Only `local`" in help_text
    assert "e.g. dev" not in help_text
    result = runner.invoke(app, [command, "dev"])
    assert result.exit_code == 1
    assert len(result.output.strip().splitlines()) == 1


def test_status_json(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(ROOT)
    import modelplane.cli as cli

    monkeypatch.setattr(cli, "project_dir", lambda: tmp_path)
    result = runner.invoke(app, ["status", "local", "--json"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout) == {
        "environment": "local",
        "running": False,
        "healthy": True,
        "processes": [],
        "details": {},
    }


@pytest.mark.parametrize("command", [["status", "local"], ["down", "local"], ["plan", "dev"], ["validate", "dev"]])
def test_outside_the_project_one_line_says_where_to_run(
    command: list[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    result = runner.invoke(app, command)
    assert result.exit_code == 1
    assert result.output.strip().splitlines() == [
        f"error: no stacks/ folder in {tmp_path} or any folder above it: run modelplane inside the project "
        "(the folder with Pulumi.yaml and stacks/), or pass --stacks-dir"
    ]


def test_from_a_subdirectory_the_project_root_is_found(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(ROOT / "modelplane" / "plan")
    result = runner.invoke(app, ["validate", "dev"])
    assert result.exit_code == 0, result.output
    assert "dev: config is valid" in result.output


def test_validate_json(tmp_path: Path) -> None:
    valid = runner.invoke(app, ["validate", "prod", "--json", "--stacks-dir", str(STACKS)])
    assert valid.exit_code == 0
    assert json.loads(valid.stdout)["valid"] is True
    stacks = copy_stacks(tmp_path)
    stack_file = stacks / "Pulumi.dev.yaml"
    stack_file.write_text(stack_file.read_text().replace("az_count: 2", "az_count: 1"))
    invalid = runner.invoke(app, ["validate", "dev", "--json", "--stacks-dir", str(stacks)])
    assert invalid.exit_code == 1
    document = json.loads(invalid.stdout)
    assert document["valid"] is False
    assert any(problem.startswith("network.az_count=1") for problem in document["problems"])


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        (b"- just\n- a list\n", "Pulumi.dev.yaml"),
        (b"config:\n  modelplane:network: {az_count: 2}\n  aws:region: us-east-1\xff\n", "Pulumi.dev.yaml"),
        (b"config: [1, 2\n", "Pulumi.dev.yaml"),
    ],
)
def test_broken_stack_files_are_error_lines_in_every_command(content: bytes, expected: str, tmp_path: Path) -> None:
    stacks = copy_stacks(tmp_path)
    (stacks / "Pulumi.dev.yaml").write_bytes(content)
    for command in (["validate", "dev"], ["plan", "dev", "--build-dir", str(tmp_path / "b")], ["up", "dev"]):
        result = runner.invoke(app, [*command, "--stacks-dir", str(stacks)])
        assert result.exit_code == 1, (command, result.output)
        assert result.output.startswith("error: "), (command, result.output)
        assert expected in result.output
        assert "Traceback" not in result.output


def test_plan_diff_of_an_unreadable_file_is_one_line(tmp_path: Path) -> None:
    result = runner.invoke(app, ["plan", "dev", "--diff", str(tmp_path / "nope.json"), "--stacks-dir", str(STACKS)])
    assert result.exit_code == 1
    assert result.output.startswith(f"error: --diff {tmp_path / 'nope.json'}: cannot read a plan.json")
    assert len(result.output.strip().splitlines()) == 1


def test_an_unexpected_error_is_one_line_unless_debugging(monkeypatch: pytest.MonkeyPatch) -> None:
    import modelplane.cli as cli

    def broken() -> None:
        raise KeyError("boom")

    monkeypatch.setattr(cli, "GPU_INSTANCE_TYPES", type("Broken", (), {"values": staticmethod(broken)})())
    result = runner.invoke(app, ["catalog"])
    assert result.exit_code == 1
    assert result.output.strip() == (
        "error: unexpected KeyError: 'boom' (a modelplane bug: please report it; "
        "MODELPLANE_DEBUG=1 shows the traceback)"
    )
    monkeypatch.setenv("MODELPLANE_DEBUG", "1")
    debugging = runner.invoke(app, ["catalog"])
    assert isinstance(debugging.exception, KeyError)
