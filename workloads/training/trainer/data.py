"""Labelled text in, batches of token ids out: readers for JSONL and CSV, the train/eval split and the loaders.

Each rank reads the whole (small, classification-sized) file and takes its share through a sampler, in the
manner of accelerate's nlp_example; texts are tokenised per batch, padded to the batch's longest. Every
problem found in a file names it and the line; texts are cut to a bound before any tokeniser sees them.
"""

from __future__ import annotations

import csv
import difflib
import json
import logging
import math
import random
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch.utils.data import DataLoader, Dataset, DistributedSampler

JSONL_SUFFIXES = (".jsonl", ".json", ".ndjson")
CSV_SUFFIXES = (".csv",)
CHARS_PER_TOKEN_BOUND = 16
"""Texts are cut to `max_length` times this many characters before tokenising: more than any real token spans
(English averages about four), so the tokens kept are the same, and a 20 MB line costs no more than a long one."""

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Example:
    text: str
    label: str
    where: str = field(default="", compare=False)
    """`file:line` the row came from, for error messages."""


def max_text_chars(max_length: int) -> int:
    return max_length * CHARS_PER_TOKEN_BOUND


def read_examples(path: Path, max_chars: int | None = None, shown_as: str | None = None) -> list[Example]:
    """Rows of a JSONL or CSV file (by suffix); each needs a non-empty `text` and a `label`. Texts longer than
    `max_chars` are cut to it; errors name `shown_as` (the URI the file was downloaded from), else `path`."""
    name = shown_as or str(path)
    suffix = path.suffix.lower()
    if suffix not in JSONL_SUFFIXES + CSV_SUFFIXES:
        raise ValueError(f"{name}: unknown format {suffix!r}; use {', '.join(JSONL_SUFFIXES + CSV_SUFFIXES)}")
    check_utf8(path, name)
    examples = list(read_jsonl(path, name) if suffix in JSONL_SUFFIXES else read_csv(path, name))
    if not examples:
        raise ValueError(f"{name}: no rows")
    return examples if max_chars is None else truncated(examples, max_chars, name)


def check_utf8(path: Path, name: str) -> None:
    """ValueError naming the file, line and column of the first byte that is not UTF-8."""
    with path.open("rb") as lines:
        for number, line in enumerate(lines, start=1):
            try:
                line.decode("utf-8")
            except UnicodeDecodeError as error:
                raise ValueError(
                    f"{name}:{number}: not UTF-8 (byte 0x{line[error.start]:02x} at column {error.start + 1}); "
                    "re-encode the file as UTF-8"
                ) from None


def truncated(examples: list[Example], max_chars: int, name: str) -> list[Example]:
    cut = [index for index, example in enumerate(examples) if len(example.text) > max_chars]
    if not cut:
        return examples
    log.info(
        "%s: %d rows longer than %d characters (the first at %s) cut to %d before tokenising",
        name,
        len(cut),
        max_chars,
        examples[cut[0]].where,
        max_chars,
    )
    shortened = list(examples)
    for index in cut:
        example = examples[index]
        shortened[index] = Example(example.text[:max_chars], example.label, example.where)
    return shortened


def read_jsonl(path: Path, name: str) -> Iterator[Example]:
    with path.open(encoding="utf-8") as lines:
        for number, line in enumerate(lines, start=1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError as error:
                raise ValueError(f"{name}:{number}: not JSON ({error.msg})") from None
            if not isinstance(row, dict):
                raise ValueError(f"{name}:{number}: must be a JSON object with text and label")
            yield example_from_row(row, f"{name}:{number}")


def read_csv(path: Path, name: str) -> Iterator[Example]:
    with path.open(encoding="utf-8", newline="") as handle:
        reader = csv.DictReader(handle)
        missing = {"text", "label"} - set(reader.fieldnames or ())
        if missing:
            raise ValueError(f"{name}:1: header lacks {', '.join(sorted(missing))} (has {reader.fieldnames})")
        for row in reader:
            yield example_from_row(row, f"{name}:{reader.line_num}")


def example_from_row(row: dict[str, Any], where: str) -> Example:
    text, label = row.get("text"), row.get("label")
    if not isinstance(text, str) or not text.strip():
        raise ValueError(f"{where}: text is missing or empty")
    if label is None or isinstance(label, bool) or not isinstance(label, str | int) or str(label).strip() == "":
        raise ValueError(f"{where}: label is missing or not a string or integer (got {label!r})")
    return Example(text, str(label).strip(), where)


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


def check_labels_known(examples: Sequence[Example], labels: Sequence[str], known_as: str) -> None:
    """ValueError at the first row whose label is not in `labels` (`known_as` says where they come from), naming
    its file and line and the nearest known label."""
    known = set(labels)
    unknown = [example for example in examples if example.label not in known]
    if not unknown:
        return
    first = unknown[0]
    (nearest,) = difflib.get_close_matches(first.label, labels, n=1, cutoff=0.0)
    others = f"; {len(unknown) - 1} more rows have labels outside them" if len(unknown) > 1 else ""
    raise ValueError(
        f"{first.where}: label {first.label!r} is not one of {known_as} ({', '.join(labels)}); "
        f"did you mean {nearest!r}?{others}"
    )


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
