"""Bad input fails before the first step (before the model even loads), on one line naming the problem; a second
run on a held checkpoint location refuses to start. In one process, with DeepSpeed's one-rank group."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from prometheus_client import CollectorRegistry

from modelplane.workloads import storage
from modelplane.workloads.training.synthetic import synthetic_rows, write_jsonl
from modelplane.workloads.training.trainer.config import TrainerConfig
from modelplane.workloads.training.trainer.lease import Holder, LocalLock, S3Lease
from modelplane.workloads.training.trainer.train import train
from tests.conftest import BUCKET
from tests.workloads.training.conftest import write_deepspeed_config

JOB = "preflight"
LABELS = "negative,neutral,positive"


@pytest.fixture
def no_model_load(monkeypatch: pytest.MonkeyPatch) -> None:
    """Loading the model fails the test: every problem here must be found before it."""

    def loaded(*_args: Any) -> None:
        raise AssertionError("the model was loaded: the problem was found too late")

    monkeypatch.setattr("modelplane.workloads.training.trainer.train.load_classifier", loaded)


def settings(tmp_path: Path, base_model: Path, **overrides: Any) -> dict[str, Any]:
    fields: dict[str, Any] = {
        "job_name": JOB,
        "dataset_uri": str(write_jsonl(tmp_path / "news.jsonl", synthetic_rows(24, seed=1))),
        "eval_fraction": 0.0,
        "labels": LABELS,
        "base_model": str(base_model),
        "checkpoint_uri": str(tmp_path / "checkpoints"),
        "model_uri": str(tmp_path / "model"),
        "deepspeed_config": str(write_deepspeed_config(tmp_path / "ds.json", zero_stage=0)),
        "max_length": 24,
        "metrics_port": 0,
        "progress": False,
        "work_dir": str(tmp_path / "work"),
        "checkpoint_lease_seconds": 1,
    }
    fields.update(overrides)
    return fields


def failure(fields: dict[str, Any]) -> str:
    """The one line a run with `fields` fails with."""
    with pytest.raises((ValueError, OSError, RuntimeError)) as raised:
        train(TrainerConfig(**fields), registry=CollectorRegistry())
    message = str(raised.value)
    assert "\n" not in message
    return message


def with_row(path: Path, row: dict[str, str], at_line: int) -> Path:
    lines = path.read_text().splitlines(keepends=True)
    lines.insert(at_line - 1, json.dumps(row) + "\n")
    path.write_text("".join(lines))
    return path


@pytest.mark.usefixtures("one_rank", "no_model_load")
def test_a_label_typo_in_a_training_row_names_file_line_and_nearest_label(
    tiny_base_model: Path, tmp_path: Path
) -> None:
    fields = settings(tmp_path, tiny_base_model)
    with_row(Path(fields["dataset_uri"]), {"text": "Acme Corp shares jump", "label": "postive"}, at_line=7)
    assert failure(fields) == (
        f"{fields['dataset_uri']}:7: label 'postive' is not one of the job's labels (negative, neutral, positive); "
        "did you mean 'positive'?"
    )


@pytest.mark.usefixtures("one_rank", "no_model_load")
def test_a_label_typo_in_an_evaluation_row_names_that_file(tiny_base_model: Path, tmp_path: Path) -> None:
    evaluation = write_jsonl(tmp_path / "eval.jsonl", synthetic_rows(6, seed=2))
    with_row(evaluation, {"text": "Globex cuts guidance", "label": "negtive"}, at_line=3)
    for labels, known_as in ((LABELS, "the job's labels"), (None, "the labels of the training rows")):
        fields = settings(tmp_path, tiny_base_model, eval_dataset_uri=str(evaluation), labels=labels)
        assert failure(fields).startswith(f"{evaluation}:3: label 'negtive' is not one of {known_as} (")


@pytest.mark.usefixtures("one_rank", "no_model_load")
def test_a_byte_that_is_not_utf8_names_file_and_line(tiny_base_model: Path, tmp_path: Path) -> None:
    fields = settings(tmp_path, tiny_base_model)
    dataset = Path(fields["dataset_uri"])
    dataset.write_bytes(dataset.read_bytes() + b'{"text": "caf\xe9", "label": "neutral"}\n')
    assert failure(fields).startswith(f"{dataset}:25: not UTF-8 (byte 0xe9 at column 14)")


@pytest.mark.usefixtures("one_rank", "no_model_load")
def test_a_missing_s3_object_names_its_uri(s3_endpoint: str, tiny_base_model: Path, tmp_path: Path) -> None:
    missing = f"s3://{BUCKET}/datasets/missing/train.jsonl"
    assert failure(settings(tmp_path, tiny_base_model, dataset_uri=missing)).startswith(f"{missing}: no such object")


@pytest.mark.usefixtures("one_rank", "no_model_load")
def test_inconsistent_batch_arithmetic_fails_before_the_model_loads(tiny_base_model: Path, tmp_path: Path) -> None:
    config = tmp_path / "inconsistent-ds.json"
    config.write_text(
        json.dumps({"train_micro_batch_size_per_gpu": 4, "gradient_accumulation_steps": 2, "train_batch_size": 12})
    )
    assert failure(settings(tmp_path, tiny_base_model, deepspeed_config=str(config))) == (
        f"deepspeed_config='{config}': train_batch_size=12 must equal train_micro_batch_size_per_gpu (4) x "
        "gradient_accumulation_steps (2) x world size (1) = 8"
    )


@pytest.mark.usefixtures("one_rank", "no_model_load")
@pytest.mark.parametrize("location", ["checkpoint_uri", "model_uri"])
def test_an_unwritable_location_fails_before_the_model_loads(
    tiny_base_model: Path, tmp_path: Path, location: str
) -> None:
    # A path below a regular file: unwritable even for root, as these tests may run.
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    unwritable = str(blocker / "out")
    message = failure(settings(tmp_path, tiny_base_model, **{location: unwritable}))
    assert message.startswith(f"{blocker}") and "not writable" in message
    assert not list(tmp_path.glob("checkpoints/step-*"))


@pytest.mark.usefixtures("one_rank", "no_model_load")
def test_an_unwritable_s3_location_names_its_uri(s3_endpoint: str, tiny_base_model: Path, tmp_path: Path) -> None:
    uri = "s3://no-such-bucket/checkpoints/preflight"
    assert failure(settings(tmp_path, tiny_base_model, checkpoint_uri=uri)).startswith(f"{uri}: no such object")


@pytest.fixture
def held() -> Iterator[list[LocalLock | S3Lease]]:
    taken: list[LocalLock | S3Lease] = []
    yield taken
    for lease in taken:
        lease.release()


@pytest.mark.usefixtures("one_rank", "no_model_load")
def test_a_second_run_on_a_locked_local_location_refuses_to_start(
    tiny_base_model: Path, tmp_path: Path, held: list[LocalLock | S3Lease]
) -> None:
    fields = settings(tmp_path, tiny_base_model)
    lock = LocalLock(Path(fields["checkpoint_uri"]))
    lock.acquire(Holder("first-run", 4242, 0.0))
    held.append(lock)
    assert failure(fields).startswith(
        f"checkpoint_uri='{fields['checkpoint_uri']}': another run is using it (host first-run, pid 4242"
    )


@pytest.mark.usefixtures("one_rank", "no_model_load")
def test_a_second_run_on_a_leased_s3_location_refuses_to_start(
    s3_endpoint: str, tiny_base_model: Path, tmp_path: Path, held: list[LocalLock | S3Lease]
) -> None:
    uri = f"s3://{BUCKET}/checkpoints/{JOB}"
    lease = S3Lease(uri, ttl_seconds=1)
    lease.acquire(Holder("first-run", 4242, 0.0))
    held.append(lease)
    assert failure(settings(tmp_path, tiny_base_model, checkpoint_uri=uri)).startswith(
        f"checkpoint_uri='{uri}': another run is using it (host first-run, pid 4242"
    )
    lease.check()
    assert storage.read_with_etag(lease.uri) is not None
