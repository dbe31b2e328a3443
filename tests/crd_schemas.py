"""Custom objects checked against their project's own published models (Kubeflow Trainer's `kubeflow-trainer-api`).

The generated models accept unknown fields silently, so an object is valid only when it parses and every
field it sets survives the round trip: a misspelt or removed field fails instead of vanishing.
"""

from __future__ import annotations

from typing import Any

from kubeflow_trainer_api import models

TRAINER_MODELS: dict[str, Any] = {
    "TrainJob": models.TrainerV1alpha1TrainJob,
    "ClusterTrainingRuntime": models.TrainerV1alpha1ClusterTrainingRuntime,
    "TrainingRuntime": models.TrainerV1alpha1TrainingRuntime,
}


def _lost_fields(sent: Any, kept: Any, path: str) -> list[str]:
    if isinstance(sent, dict):
        if not isinstance(kept, dict):
            return [path or "."]
        lost: list[str] = []
        for key, value in sent.items():
            where = f"{path}.{key}" if path else key
            lost += [where] if key not in kept else _lost_fields(value, kept[key], where)
        return lost
    if isinstance(sent, list) and isinstance(kept, list):
        return [lost for index, item in enumerate(sent) for lost in _lost_fields(item, kept[index], f"{path}[{index}]")]
    return []


def schema_problems(manifest: dict[str, Any]) -> list[str]:
    """Why `manifest` is not a valid object of its kind's published model; [] when it is."""
    model = TRAINER_MODELS.get(manifest.get("kind", ""))
    if model is None:
        return [f"no published model for kind {manifest.get('kind')!r}"]
    try:
        parsed = model.from_dict(manifest)
    except ValueError as invalid:
        return [str(invalid)]
    return [f"unknown field {field}" for field in _lost_fields(manifest, parsed.to_dict(), "")]
