from __future__ import annotations

import pytest
import torch

from modelplane.workloads.training.trainer.evaluate import confusion_matrix, report_from_confusion

LABELS = ["negative", "neutral", "positive"]


def test_scores_match_hand_computed_values() -> None:
    targets = torch.tensor([0, 0, 0, 1, 1, 2, 2, 2])
    predictions = torch.tensor([0, 0, 1, 1, 2, 2, 2, 0])
    confusion = confusion_matrix(predictions, targets, 3)
    assert confusion.tolist() == [[2, 1, 0], [0, 1, 1], [1, 0, 2]]
    report = report_from_confusion(confusion, LABELS)
    assert report.accuracy == pytest.approx(5 / 8)
    assert report.examples == 8
    negative = report.per_class["negative"]
    assert (negative.precision, negative.recall, negative.support) == (pytest.approx(2 / 3), pytest.approx(2 / 3), 3)
    assert negative.f1 == pytest.approx(2 / 3)
    neutral = report.per_class["neutral"]
    assert (neutral.precision, neutral.recall) == (pytest.approx(1 / 2), pytest.approx(1 / 2))
    positive = report.per_class["positive"]
    assert positive.precision == pytest.approx(2 / 3)
    assert positive.recall == pytest.approx(2 / 3)


def test_summed_confusion_matrices_score_like_one_pass() -> None:
    targets = torch.tensor([0, 1, 2, 2, 1, 0])
    predictions = torch.tensor([0, 2, 2, 1, 1, 0])
    whole = confusion_matrix(predictions, targets, 3)
    parts = confusion_matrix(predictions[:3], targets[:3], 3) + confusion_matrix(predictions[3:], targets[3:], 3)
    assert torch.equal(whole, parts)


def test_a_class_never_predicted_scores_zero_not_nan() -> None:
    report = report_from_confusion(confusion_matrix(torch.tensor([0, 0]), torch.tensor([0, 2]), 3), LABELS)
    assert report.per_class["positive"].precision == 0.0
    assert report.per_class["positive"].f1 == 0.0
    assert report.per_class["neutral"].support == 0
    assert report.as_dict()["per_class"]["negative"]["recall"] == 1.0


def test_shapes_are_checked() -> None:
    with pytest.raises(ValueError, match="differ in shape"):
        confusion_matrix(torch.tensor([0, 1]), torch.tensor([0]), 3)
    with pytest.raises(ValueError, match="does not match 3 labels"):
        report_from_confusion(torch.zeros(2, 2, dtype=torch.long), LABELS)
