"""The trainer's CPU dropout does what torch's does: keep rate, scaling, gradient, eval, padding, causal masks."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import pytest
import torch

from modelplane.workloads.training.trainer import cpu_dropout
from tests.tiny_model import tiny_bert_config

ELEMENTS = 1_000_000
# Five standard deviations of a binomial keep rate over ELEMENTS draws, at p=0.5 (the widest).
KEEP_RATE_TOLERANCE = 5 * math.sqrt(0.25 / ELEMENTS)


@pytest.mark.parametrize("keep", [0.01, 0.1, 0.5, 0.9, 0.999])
def test_the_mask_keeps_elements_at_the_asked_rate(keep: float) -> None:
    torch.manual_seed(0)
    mask = cpu_dropout.keep_mask((ELEMENTS,), keep)
    assert mask.dtype == torch.bool
    assert abs(mask.float().mean().item() - keep) < KEEP_RATE_TOLERANCE


def test_both_halves_of_each_random_word_are_used_and_independent() -> None:
    # The first and second decision of a word come from its low and high 32 bits; a half that were not full-range
    # (torch's `random_()` without a range leaves the sign bit off) would keep far more or fewer.
    torch.manual_seed(1)
    mask = cpu_dropout.keep_mask((ELEMENTS,), 0.5).float()
    for half in (mask[0::2], mask[1::2]):
        assert abs(half.mean().item() - 0.5) < 2 * KEEP_RATE_TOLERANCE
    agreement = (mask[0::2] == mask[1::2]).float().mean().item()
    assert abs(agreement - 0.5) < 2 * KEEP_RATE_TOLERANCE


@pytest.mark.parametrize("probability", [1e-10, 1e-12])
def test_a_vanishing_probability_drops_nothing(probability: float) -> None:
    values = torch.rand(1000) + 1.0
    assert torch.allclose(cpu_dropout.apply_dropout(values, probability, training=True), values)


def test_an_odd_number_of_elements_gets_a_mask_of_its_shape() -> None:
    assert cpu_dropout.keep_mask((3, 5, 7), 0.5).shape == (3, 5, 7)


def test_the_same_seed_gives_the_same_mask() -> None:
    torch.manual_seed(7)
    first = cpu_dropout.keep_mask((1000,), 0.8)
    torch.manual_seed(7)
    assert torch.equal(first, cpu_dropout.keep_mask((1000,), 0.8))


def test_kept_values_are_scaled_and_the_gradient_passes_only_through_them() -> None:
    torch.manual_seed(2)
    values = (torch.rand(200, 300) + 1.0).requires_grad_()
    dropped = cpu_dropout.apply_dropout(values, 0.3, training=True)
    kept = dropped != 0
    assert torch.allclose(dropped[kept], values[kept] / 0.7)
    assert abs(kept.float().mean().item() - 0.7) < 0.01
    upstream = torch.randn_like(dropped)
    dropped.backward(upstream)
    assert values.grad is not None
    assert torch.allclose(values.grad, upstream * kept / 0.7)


def test_out_of_training_and_the_edge_probabilities_behave_as_torchs() -> None:
    values = torch.randn(50, 50)
    assert torch.equal(cpu_dropout.apply_dropout(values, 0.5, training=False), values)
    assert torch.equal(cpu_dropout.apply_dropout(values, 0.0, training=True), values)
    assert not cpu_dropout.apply_dropout(values, 1.0, training=True).any()
    with pytest.raises(ValueError, match=r"between 0 and 1, but got 1\.5"):
        cpu_dropout.apply_dropout(values, 1.5, training=True)


def tiny_classifier(dropout: float) -> Any:
    from transformers import BertForSequenceClassification

    torch.manual_seed(0)
    config = tiny_bert_config(100, num_labels=3, hidden_dropout_prob=dropout, attention_probs_dropout_prob=dropout)
    return BertForSequenceClassification(config)


def padded_batch() -> dict[str, torch.Tensor]:
    torch.manual_seed(3)
    mask = torch.ones(3, 12, dtype=torch.long)
    mask[1, 8:] = 0
    mask[2, 3:] = 0
    return {"input_ids": torch.randint(5, 100, (3, 12)), "attention_mask": mask}


def test_install_replaces_every_dropout_layer_and_the_attention_function() -> None:
    model = tiny_classifier(0.1)
    layers = sum(type(module) is torch.nn.Dropout for module in model.modules())
    assert cpu_dropout.install(model) == layers > 0
    assert not any(type(module) is torch.nn.Dropout for module in model.modules())
    assert model.config._attn_implementation == cpu_dropout.ATTENTION


def test_an_installed_model_computes_what_the_original_does_including_padding() -> None:
    # Trained with a vanishing dropout, the installed model's attention runs its own path (padding mask included)
    # and must agree with torch's SDPA; out of training it is torch's path itself.
    reference = tiny_classifier(1e-9).eval()
    installed = tiny_classifier(1e-9)
    cpu_dropout.install(installed)
    batch = padded_batch()
    expected = reference(**batch).logits
    assert torch.allclose(installed.train()(**batch).logits, expected, atol=1e-5)
    assert torch.equal(installed.eval()(**batch).logits, expected)


def test_padding_is_masked_in_training() -> None:
    # Changing a padded-out token must not change a row's result: the mask reaches the attention function.
    model = tiny_classifier(1e-9)
    cpu_dropout.install(model)
    model.train()
    batch = padded_batch()
    changed = {**batch, "input_ids": batch["input_ids"].clone()}
    changed["input_ids"][2, 5] = 6 if batch["input_ids"][2, 5] != 6 else 7
    assert torch.allclose(model(**batch).logits[2], model(**changed).logits[2], atol=1e-6)


def test_attention_probabilities_are_dropped_in_training() -> None:
    model = tiny_classifier(0.5)
    cpu_dropout.install(model)
    outputs = model.train()(**padded_batch(), output_attentions=True)
    weights = outputs.attentions[0]
    valid = padded_batch()["attention_mask"][:, None, None, :].bool().expand_as(weights)
    dropped = (weights[valid] == 0).float().mean().item()
    assert 0.4 < dropped < 0.6


def test_a_causal_attention_without_a_mask_sees_no_later_keys() -> None:
    class Causal(torch.nn.Module):
        is_causal = True

    query, key, value = (torch.randn(2, 2, 5, 4) for _ in range(3))
    output, weights = cpu_dropout.attention(Causal(), query, key, value, None, dropout=1e-9, scaling=0.5)
    assert weights is not None
    assert not weights.triu(1).any()
    expected = torch.nn.functional.scaled_dot_product_attention(query, key, value, is_causal=True, scale=0.5)
    assert torch.allclose(output, expected.transpose(1, 2), atol=1e-6)


def test_the_saved_model_names_no_attention_function(tmp_path: Path) -> None:
    from transformers import BertForSequenceClassification

    model = tiny_classifier(0.1)
    cpu_dropout.install(model)
    model.save_pretrained(tmp_path)
    assert cpu_dropout.ATTENTION not in json.dumps(json.loads((tmp_path / "config.json").read_text()))
    loaded = BertForSequenceClassification.from_pretrained(tmp_path)
    assert loaded.config._attn_implementation == "sdpa"
    assert any(type(module) is torch.nn.Dropout for module in loaded.modules())
