"""The model training starts from: a Hugging Face model directory (local or s3://) with a new classifier head."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from modelplane.workloads import storage


def fetch_base_model(uri: str, destination: Path) -> Path:
    """A local directory holding the model at `uri`: the directory itself, or a download of the s3:// prefix."""
    if storage.is_s3(uri):
        return storage.download_tree(uri, destination)
    path = Path(uri)
    if not (path / "config.json").is_file():
        raise FileNotFoundError(f"base_model={uri!r}: no config.json there; point it at a Hugging Face model directory")
    return path


def load_classifier(directory: Path, labels: Sequence[str]) -> tuple[Any, Any]:
    """The model with a newly initialised `len(labels)`-way head (seed torch first), and its tokenizer."""
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(directory, local_files_only=True)
    model = AutoModelForSequenceClassification.from_pretrained(
        directory,
        num_labels=len(labels),
        id2label=dict(enumerate(labels)),
        label2id={label: index for index, label in enumerate(labels)},
        local_files_only=True,
    )
    return model, tokenizer
