"""The trained model as the inference server loads it: consolidated fp32 weights saved with `save_model`."""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path
from typing import Any

import torch

from modelplane.workloads import storage
from modelplane.workloads.model_artifact import ModelManifest, save_model

MODEL_STATES_NAME = "mp_rank_00_model_states.pt"
ZERO_SHARD_GLOB = "*zero_pp_rank_*_optim_states.pt"


def consolidated_state_dict(checkpoint_dir: Path) -> dict[str, torch.Tensor]:
    """Full fp32 weights from a DeepSpeed checkpoint written by any number of ranks.

    With ZeRO the fp32 master weights are spread over the ranks' optimizer shards, so they are stitched
    together; without it rank 0's model file holds them all.
    """
    if any(checkpoint_dir.glob(ZERO_SHARD_GLOB)):
        from deepspeed.utils.zero_to_fp32 import get_fp32_state_dict_from_zero_checkpoint

        state: dict[str, torch.Tensor] = get_fp32_state_dict_from_zero_checkpoint(
            str(checkpoint_dir.parent), tag=checkpoint_dir.name
        )
        return state
    # DeepSpeed pickles more than tensors into its checkpoints; they are this job's own files.
    saved = torch.load(checkpoint_dir / MODEL_STATES_NAME, map_location="cpu", weights_only=False)
    return {name: tensor.float() if tensor.is_floating_point() else tensor for name, tensor in saved["module"].items()}


def export_model(
    config: Any, tokenizer: Any, state_dict: dict[str, torch.Tensor], manifest: ModelManifest, model_uri: str
) -> None:
    """Build the model from its Hugging Face `config`, load the weights, save it locally, then upload it whole."""
    from transformers import AutoModelForSequenceClassification

    model = AutoModelForSequenceClassification.from_config(config)
    model.load_state_dict(state_dict)
    staging = Path(tempfile.mkdtemp(prefix="modelplane-export-"))
    try:
        save_model(staging, model, tokenizer, manifest)
        storage.upload_tree(staging, model_uri)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
