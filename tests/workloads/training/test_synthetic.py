from __future__ import annotations

import json
from pathlib import Path

import pytest

from modelplane.workloads.training.synthetic import LABELS, main, synthetic_rows
from modelplane.workloads.training.trainer.data import read_examples


def test_same_seed_same_rows_and_other_seed_other_rows() -> None:
    assert synthetic_rows(60, seed=1) == synthetic_rows(60, seed=1)
    assert synthetic_rows(60, seed=1) != synthetic_rows(60, seed=2)


def test_every_label_is_represented_evenly() -> None:
    labels = [row["label"] for row in synthetic_rows(30)]
    assert {label: labels.count(label) for label in LABELS} == dict.fromkeys(LABELS, 10)


def test_cli_writes_jsonl_the_trainer_reads_and_says_it_is_synthetic(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "news.jsonl"
    main(["--out", str(out), "--rows", "12", "--seed", "3"])
    assert "SYNTHETIC" in capsys.readouterr().out
    assert [json.loads(line) for line in out.read_text().splitlines()] == synthetic_rows(12, seed=3)
    assert len(read_examples(out)) == 12


def test_rows_must_be_positive() -> None:
    with pytest.raises(ValueError, match="rows=0"):
        synthetic_rows(0)
