"""Dropout for training on CPU: the same keep probability and scaling as torch's, with cheaper masks.

On CPU torch draws a dropout mask one double at a time from its generator, in a serial loop, then converts the
mask to the activations' type element by element: about 14% of a MiniLM fine-tuning step, the largest cost after
the matrix products. Here each 64-bit word drawn from the same generator gives two 32-bit keep decisions (the keep
probability exact to 2**-32), and the mask is applied as one float tensor holding 0 or 1/(1-p), forward and
backward; backward rebuilds it from the boolean mask, so a layer keeps one byte per element, as torch's does.
The attention probabilities' dropout, which SDPA does inside its math path on CPU, gets the same treatment through
an attention function of Hugging Face's interface. Nothing changes for evaluation, export or serving: the
exported config names no attention function, and a model out of training mode takes torch's own paths.
"""

from __future__ import annotations

import math
from typing import Any

import torch

ATTENTION = "modelplane-cpu-dropout"
WORD_RANGE_START = -(2**63)
DECISIONS_PER_WORD = 2
DECISION_SPAN = 2**32
DECISION_START = -(2**31)


def keep_mask(shape: torch.Size | tuple[int, ...], keep_probability: float) -> torch.Tensor:
    """A boolean mask of `shape`, each element True with probability `keep_probability` (0 < p < 1)."""
    kept_decisions = round(keep_probability * DECISION_SPAN)
    if kept_decisions >= DECISION_SPAN:
        # Within 2**-33 of 1: the threshold would be one past int32's range, and wrap round to keep nothing.
        return torch.ones(shape, dtype=torch.bool)
    count = math.prod(shape)
    words = torch.empty(-(-count // DECISIONS_PER_WORD), dtype=torch.int64).random_(WORD_RANGE_START, None)
    decisions = words.view(torch.int32)[:count].view(shape)
    return decisions < DECISION_START + kept_decisions


def scaled(keep: torch.Tensor, scale: float, dtype: torch.dtype) -> torch.Tensor:
    """`keep` as `dtype`, times `scale`: multiplying by a float tensor is vectorised, by a bool tensor it is not."""
    return keep.to(dtype).mul_(scale)


class MaskedScale(torch.autograd.Function):
    """`input * keep * scale`, whose gradient is `grad * keep * scale`; the mask is kept for backward as bytes."""

    @staticmethod
    def forward(ctx: Any, values: torch.Tensor, keep: torch.Tensor, scale: float) -> torch.Tensor:
        ctx.save_for_backward(keep)
        ctx.scale = scale
        return values * scaled(keep, scale, values.dtype)

    @staticmethod
    def backward(ctx: Any, *gradients: torch.Tensor) -> tuple[torch.Tensor, None, None]:
        (keep,) = ctx.saved_tensors
        return gradients[0] * scaled(keep, ctx.scale, gradients[0].dtype), None, None


def apply_dropout(values: torch.Tensor, probability: float, training: bool) -> torch.Tensor:
    """torch's `dropout(values, probability, training)`, with this module's masks on CPU."""
    if not 0.0 <= probability <= 1.0:
        raise ValueError(f"dropout probability has to be between 0 and 1, but got {probability}")
    if not training or probability == 0.0 or values.device.type != "cpu":
        return torch.nn.functional.dropout(values, probability, training)
    if probability == 1.0:
        return values * 0.0
    keep = 1.0 - probability
    applied: torch.Tensor = MaskedScale.apply(values, keep_mask(values.shape, keep), 1.0 / keep)
    return applied


class CpuDropout(torch.nn.Dropout):
    """`torch.nn.Dropout` with this module's masks; it ignores `inplace`, since the mask is applied by a product."""

    def forward(self, input: torch.Tensor) -> torch.Tensor:
        return apply_dropout(input, self.p, self.training)


def attention(
    module: torch.nn.Module,
    query: torch.Tensor,
    key: torch.Tensor,
    value: torch.Tensor,
    attention_mask: torch.Tensor | None,
    dropout: float = 0.0,
    scaling: float | None = None,
    **kwargs: Any,
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Hugging Face's SDPA attention, except with dropout on: then softmax(QKᵀ·scale + mask), this dropout, ·V."""
    from transformers.integrations.sdpa_attention import sdpa_attention_forward

    if dropout == 0.0 or query.device.type != "cpu" or key.shape[1] != query.shape[1]:
        output: tuple[torch.Tensor, torch.Tensor | None] = sdpa_attention_forward(
            module, query, key, value, attention_mask, dropout=dropout, scaling=scaling, **kwargs
        )
        return output
    # Scaling the queries costs a twelfth of scaling the scores (head size 32 against 128 keys, for MiniLM).
    query = query * (query.shape[-1] ** -0.5 if scaling is None else scaling)
    scores = torch.matmul(query, key.transpose(-2, -1))
    if attention_mask is None and kwargs.get("is_causal", getattr(module, "is_causal", False)):
        attention_mask = torch.ones(query.shape[-2], key.shape[-2], dtype=torch.bool, device=query.device).tril(
            key.shape[-2] - query.shape[-2]
        )
    if attention_mask is not None:
        # Added in place: the sum's gradient is the incoming one, with no pass over the scores.
        scores.add_(additive(attention_mask, scores.dtype)[..., : key.shape[-2]])
    weights = apply_dropout(torch.softmax(scores, dim=-1), dropout, training=True)
    return torch.matmul(weights, value).transpose(1, 2).contiguous(), weights


def additive(mask: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    """An attention mask as a bias to add to the scores: a boolean one (True attends) becomes 0 and the lowest value."""
    if mask.dtype != torch.bool:
        return mask.to(dtype)
    return torch.zeros(mask.shape, dtype=dtype, device=mask.device).masked_fill_(
        mask.logical_not(), torch.finfo(dtype).min
    )


def install(model: Any) -> int:
    """Give `model`'s training on CPU this module's dropout; returns how many dropout layers it replaced."""
    from transformers import AttentionInterface
    from transformers.masking_utils import AttentionMaskInterface, sdpa_mask

    replaced = 0
    for parent in list(model.modules()):
        for name, child in list(parent.named_children()):
            if type(child) is torch.nn.Dropout:
                setattr(parent, name, CpuDropout(child.p))
                replaced += 1
    config = getattr(model, "config", None)
    if getattr(config, "_attn_implementation", None) in ("sdpa", "eager"):
        AttentionInterface.register(ATTENTION, attention)
        # Without a mask function of its own, Hugging Face builds no padding mask at all for a new attention name.
        AttentionMaskInterface.register(ATTENTION, sdpa_mask)
        model.set_attn_implementation(ATTENTION)
    return replaced
