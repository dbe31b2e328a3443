from __future__ import annotations

import copy
from typing import Any

from components.gpu_catalog import gpu_instance_type
from tests.crd_schemas import schema_problems
from workloads.training.kubernetes import cluster_training_runtime_manifest, train_job_manifest
from workloads.training.spec import TrainingJobSpec

SPEC = TrainingJobSpec.model_validate(
    {
        "name": "intents",
        "image": "trainer:0.1.0",
        "gpu_pool": "train-h100",
        "nodes": 2,
        "gpus_per_node": 8,
        "base_model": "base-models/minilm",
        "dataset": "datasets/intents/train.jsonl",
        "checkpoint_path": "checkpoints/intents",
    }
)


def train_job() -> dict:
    return train_job_manifest(
        SPEC,
        namespace="ml",
        image="123456789012.dkr.ecr.us-east-1.amazonaws.com/p/trainer:0.1.0",
        artifact_root="s3://artifacts",
        instance=gpu_instance_type("p5.48xlarge"),
        efa=True,
        service_account="intents",
        config_map_name="intents-deepspeed",
    )


def test_train_job_matches_kubeflow_trainers_model() -> None:
    assert schema_problems(train_job()) == []


def test_cluster_training_runtime_matches_kubeflow_trainers_model() -> None:
    assert schema_problems(cluster_training_runtime_manifest()) == []


def test_a_misspelt_field_is_caught() -> None:
    broken = copy.deepcopy(train_job())
    broken["spec"]["trainer"]["numNode"] = 2
    assert schema_problems(broken) == ["unknown field spec.trainer.numNode"]
    removed = copy.deepcopy(train_job())
    removed["spec"]["podTemplateOverrides"] = []
    assert schema_problems(removed) == ["unknown field spec.podTemplateOverrides"]


def test_monitoring_objects_are_checked_against_the_operators_models() -> None:
    from tests.crd_schemas import schema_problems as problems

    pod_monitor: dict[str, Any] = {
        "apiVersion": "monitoring.coreos.com/v1",
        "kind": "PodMonitor",
        "metadata": {"name": "intents-trainer", "namespace": "ml"},
        "spec": {"selector": {"matchLabels": {"a": "b"}}, "podMetricsEndpoints": [{"port": "metrics"}]},
    }
    assert problems(pod_monitor) == []
    pod_monitor["spec"]["podMetricEndpoints"] = pod_monitor["spec"].pop("podMetricsEndpoints")
    assert problems(pod_monitor) == ["unknown field spec.podMetricEndpoints"]
