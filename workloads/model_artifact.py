"""The exported model: what the trainer writes and the server loads (the contract between them).

A directory holding the Hugging Face model (`save_pretrained`: config and safetensors weights,
consolidated so it loads on any number of ranks), its tokenizer, and `modelplane.json`: the
format version, the label names in class-index order, the tokenizer's max length, the training
job and its evaluation metrics.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

MANIFEST_NAME = "modelplane.json"
FORMAT_VERSION = 1


@dataclass(frozen=True)
class ModelManifest:
    labels: list[str]
    """Class names, index i = logit i."""
    max_length: int
    """Longest input in tokens the model was trained with; longer texts are truncated."""
    job_name: str = ""
    metrics: dict[str, Any] = field(default_factory=dict)
    format_version: int = FORMAT_VERSION

    def __post_init__(self) -> None:
        if not self.labels or len(set(self.labels)) != len(self.labels):
            raise ValueError(f"labels={self.labels}: need at least one label, each unique")
        if self.max_length < 2:
            raise ValueError(f"max_length={self.max_length}: must be at least 2")
        if self.format_version != FORMAT_VERSION:
            raise ValueError(f"format_version={self.format_version}: this modelplane reads version {FORMAT_VERSION}")

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=2, sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> ModelManifest:
        data = json.loads(text)
        return cls(**data)


def write_manifest(directory: Path, manifest: ModelManifest) -> Path:
    path = directory / MANIFEST_NAME
    path.write_text(manifest.to_json())
    return path


def read_manifest(directory: Path) -> ModelManifest:
    path = directory / MANIFEST_NAME
    if not path.is_file():
        raise FileNotFoundError(
            f"{directory} is not a modelplane model: no {MANIFEST_NAME} (export it with the trainer)"
        )
    return ModelManifest.from_json(path.read_text())


def save_model(directory: Path, model: Any, tokenizer: Any, manifest: ModelManifest) -> Path:
    """Write a complete export into `directory` (callers upload it as one tree once written)."""
    directory.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(directory, safe_serialization=True)
    tokenizer.save_pretrained(directory)
    write_manifest(directory, manifest)
    return directory


def load_model(directory: Path) -> tuple[Any, Any, ModelManifest]:
    """The model (in eval mode), tokenizer and manifest of an export, from local files only."""
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    manifest = read_manifest(directory)
    tokenizer = AutoTokenizer.from_pretrained(directory, local_files_only=True)
    model = AutoModelForSequenceClassification.from_pretrained(directory, local_files_only=True)
    model.eval()
    if model.config.num_labels != len(manifest.labels):
        raise ValueError(
            f"{directory}: model has {model.config.num_labels} outputs but {MANIFEST_NAME} lists "
            f"{len(manifest.labels)} labels"
        )
    return model, tokenizer, manifest
