"""Classification scores from a confusion matrix, which ranks can sum before scoring (counts add, ratios do not)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

import torch


@dataclass(frozen=True)
class ClassScores:
    precision: float
    recall: float
    f1: float
    support: int
    """Rows whose true label is this class."""


@dataclass(frozen=True)
class EvalReport:
    accuracy: float
    per_class: dict[str, ClassScores]
    examples: int

    def as_dict(self) -> dict[str, Any]:
        """Plain JSON-ready values, as they go into the export's manifest."""
        return {
            "accuracy": self.accuracy,
            "examples": self.examples,
            "per_class": {label: asdict(scores) for label, scores in self.per_class.items()},
        }


def confusion_matrix(predictions: torch.Tensor, targets: torch.Tensor, num_labels: int) -> torch.Tensor:
    """Counts with rows = true label, columns = predicted label (int64, so it can be all-reduced as is)."""
    if predictions.shape != targets.shape:
        raise ValueError(f"predictions {tuple(predictions.shape)} and targets {tuple(targets.shape)} differ in shape")
    flat = targets.long() * num_labels + predictions.long()
    return torch.bincount(flat, minlength=num_labels * num_labels).reshape(num_labels, num_labels)


def report_from_confusion(confusion: torch.Tensor, labels: Sequence[str]) -> EvalReport:
    """Accuracy and per-class precision, recall and F1; a ratio with nothing to divide by is 0."""
    if confusion.shape != (len(labels), len(labels)):
        raise ValueError(f"confusion matrix {tuple(confusion.shape)} does not match {len(labels)} labels")
    counts = confusion.double()
    correct = counts.diagonal()
    total = counts.sum().item()
    predicted = counts.sum(dim=0)
    actual = counts.sum(dim=1)
    per_class = {}
    for index, label in enumerate(labels):
        precision = ratio(correct[index].item(), predicted[index].item())
        recall = ratio(correct[index].item(), actual[index].item())
        per_class[label] = ClassScores(
            precision=precision,
            recall=recall,
            f1=ratio(2 * precision * recall, precision + recall),
            support=int(actual[index].item()),
        )
    return EvalReport(accuracy=ratio(correct.sum().item(), total), per_class=per_class, examples=int(total))


def ratio(numerator: float, denominator: float) -> float:
    return numerator / denominator if denominator else 0.0
