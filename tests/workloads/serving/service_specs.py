"""The inference service the serving tests render: one API on an L40S pool, 3 to 6 replicas."""

from __future__ import annotations

from typing import Any

from modelplane.workloads.serving.spec import InferenceServiceSpec


def intents_api(**overrides: Any) -> InferenceServiceSpec:
    """The intents API's spec, with `overrides` replacing whole top-level fields."""
    fields: dict[str, Any] = {
        "name": "intents-api",
        "image": "server:0.1.0",
        "model": "models/intents",
        "model_name": "intents",
        "gpu_pool": "infer-l40s",
        "replicas": {"min": 3, "max": 6},
    }
    fields.update(overrides)
    return InferenceServiceSpec.model_validate(fields)
