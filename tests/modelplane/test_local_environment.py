"""`modelplane up local --once` for real: torchrun + DeepSpeed, the server, Prometheus and Alertmanager."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from modelplane.local.processes import is_alive
from modelplane.workloads import storage
from modelplane.workloads.model_artifact import read_manifest
from tests.conftest import BUCKET
from tests.tiny_model import save_tiny_bert

ROOT = Path(__file__).resolve().parents[2]
UP_TIMEOUT_SECONDS = 600


def tiny_project(tmp_path: Path, artifacts: str | None = None) -> Path:
    """A project with the shipped dev stack and a local.yaml scaled down to a tiny model."""
    project = tmp_path / "project"
    stacks = project / "stacks"
    stacks.mkdir(parents=True)
    shutil.copy(ROOT / "stacks" / "Pulumi.dev.yaml", stacks)
    local = yaml.safe_load((ROOT / "stacks" / "local.yaml").read_text())
    local["training"]["synthetic_rows"] = 90
    local["training"]["overrides"].update({"max_steps": 6, "checkpoint_every_steps": 3, "max_length": 24})
    local["serving"].update({"warmup_requests": 30, "warmup_concurrency": 4})
    if artifacts is not None:
        local["artifacts"] = artifacts
    (stacks / "local.yaml").write_text(yaml.safe_dump(local))
    dev = yaml.safe_load((stacks / "Pulumi.dev.yaml").read_text())
    (job,) = dev["config"]["modelplane:training_jobs"]
    # Seeded before `up`, so the runner keeps it instead of copying the bundled MiniLM.
    model = save_tiny_bert(tmp_path / "tiny-bert")
    storage.upload_tree(model, storage.join(artifacts or str(project / local["artifacts"]), job["base_model"]))
    return project


def up_once(project: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(Path(sys.executable).parent / "modelplane"), "up", "local", "--once"],
        cwd=project,
        capture_output=True,
        text=True,
        timeout=UP_TIMEOUT_SECONDS,
        check=False,
    )


@pytest.mark.slow
def test_up_local_once_trains_serves_monitors_and_leaves_nothing_running(tmp_path: Path) -> None:
    project = tiny_project(tmp_path)
    result = up_once(project)
    output = result.stdout + result.stderr
    assert result.returncode == 0, output[-4000:]
    assert "Trained models" in output and "Inference services" in output and "Alerts firing" in output
    assert "Scheduling: teams, GPU queues (Kueue), priorities and Karpenter" in output

    state_dir = project / ".modelplane" / "local"
    summary = json.loads((state_dir / "summary.json").read_text())
    manifest = read_manifest(project / ".modelplane" / "local" / "artifacts" / "models" / "sentiment")
    assert manifest.labels == ["negative", "neutral", "positive"]
    assert summary["models"]["sentiment"]["train_steps"] == 6
    assert "no-ops here" in summary["scheduling"]

    (service,) = summary["latency"]
    assert summary["latency"][service]["requests"] == 30
    assert summary["latency"][service]["errors"] == 0
    assert summary["scraped"] == {"trainer-sentiment": True, f"inference-{service}": True}
    assert "modelplane-training-sentiment" in summary["rule_groups"]
    assert f"modelplane-inference-{service}" in summary["rule_groups"]

    assert summary["processes"], "the summary lists what up started"
    assert not [name for name, pid in summary["processes"].items() if is_alive(pid)]
    assert not (state_dir / "state.json").exists()

    status = subprocess.run(
        [str(Path(sys.executable).parent / "modelplane"), "status", "local"],
        cwd=project, capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert status.returncode == 0
    assert "not running" in status.stdout


@pytest.mark.slow
def test_up_local_once_with_artifacts_in_s3(tmp_path: Path, s3_endpoint: str) -> None:
    project = tiny_project(tmp_path, artifacts=f"s3://{BUCKET}")
    result = up_once(project)
    assert result.returncode == 0, (result.stdout + result.stderr)[-4000:]
    export = storage.download_tree(f"s3://{BUCKET}/models/sentiment", tmp_path / "export")
    assert read_manifest(export).labels == ["negative", "neutral", "positive"]
    assert storage.exists(f"s3://{BUCKET}/datasets/financial-news-sentiment/train.jsonl")
    assert storage.list_children(f"s3://{BUCKET}/checkpoints/sentiment")
    summary = json.loads((project / ".modelplane" / "local" / "summary.json").read_text())
    assert all(report["errors"] == 0 for report in summary["latency"].values())
    assert not [name for name, pid in summary["processes"].items() if is_alive(pid)]
