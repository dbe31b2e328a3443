"""The classifier's forward pass as TorchScript: traced once at load, checked against the eager model first.

Hugging Face's forward pass spends about 2.5 ms of Python per call on MiniLM-L6 (wrappers that check
arguments, build masks and capture outputs), a fifth of a one-text request on one CPU thread; traced, the same
operators run on the same weights without it. Tracing records one path through the code, so the traced model
is compared with the eager one at load on batches of other sizes and lengths than the one it was traced with,
padded and not, truncated and not. When it cannot be traced or answers differently, the server says why in its
log and runs the eager model.
"""

from __future__ import annotations

import logging
import warnings
from collections.abc import Callable
from typing import Any

import torch

from modelplane.workloads.serving.server.config import RUNTIMES

log = logging.getLogger(__name__)

TRACE_EXAMPLE = ["a short text", "a longer text, so that the traced batch has padding in it"]
TOLERANCE = 1e-4
"""Largest difference in any class probability between the traced and the eager model on a probe."""

Encoded = dict[str, torch.Tensor]
Forward = Callable[[Encoded], torch.Tensor]
"""A tokenised batch to its logits."""


def probes(max_length: int) -> list[list[str]]:
    """Batches unlike the trace example: one text, three of different lengths, and one past `max_length`."""
    return [
        ["one"],
        ["three texts", "of quite different lengths, padded to the longest", "x"],
        ["long " * (2 * max_length), "short"],
    ]


def logits_of(output: Any) -> torch.Tensor:
    """The logits of a model's output: a ModelOutput (a dict), the dict a traced model returns, or a tuple."""
    if isinstance(output, dict):
        logits: torch.Tensor = output["logits"]
        return logits
    first: torch.Tensor = output[0]
    return first


def eager_forward(model: Any) -> Forward:
    return lambda encoded: logits_of(model(**encoded))


class TraceMismatchError(RuntimeError):
    """The traced model answered a probe differently from the eager one."""


def traced_forward(model: Any, encode: Callable[[list[str]], Encoded], max_length: int) -> Forward:
    """`model` traced on `TRACE_EXAMPLE`; raises when tracing fails or a probe's probabilities differ."""
    with torch.inference_mode(), warnings.catch_warnings():
        # Tracer warnings name each Python value it records as a constant; the probes below are the real check.
        warnings.simplefilter("ignore")
        traced = torch.jit.trace(model, example_kwarg_inputs=encode(TRACE_EXAMPLE), strict=False, check_trace=False)
        for batch in probes(max_length):
            encoded = encode(batch)
            expected = torch.softmax(logits_of(model(**encoded)).float(), dim=-1)
            got = torch.softmax(logits_of(traced(**encoded)).float(), dim=-1)
            difference = (expected - got).abs().max().item() if got.shape == expected.shape else float("inf")
            if difference > TOLERANCE or not torch.equal(expected.argmax(-1), got.argmax(-1)):
                raise TraceMismatchError(
                    f"on a batch of {len(batch)} texts the traced model's probabilities differ from the eager "
                    f"model's by {difference:.2g} (tolerance {TOLERANCE:g})"
                )
    return lambda encoded: logits_of(traced(**encoded))


def forward_for(
    model: Any, encode: Callable[[list[str]], Encoded], max_length: int, runtime: str
) -> tuple[Forward, str]:
    """The forward pass to serve with and its runtime: traced when `runtime` is torchscript and the trace
    matches the eager model, else eager."""
    if runtime not in RUNTIMES:
        raise ValueError(f"runtime={runtime!r}: must be one of {', '.join(RUNTIMES)}")
    if runtime == "torchscript":
        try:
            return traced_forward(model, encode, max_length), runtime
        except Exception as error:
            log.warning("serving the eager model: tracing it for TorchScript failed: %s", error)
    return eager_forward(model), "eager"
