"""The server runs its model traced for TorchScript only where that answers as the eager model does."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import pytest
import torch

from modelplane.workloads.serving.server.classifier import TextClassifier
from modelplane.workloads.serving.server.config import ServerConfig
from modelplane.workloads.serving.server.traced import TRACE_EXAMPLE, forward_for
from tests.workloads.serving.conftest import sample_texts


def test_the_exported_model_is_served_traced_with_the_eager_models_answers(model_dir: Path) -> None:
    traced = TextClassifier.load(model_dir, "cpu", "torchscript")
    eager = TextClassifier.load(model_dir, "cpu", "eager")
    assert (traced.runtime, eager.runtime) == ("torchscript", "eager")
    for size in (1, 2, 7, 32):
        texts = sample_texts(size, seed=size)
        for ours, reference in zip(traced.predict(texts), eager.predict(texts), strict=True):
            assert ours.label == reference.label
            assert ours.probabilities == pytest.approx(reference.probabilities, abs=1e-5)


def test_a_text_past_the_trained_length_is_truncated_alike(model_dir: Path) -> None:
    traced = TextClassifier.load(model_dir, "cpu", "torchscript")
    eager = TextClassifier.load(model_dir, "cpu", "eager")
    texts = [" ".join(sample_texts(40, seed=3)), "fine"]
    for ours, reference in zip(traced.predict(texts), eager.predict(texts), strict=True):
        assert ours.probabilities == pytest.approx(reference.probabilities, abs=1e-5)


class ShapeDependent(torch.nn.Module):
    """A model whose Python branches on the batch size: a trace records the branch the example took."""

    def __init__(self) -> None:
        super().__init__()
        self.scale = torch.nn.Linear(1, 3)

    def forward(self, input_ids: torch.Tensor, **_: Any) -> dict[str, torch.Tensor]:
        sign = 1.0 if input_ids.shape[0] == len(TRACE_EXAMPLE) else -1.0
        return {"logits": sign * self.scale(input_ids[:, :1].float())}


class Untraceable(torch.nn.Module):
    def forward(self, input_ids: torch.Tensor, **_: Any) -> dict[str, torch.Tensor]:
        if torch.jit.is_tracing():
            raise RuntimeError("this model cannot be traced")
        return {"logits": input_ids[:, :3].float()}


def encode(texts: list[str]) -> dict[str, torch.Tensor]:
    return {"input_ids": torch.tensor([[len(text) + i for i in range(4)] for text in texts])}


@pytest.mark.parametrize(
    ("model", "reason"),
    [(ShapeDependent(), "probabilities differ from the eager model's"), (Untraceable(), "cannot be traced")],
)
def test_a_model_the_trace_gets_wrong_is_served_eager_saying_why(
    model: torch.nn.Module, reason: str, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING):
        forward, runtime = forward_for(model, encode, max_length=8, runtime="torchscript")
    assert runtime == "eager"
    assert reason in caplog.text
    batch = encode(["a", "bb", "ccc"])
    assert torch.equal(forward(batch), model(**batch)["logits"])


def test_eager_is_served_when_asked_and_an_unknown_runtime_is_refused(model_dir: Path) -> None:
    _, runtime = forward_for(ShapeDependent(), encode, max_length=8, runtime="eager")
    assert runtime == "eager"
    with pytest.raises(ValueError, match="runtime='onnx': must be one of torchscript, eager"):
        forward_for(ShapeDependent(), encode, max_length=8, runtime="onnx")
    with pytest.raises(ValueError, match="model_runtime='onnx': must be one of torchscript, eager"):
        ServerConfig(model_uri=str(model_dir), model_runtime="onnx")
