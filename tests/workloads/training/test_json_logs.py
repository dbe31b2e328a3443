"""The trainer logs one JSON object per line, naming the job, the rank and (where known) the step."""

from __future__ import annotations

import logging
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from modelplane.local.processes import free_port
from modelplane.terms.log_lines import parse_line
from modelplane.workloads.training.synthetic import synthetic_rows, write_jsonl
from modelplane.workloads.training.trainer import __main__ as trainer_main
from modelplane.workloads.training.trainer.config import TrainerConfig
from modelplane.workloads.training.trainer.train import TrainingResult
from tests.workloads.training.conftest import write_deepspeed_config

REQUIRED = [
    *("--job-name", "sentiment", "--dataset-uri", "d.jsonl", "--checkpoint-uri", "c"),
    *("--model-uri", "m", "--deepspeed-config", "ds.json", "--base-model", "b"),
]
RUN_TIMEOUT_SECONDS = 300


@pytest.fixture(autouse=True)
def restore_logging() -> Iterator[None]:
    """main() configures the process's logging: put back the root's handlers and transformers' defaults."""
    from transformers.utils import logging as transformers_logging

    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    yield
    root.handlers[:] = handlers
    root.setLevel(level)
    transformers_logging.enable_default_handler()
    transformers_logging.disable_propagation()
    transformers_logging.enable_progress_bar()


def stderr_fields(capsys: pytest.CaptureFixture[str]) -> list[dict[str, object]]:
    lines = capsys.readouterr().err.splitlines()
    parsed = [parse_line(line) for line in lines]
    assert all(fields is not None for fields in parsed), lines
    return [fields for fields in parsed if fields is not None]


def test_log_format_is_json_unless_asked_for_text() -> None:
    assert TrainerConfig.from_args(REQUIRED, environ={}).log_format == "json"
    assert TrainerConfig.from_args(REQUIRED, environ={"MODELPLANE_LOG_FORMAT": "text"}).log_format == "text"
    with pytest.raises(ValueError, match=r"^log_format='xml': must be one of json, text$"):
        TrainerConfig.from_args([*REQUIRED, "--log-format", "xml"], environ={})


def test_every_line_names_the_job_and_the_rank(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    def fake_train(config: TrainerConfig) -> TrainingResult:
        logging.getLogger("modelplane.workloads.training.trainer.train").info("step", extra={"step": 5})
        return TrainingResult(step=12, restarts=1, report=None)

    monkeypatch.setenv("RANK", "0")
    monkeypatch.setattr(trainer_main, "train", fake_train)
    trainer_main.main(REQUIRED)
    first, done = stderr_fields(capsys)
    assert (first["job"], first["rank"], first["step"]) == ("sentiment", 0, 5)
    assert (done["message"], done["step"], done["rank"]) == ("done at step 12 after 1 restarts", 12, 0)


def test_a_dying_rank_logs_its_traceback_as_one_line_and_exits_1(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    def fake_train(config: TrainerConfig) -> TrainingResult:
        logging.getLogger("modelplane.workloads.training.trainer.train").info("rank 3 does not speak")
        raise FloatingPointError("step 40: loss is nan")

    monkeypatch.setenv("RANK", "3")
    monkeypatch.setattr(trainer_main, "train", fake_train)
    with pytest.raises(SystemExit) as exited:
        trainer_main.main(REQUIRED)
    assert exited.value.code == 1
    (failed,) = stderr_fields(capsys)
    assert (failed["level"], failed["message"], failed["job"], failed["rank"]) == (
        "ERROR",
        "training failed",
        "sentiment",
        3,
    )
    assert "FloatingPointError: step 40: loss is nan" in str(failed["exception"])


def test_text_format_for_a_person(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("RANK", "0")
    monkeypatch.setattr(trainer_main, "train", lambda config: TrainingResult(step=2, restarts=0, report=None))
    trainer_main.main([*REQUIRED, "--log-format", "text"])
    (line,) = capsys.readouterr().err.splitlines()
    assert line.endswith(
        "INFO modelplane.workloads.training.trainer.__main__: done at step 2 after 0 restarts "
        "job=sentiment rank=0 step=2"
    )


@pytest.mark.slow
def test_a_real_run_logs_json_lines_with_its_steps(tiny_base_model: Path, tmp_path: Path) -> None:
    environment = {
        **os.environ,
        "DS_ACCELERATOR": "cpu",
        "OMP_NUM_THREADS": "1",
        "RANK": "0",
        "WORLD_SIZE": "1",
        "LOCAL_RANK": "0",
        "MASTER_ADDR": "127.0.0.1",
        "MASTER_PORT": str(free_port()),
    }
    command = [
        *(sys.executable, "-m", "modelplane.workloads.training.trainer", "--job-name", "tiny"),
        *("--dataset-uri", str(write_jsonl(tmp_path / "news.jsonl", synthetic_rows(24, seed=3)))),
        *("--base-model", str(tiny_base_model), "--checkpoint-uri", str(tmp_path / "checkpoints")),
        *("--model-uri", str(tmp_path / "model"), "--work-dir", str(tmp_path / "work")),
        *("--deepspeed-config", str(write_deepspeed_config(tmp_path / "ds.json", zero_stage=0))),
        *("--max-steps", "2", "--log-every-steps", "1", "--max-length", "24", "--metrics-port", "0"),
    ]
    run = subprocess.run(
        command, env=environment, capture_output=True, text=True, timeout=RUN_TIMEOUT_SECONDS, check=False
    )
    assert run.returncode == 0, run.stderr[-4000:]
    ours = [fields for fields in map(parse_line, run.stderr.splitlines()) if fields and fields.get("job") == "tiny"]
    assert ours and all(fields["rank"] == 0 for fields in ours)
    progress = [fields for fields in ours if "loss" in fields]
    assert [fields["step"] for fields in progress] == [1, 2]
    assert all(isinstance(fields["samples_per_second"], float) for fields in progress)
    assert any(fields["message"].startswith("checkpoint step-00000002 committed") for fields in ours)
    # No progress bar in JSON: it would be one long line that is not JSON.
    assert "it/s]" not in run.stderr
