"""The training benchmark compares like with like: both loops run in the same mode (dropout on, as fine-tuning
does), and the mode printed is the one measured."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from benchmarks.training import ModeRecorder, build_loops, parse_args


@pytest.mark.usefixtures("one_rank")
def test_both_loops_train_with_dropout_on(tiny_base_model: Path, tmp_path: Path) -> None:
    threads = torch.get_num_threads()
    args = parse_args(
        [
            *("--steps", "2", "--micro-batch", "2", "--sequence-length", "16"),
            *("--base-model", str(tiny_base_model), "--threads", str(threads)),
        ]
    )
    plain, trainer, facts = build_loops(args, tmp_path)
    plain.steps(2)
    trainer.steps(2)
    assert (plain.modes.training, plain.modes.evaluating) == (2, 0)
    assert (trainer.modes.training, trainer.modes.evaluating) == (2, 0)
    assert plain.modes.mode == trainer.modes.mode == "train"
    assert facts["optimizer"] == "AdamW"
    assert plain.optimizer.defaults["fused"] is None, "the baseline uses torch's default AdamW"
    assert trainer.engine.optimizer.defaults["fused"] is True
    assert facts["dropout"] == "plain: torch's; trainer: cpu_dropout's masks"
    assert any(type(module) is torch.nn.Dropout for module in plain.model.modules())
    assert not any(type(module) is torch.nn.Dropout for module in trainer.engine.module.modules())


def test_the_recorder_reports_what_ran() -> None:
    model = torch.nn.Dropout(0.1)
    recorder = ModeRecorder(model)
    assert recorder.mode == "none"
    model.eval()
    model(torch.ones(1))
    assert recorder.describe() == "eval mode (0/1 forward passes with dropout on)"
    model.train()
    model(torch.ones(1))
    assert recorder.mode == "mixed"
