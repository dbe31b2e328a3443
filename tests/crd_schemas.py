"""Custom objects checked against models generated from their projects' CRDs: Kubeflow Trainer's own
`kubeflow-trainer-api`, and `cloudcoil-models-prometheus-operator` for the Prometheus operator's kinds.

The generated models accept unknown fields silently, so an object is valid only when it parses and every
field it sets survives the round trip: a misspelt or removed field fails instead of vanishing.
"""

from __future__ import annotations

from typing import Any

from cloudcoil.models.prometheus_operator import v1 as monitoring
from kubeflow_trainer_api import models

TRAINER_MODELS: dict[str, Any] = {
    "TrainJob": models.TrainerV1alpha1TrainJob,
    "ClusterTrainingRuntime": models.TrainerV1alpha1ClusterTrainingRuntime,
    "TrainingRuntime": models.TrainerV1alpha1TrainingRuntime,
}


MONITORING_MODELS: dict[str, Any] = {
    "PrometheusRule": monitoring.PrometheusRule,
    "ServiceMonitor": monitoring.ServiceMonitor,
    "PodMonitor": monitoring.PodMonitor,
}
CUSTOM_KINDS = frozenset(TRAINER_MODELS) | frozenset(MONITORING_MODELS)


def _round_trip(manifest: dict[str, Any]) -> dict[str, Any]:
    kind = manifest["kind"]
    if kind in TRAINER_MODELS:
        return dict(TRAINER_MODELS[kind].from_dict(manifest).to_dict())
    return dict(MONITORING_MODELS[kind].model_validate(manifest).model_dump(by_alias=True, exclude_none=True))


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
    if manifest.get("kind") not in CUSTOM_KINDS:
        return [f"no published model for kind {manifest.get('kind')!r}"]
    try:
        kept = _round_trip(manifest)
    except ValueError as invalid:
        return [str(invalid)]
    return [f"unknown field {field}" for field in _lost_fields(manifest, kept, "")]
