"""The model behind the endpoint: a text classifier export, run on one batch of texts at a time."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from modelplane.workloads.model_artifact import load_model
from modelplane.workloads.serving.server.traced import Encoded, forward_for


@dataclass(frozen=True)
class Prediction:
    label: str
    probabilities: list[float]
    """One per class, in the order of the manifest's labels."""


def resolve_device(device: str) -> torch.device:
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(device)


class TextClassifier:
    """Tokenises a batch as one (padded to its longest text, truncated to the trained length) and classifies it,
    with the model traced for TorchScript unless `runtime` is eager (see `traced`).

    Not thread-safe (a fast tokenizer refuses concurrent use): the batcher calls it from a single thread.
    """

    def __init__(
        self,
        model: Any,
        tokenizer: Any,
        labels: list[str],
        max_length: int,
        device: torch.device,
        runtime: str = "torchscript",
    ):
        self.model = model.to(device)
        self.tokenizer = tokenizer
        self.labels = labels
        self.max_length = max_length
        self.device = device
        self.forward, self.runtime = forward_for(self.model, self.encode, max_length, runtime)

    @classmethod
    def load(cls, directory: Path, device: str = "auto", runtime: str = "torchscript") -> TextClassifier:
        model, tokenizer, manifest = load_model(directory)
        return cls(model, tokenizer, manifest.labels, manifest.max_length, resolve_device(device), runtime)

    def encode(self, texts: list[str]) -> Encoded:
        encoded = self.tokenizer(texts, padding=True, truncation=True, max_length=self.max_length, return_tensors="pt")
        return dict(encoded.to(self.device))

    def predict(self, texts: list[str]) -> list[Prediction]:
        encoded = self.encode(texts)
        with torch.inference_mode():
            logits = self.forward(encoded)
        probabilities = torch.softmax(logits.float(), dim=-1).cpu()
        best = probabilities.argmax(dim=-1).tolist()
        return [Prediction(self.labels[b], row) for b, row in zip(best, probabilities.tolist(), strict=True)]
