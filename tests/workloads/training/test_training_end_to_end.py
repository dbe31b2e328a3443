"""Real DeepSpeed runs on CPU with a tiny BERT: train, checkpoint, resume, export, load the export and predict."""

from __future__ import annotations

import gc
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from prometheus_client import CollectorRegistry

from modelplane.local.processes import free_port
from modelplane.workloads import storage
from modelplane.workloads.model_artifact import load_model
from modelplane.workloads.training.synthetic import LABELS, synthetic_rows, write_jsonl
from modelplane.workloads.training.trainer.checkpoints import MARKER_NAME, CheckpointStore
from modelplane.workloads.training.trainer.config import TrainerConfig
from modelplane.workloads.training.trainer.metric_catalogue import JOB_NAME_LABEL
from modelplane.workloads.training.trainer.train import DeadlineExceeded, RestartBudgetExhausted, train
from tests.conftest import BUCKET
from tests.workloads.training.conftest import write_deepspeed_config

pytestmark = pytest.mark.slow
JOB = "tiny-sentiment"
TORCHRUN_TIMEOUT_SECONDS = 240


def predict(export_dir: Path, text: str) -> str:
    model, tokenizer, manifest = load_model(export_dir)
    with torch.no_grad():
        logits = model(**tokenizer(text, truncation=True, max_length=manifest.max_length, return_tensors="pt")).logits
    assert logits.shape == (1, len(manifest.labels))
    return manifest.labels[int(logits.argmax())]


def test_train_checkpoint_resume_and_export_in_one_process(
    one_rank: None, tiny_base_model: Path, tmp_path: Path
) -> None:
    checkpoints = tmp_path / "checkpoints"
    settings = {
        "job_name": JOB,
        "dataset_uri": str(write_jsonl(tmp_path / "news.jsonl", synthetic_rows(48, seed=1))),
        "eval_fraction": 0.25,
        "base_model": str(tiny_base_model),
        "checkpoint_uri": str(checkpoints),
        "model_uri": str(tmp_path / "model"),
        "deepspeed_config": str(write_deepspeed_config(tmp_path / "ds.json", zero_stage=0)),
        "checkpoint_every_steps": 2,
        "keep_checkpoints": 2,
        "learning_rate": 1e-3,
        "max_length": 24,
        "metrics_port": 0,
        "progress": False,
        "work_dir": str(tmp_path / "work"),
    }
    first = train(TrainerConfig(**settings, max_steps=4), registry=CollectorRegistry())  # type: ignore[arg-type]
    assert (first.step, first.restarts) == (4, 0)
    assert gc.get_freeze_count() > 0, "the run moved what it holds out of the collector's reach"
    assert [c.tag for c in CheckpointStore(str(checkpoints), tmp_path).complete()] == ["step-00000002", "step-00000004"]

    # A crash mid-save leaves a directory without the marker: the resume must pass over it.
    (checkpoints / "step-00000099").mkdir()
    (checkpoints / "step-00000099" / "mp_rank_00_model_states.pt").write_text("half written")
    registry = CollectorRegistry()
    second = train(TrainerConfig(**settings, max_steps=6), registry=registry)  # type: ignore[arg-type]
    assert (second.step, second.restarts) == (6, 1)
    job = {JOB_NAME_LABEL: JOB}
    assert registry.get_sample_value("modelplane_training_restarts_total", job) == 1
    assert registry.get_sample_value("modelplane_training_step", job) == 6
    assert registry.get_sample_value("modelplane_training_eval_accuracy", job) == second.report.accuracy  # type: ignore[union-attr]
    complete = CheckpointStore(str(checkpoints), tmp_path).complete()
    assert [(c.tag, c.marker.restarts) for c in complete] == [("step-00000004", 0), ("step-00000006", 1)]

    model, _tokenizer, manifest = load_model(tmp_path / "model")
    assert manifest.labels == sorted(LABELS)
    assert (manifest.job_name, manifest.max_length, manifest.metrics["train_steps"]) == (JOB, 24, 6)
    assert manifest.metrics["examples"] == 12
    assert set(manifest.metrics["per_class"]) == set(LABELS)
    assert model.config.id2label == dict(enumerate(sorted(LABELS)))
    assert predict(tmp_path / "model", "Acme Corp shares jump after net profit beats expectations") in LABELS

    # A third start would be restart 2: over a budget of 1, it refuses to train rather than loop.
    with pytest.raises(RestartBudgetExhausted, match="restart 2 exceeds restart_budget=1"):
        train(TrainerConfig(**settings, max_steps=8, restart_budget=1), registry=CollectorRegistry())  # type: ignore[arg-type]


def test_deadline_stops_with_a_checkpoint(one_rank: None, tiny_base_model: Path, tmp_path: Path, monkeypatch) -> None:
    settings = {
        "job_name": JOB,
        "dataset_uri": str(write_jsonl(tmp_path / "news.jsonl", synthetic_rows(32, seed=3))),
        "eval_fraction": 0.0,
        "base_model": str(tiny_base_model),
        "checkpoint_uri": str(tmp_path / "checkpoints"),
        "model_uri": str(tmp_path / "model"),
        "deepspeed_config": str(write_deepspeed_config(tmp_path / "ds.json", zero_stage=0)),
        "checkpoint_every_steps": 100,
        "max_length": 24,
        "metrics_port": 0,
        "progress": False,
        "work_dir": str(tmp_path / "work"),
        "max_run_minutes": 1,
    }
    clock = iter(range(0, 10_000, 50))  # every reading 50 s later: the second step is past one minute
    monkeypatch.setattr("modelplane.workloads.training.trainer.train.time.monotonic", lambda: float(next(clock)))
    with pytest.raises(DeadlineExceeded, match="ran past max_run_minutes=1"):
        train(TrainerConfig(**settings, max_steps=20), registry=CollectorRegistry())  # type: ignore[arg-type]
    latest = CheckpointStore(str(tmp_path / "checkpoints"), tmp_path).latest()
    assert latest is not None and 1 <= latest.marker.step < 20


def test_two_ranks_under_torchrun_with_zero_and_s3(s3_endpoint: str, tiny_base_model: Path, tmp_path: Path) -> None:
    dataset_uri = f"s3://{BUCKET}/data/news.jsonl"
    storage.write_text(dataset_uri, (write_jsonl(tmp_path / "news.jsonl", synthetic_rows(40, seed=2))).read_text())
    checkpoint_uri = f"s3://{BUCKET}/jobs/{JOB}/checkpoints"
    model_uri = f"s3://{BUCKET}/models/{JOB}"
    environment = {
        **os.environ,
        "DS_ACCELERATOR": "cpu",
        "OMP_NUM_THREADS": "1",
        "MODELPLANE_JOB_NAME": JOB,
        "MODELPLANE_DATASET_URI": dataset_uri,
        "MODELPLANE_BASE_MODEL": str(tiny_base_model),
        "MODELPLANE_CHECKPOINT_URI": checkpoint_uri,
        "MODELPLANE_MODEL_URI": model_uri,
        "MODELPLANE_DEEPSPEED_CONFIG": str(write_deepspeed_config(tmp_path / "ds.json", zero_stage=2)),
        "MODELPLANE_WORK_DIR": str(tmp_path / "work"),
        "MODELPLANE_METRICS_PORT": "0",
    }
    command = [
        *(sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2"),
        *("--master_addr", "127.0.0.1", "--master_port", str(free_port())),
        *(
            "-m",
            "modelplane.workloads.training.trainer",
            "--max-steps",
            "3",
            "--checkpoint-every-steps",
            "2",
            "--max-length",
            "24",
        ),
        *("--learning-rate", "0.001", "--no-progress"),
    ]
    run = subprocess.run(
        command, env=environment, capture_output=True, text=True, timeout=TORCHRUN_TIMEOUT_SECONDS, check=False
    )
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]

    store = CheckpointStore(checkpoint_uri, tmp_path / "scratch")
    latest = store.latest()
    assert latest is not None
    assert (latest.tag, latest.marker.world_size, latest.marker.zero_stage) == ("step-00000003", 2, 2)
    files = storage.list_children(storage.join(checkpoint_uri, latest.tag))
    assert {
        MARKER_NAME,
        "zero_pp_rank_0_mp_rank_00_optim_states.pt",
        "zero_pp_rank_1_mp_rank_00_optim_states.pt",
    } <= set(files)
    export_dir = storage.download_tree(model_uri, tmp_path / "export")
    assert predict(export_dir, "Globex cuts full-year guidance amid weak demand") in LABELS
