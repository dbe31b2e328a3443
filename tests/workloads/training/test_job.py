from __future__ import annotations

import json
from typing import Any

import pytest

from modelplane.plan.manifests import manifest_of
from modelplane.workloads.training.job import TrainingJob, TrainingJobArgs, image_reference
from modelplane.workloads.training.spec import TrainingJobSpec
from tests.crd_schemas import schema_problems
from tests.resources import assert_rejected_before_children, dig

SPEC = TrainingJobSpec.model_validate(
    {
        "name": "sentiment",
        "image": "trainer:0.1.0",
        "gpu_pool": "gpu-small",
        "base_model": "base-models/minilm",
        "dataset": "datasets/news/train.jsonl",
        "checkpoint_path": "checkpoints/sentiment",
        "deepspeed": {"preset": "zero2-bf16", "micro_batch_size": 16},
        "restart_budget": 2,
    }
)


def job(instance_type: str = "g6.xlarge", spec: TrainingJobSpec = SPEC, **extra: Any) -> TrainingJob:
    args: TrainingJobArgs = {
        "spec": spec.model_dump(mode="json"),
        "cluster_name": "modelplane-dev",
        "image_repository_url": "123456789012.dkr.ecr.us-east-1.amazonaws.com/modelplane-dev/trainer",
        "artifact_bucket": "artifacts-abc",
        "artifact_bucket_arn": "arn:aws:s3:::artifacts-abc",
        "artifact_kms_key_arn": "arn:aws:kms:us-east-1:123456789012:key/k",
        "instance_type": instance_type,
    }
    args.update(extra)  # type: ignore[typeddict-item]
    return TrainingJob("train-sentiment", args)


def test_image_reference_appends_tag_or_digest() -> None:
    assert image_reference("r.example/p/trainer", "trainer:1.0") == "r.example/p/trainer:1.0"
    digest = "sha256:" + "b" * 64
    assert image_reference("r.example/p/trainer", f"trainer@{digest}") == f"r.example/p/trainer@{digest}"


def test_children_are_parented_and_named_after_the_component(run_program) -> None:
    registered = run_program(job)
    component = registered.one("modelplane:workloads:TrainingJob", "train-sentiment")
    children = registered.children_of(component)
    assert {c.name for c in children} == {
        "train-sentiment-role",
        "train-sentiment-artifacts",
        "train-sentiment-service-account",
        "train-sentiment-identity",
        "train-sentiment-deepspeed",
        "train-sentiment-trainjob",
        "train-sentiment-metrics",
        "train-sentiment-alerts",
    }


def test_trainjob_uses_the_platform_image_and_bucket(run_program) -> None:
    registered = run_program(job)
    trainjob = registered.one("kubernetes:trainer.kubeflow.org/v1alpha1:TrainJob")
    trainer = trainjob.inputs["spec"]["trainer"]
    assert trainer["image"] == "123456789012.dkr.ecr.us-east-1.amazonaws.com/modelplane-dev/trainer:0.1.0"
    assert "s3://artifacts-abc/datasets/news/train.jsonl" in trainer["args"]
    assert dig(trainer, "resourcesPerNode", "limits", "nvidia.com/gpu") == "1"
    dependencies = set(trainjob.dependencies)
    for role in ("service-account", "identity", "deepspeed"):
        assert registered.named(f"train-sentiment-{role}").urn in dependencies


def test_deepspeed_config_map_holds_the_rendered_config(run_program) -> None:
    registered = run_program(job)
    config_map = registered.one("kubernetes:core/v1:ConfigMap", "train-sentiment-deepspeed")
    config = json.loads(config_map.inputs["data"]["deepspeed.json"])
    assert config["train_batch_size"] == 16
    assert config["zero_optimization"]["stage"] == 2


def test_pod_identity_is_scoped_to_the_job_prefixes(run_program) -> None:
    registered = run_program(job)
    identity = registered.one("aws:eks/podIdentityAssociation:PodIdentityAssociation")
    assert (identity.inputs["namespace"], identity.inputs["serviceAccount"]) == ("ml", "sentiment")
    policy = json.loads(registered.one("aws:iam/rolePolicy:RolePolicy").inputs["policy"])
    writes = next(s for s in policy["Statement"] if s["Sid"] == "WriteOutputs")["Resource"]
    assert writes == [
        "arn:aws:s3:::artifacts-abc/checkpoints/sentiment/*",
        "arn:aws:s3:::artifacts-abc/models/sentiment/*",
    ]


def test_alerts_follow_the_spec(run_program) -> None:
    registered = run_program(job)
    rule = registered.one("kubernetes:monitoring.coreos.com/v1:PrometheusRule")
    alerts = {r["alert"]: r for g in rule.inputs["spec"]["groups"] for r in g["rules"] if "alert" in r}
    assert {"TrainingStalled", "TrainingLossNotFinite", "TrainingCheckpointStale", "TrainingRestartingTooOften"} <= set(
        alerts
    )
    assert "> 2" in alerts["TrainingRestartingTooOften"]["expr"]
    assert 'job_name="sentiment"' in alerts["TrainingStalled"]["expr"]
    monitor = registered.one("kubernetes:monitoring.coreos.com/v1:PodMonitor")
    assert monitor.inputs["spec"]["selector"]["matchLabels"] == {"jobset.sigs.k8s.io/jobset-name": "sentiment"}


def test_more_gpus_than_the_instance_has_is_refused_before_any_resource(run_program) -> None:
    four = SPEC.model_copy(update={"gpus_per_node": 4})
    with pytest.raises(ValueError, match=r"spec.gpus_per_node=4: g6.xlarge has 1 GPUs"):
        run_program(lambda: job(spec=four))


TRAINJOB = "kubernetes:trainer.kubeflow.org/v1alpha1:TrainJob"


def test_trainjob_waits_in_the_default_local_queue_at_normal_priority(run_program) -> None:
    labels = run_program(job).one(TRAINJOB).inputs["metadata"]["labels"]
    assert labels["kueue.x-k8s.io/queue-name"] == "gpu"
    assert labels["kueue.x-k8s.io/priority-class"] == "modelplane-training"


def test_trainjob_waits_in_the_teams_namespace_and_named_queue_at_its_priority(run_program) -> None:
    high = TrainingJobSpec.model_validate({**SPEC.model_dump(mode="json"), "priority": "high", "team": "research"})
    registered = run_program(lambda: job(spec=high, namespace="research", queue_name="research-gpu"))
    trainjob = registered.one(TRAINJOB)
    assert trainjob.inputs["metadata"]["namespace"] == "research"
    assert trainjob.inputs["metadata"]["labels"]["kueue.x-k8s.io/queue-name"] == "research-gpu"
    assert trainjob.inputs["metadata"]["labels"]["kueue.x-k8s.io/priority-class"] == "modelplane-training-high"
    assert registered.one("kubernetes:core/v1:ConfigMap").inputs["metadata"]["namespace"] == "research"
    assert schema_problems(manifest_of(trainjob)) == []


def test_a_queue_name_that_is_not_a_kubernetes_name_is_refused_before_any_resource(run_program) -> None:
    assert_rejected_before_children(
        run_program,
        lambda: job(queue_name="GPU Queue"),
        r"^queue_name='GPU Queue': must be a Kubernetes name",
        ["modelplane:workloads:TrainingJob"],
    )
