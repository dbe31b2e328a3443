"""Labelled text in, batches of token ids out: readers for JSONL and CSV, the train/eval split and the loaders.

Each rank reads the whole (small, classification-sized) file and takes its share through a sampler, in the
manner of accelerate's nlp_example; texts are tokenised per batch, padded to the batch's longest.
"""

from __future__ import annotations

import csv
import json
import math
import random
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch.utils.data import DataLoader, Dataset, DistributedSampler

JSONL_SUFFIXES = (".jsonl", ".json", ".ndjson")
CSV_SUFFIXES = (".csv",)


@dataclass(frozen=True)
class Example:
    text: str
    label: str


def read_examples(path: Path) -> list[Example]:
    """Rows of a JSONL or CSV file (by suffix); each needs a non-empty `text` and a `label`."""
    suffix = path.suffix.lower()
    if suffix in JSONL_SUFFIXES:
        examples = list(read_jsonl(path))
    elif suffix in CSV_SUFFIXES:
        examples = list(read_csv(path))
    else:
        raise ValueError(f"{path}: unknown format {suffix!r}; use {', '.join(JSONL_SUFFIXES + CSV_SUFFIXES)}")
    if not examples:
        raise ValueError(f"{path}: no rows")
    return examples


def read_jsonl(path: Path) -> Iterator[Example]:
    with path.open(encoding="utf-8") as lines:
        for number, line in enumerate(lines, start=1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError as error:
                raise ValueError(f"{path}:{number}: not JSON ({error.msg})") from None
            if not isinstance(row, dict):
                raise ValueError(f"{path}:{number}: must be a JSON object with text and label")
            yield example_from_row(row, f"{path}:{number}")


def read_csv(path: Path) -> Iterator[Example]:
    with path.open(encoding="utf-8", newline="") as handle:
        reader = csv.DictReader(handle)
        missing = {"text", "label"} - set(reader.fieldnames or ())
        if missing:
            raise ValueError(f"{path}:1: header lacks {', '.join(sorted(missing))} (has {reader.fieldnames})")
        for row in reader:
            yield example_from_row(row, f"{path}:{reader.line_num}")


def example_from_row(row: dict[str, Any], where: str) -> Example:
    text, label = row.get("text"), row.get("label")
    if not isinstance(text, str) or not text.strip():
        raise ValueError(f"{where}: text is missing or empty")
    if label is None or isinstance(label, bool) or not isinstance(label, str | int) or str(label).strip() == "":
        raise ValueError(f"{where}: label is missing or not a string or integer (got {label!r})")
    return Example(text, str(label).strip())


def label_names(examples: Sequence[Example]) -> list[str]:
    """Sorted, so every rank and every restart maps labels to the same class indices."""
    return sorted({example.label for example in examples})


def split_train_eval(
    examples: Sequence[Example], eval_fraction: float, seed: int
) -> tuple[list[Example], list[Example]]:
    """A shuffled hold-out of `eval_fraction` (at least one row); the same on every rank for the same seed."""
    if eval_fraction == 0:
        return list(examples), []
    order = list(range(len(examples)))
    random.Random(seed).shuffle(order)
    held_out = max(1, round(len(examples) * eval_fraction))
    if held_out >= len(examples):
        raise ValueError(f"eval_fraction={eval_fraction}: leaves no training rows out of {len(examples)}")
    return [examples[i] for i in order[held_out:]], [examples[i] for i in order[:held_out]]


def check_labels_known(examples: Sequence[Example], labels: Sequence[str], where: str) -> None:
    unknown = sorted({example.label for example in examples} - set(labels))
    if unknown:
        raise ValueError(f"{where}: labels {unknown} do not occur in the training data (labels: {list(labels)})")


class LabelledTexts(Dataset[dict[str, Any]]):
    """Examples with labels as class indices; `counted` is False for padding rows that evaluation must skip."""

    def __init__(self, examples: Sequence[Example], labels: Sequence[str]) -> None:
        self.examples = list(examples)
        self.index_of = {label: index for index, label in enumerate(labels)}

    def __len__(self) -> int:
        return len(self.examples)

    def __getitem__(self, index: int) -> dict[str, Any]:
        example = self.examples[index]
        return {"text": example.text, "label": self.index_of[example.label], "counted": True}


class EvalShard(Dataset[dict[str, Any]]):
    """Rank `rank`'s share of `texts`, padded so every rank runs the same number of forward passes.

    ZeRO-3 gathers parameters in every forward, so a rank with fewer batches would leave the others waiting.
    """

    def __init__(self, texts: LabelledTexts, rank: int, world_size: int) -> None:
        self.texts = texts
        self.indices = list(range(rank, len(texts), world_size))
        self.length = math.ceil(len(texts) / world_size)

    def __len__(self) -> int:
        return self.length

    def __getitem__(self, index: int) -> dict[str, Any]:
        if index < len(self.indices):
            return self.texts[self.indices[index]]
        return {**self.texts[0], "counted": False}


class ResumableSampler(DistributedSampler[int]):
    """A `DistributedSampler` that can skip the samples this rank trained on before a restart.

    `len()` stays the whole epoch's share: the training loop counts steps per epoch from it.
    """

    skip: int = 0

    def __iter__(self) -> Iterator[int]:
        indices = list(super().__iter__())
        skip, self.skip = self.skip, 0  # only the epoch that was interrupted resumes midway
        return iter(indices[skip:])


class Collator:
    """Tokenises a batch, padded to its longest text (at most `max_length` tokens)."""

    def __init__(self, tokenizer: Any, max_length: int) -> None:
        self.tokenizer = tokenizer
        self.max_length = max_length

    def __call__(self, rows: list[dict[str, Any]]) -> dict[str, torch.Tensor]:
        batch = self.tokenizer(
            [row["text"] for row in rows],
            padding="longest",
            truncation=True,
            max_length=self.max_length,
            return_tensors="pt",
        )
        batch["labels"] = torch.tensor([row["label"] for row in rows], dtype=torch.long)
        batch["counted"] = torch.tensor([row["counted"] for row in rows], dtype=torch.bool)
        return dict(batch)


@dataclass(frozen=True)
class Loaders:
    train: DataLoader[dict[str, Any]]
    train_sampler: ResumableSampler
    eval: DataLoader[dict[str, Any]] | None


def make_loaders(
    train: Sequence[Example],
    evaluation: Sequence[Example],
    labels: Sequence[str],
    tokenizer: Any,
    *,
    max_length: int,
    micro_batch_size: int,
    rank: int,
    world_size: int,
    seed: int,
) -> Loaders:
    """The training loader (shuffled, sharded by rank) and the evaluation loader (unshuffled, padded shards)."""
    collate = Collator(tokenizer, max_length)
    train_texts = LabelledTexts(train, labels)
    sampler = ResumableSampler(train_texts, num_replicas=world_size, rank=rank, shuffle=True, seed=seed)
    train_loader = DataLoader(train_texts, batch_size=micro_batch_size, sampler=sampler, collate_fn=collate)
    eval_loader = None
    if evaluation:
        shard = EvalShard(LabelledTexts(evaluation, labels), rank, world_size)
        eval_loader = DataLoader(shard, batch_size=micro_batch_size, shuffle=False, collate_fn=collate)
    return Loaders(train_loader, sampler, eval_loader)
