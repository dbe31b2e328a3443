from __future__ import annotations

import copy
import json
from typing import Any

import kubernetes_validate
import pytest

from modelplane.components.gpu_queues import counted_resources
from modelplane.terms.gpu_catalog import gpu_instance_type
from modelplane.workloads.training.kubernetes import (
    DEFAULT_TERMINATION_GRACE_SECONDS,
    MIN_COLLECTIVE_TIMEOUT_SECONDS,
    artifact_uri,
    bucket_prefix,
    checkpoint_write_seconds,
    cluster_training_runtime_manifest,
    node_resources,
    preemption_grace_seconds,
    runtime_grace_seconds,
    s3_access_policy,
    train_job_manifest,
    trainer_arguments,
)
from modelplane.workloads.training.spec import TrainingJobSpec
from modelplane.workloads.training.trainer.outcome import PREEMPTED_EXIT_CODE
from tests.crd_schemas import schema_problems

BUCKET_ARN = "arn:aws:s3:::artifacts"
KEY_ARN = "arn:aws:kms:us-east-1:123456789012:key/k"


def spec(**overrides: object) -> TrainingJobSpec:
    fields: dict[str, object] = {
        "name": "intents",
        "image": "trainer:0.1.0",
        "gpu_pool": "train-h100",
        "nodes": 2,
        "gpus_per_node": 8,
        "base_model": "base-models/minilm",
        "dataset": "datasets/intents/train.jsonl",
        "checkpoint_path": "checkpoints/intents",
    }
    fields.update(overrides)
    return TrainingJobSpec.model_validate(fields)


def manifest(efa: bool = True, namespace: str = "ml", queue_name: str = "gpu", **overrides: object) -> dict:
    return train_job_manifest(
        spec(**overrides),
        namespace=namespace,
        image="123456789012.dkr.ecr.us-east-1.amazonaws.com/p/trainer:0.1.0",
        artifact_root="s3://artifacts",
        instance=gpu_instance_type("p5.48xlarge"),
        efa=efa,
        service_account="intents",
        config_map_name="intents-deepspeed",
        queue_name=queue_name,
    )


def pod_patch(body: dict[str, Any]) -> dict[str, Any]:
    (patch,) = body["spec"]["runtimePatches"]
    (replicated,) = patch["trainingRuntimeSpec"]["template"]["spec"]["replicatedJobs"]
    pod: dict[str, Any] = replicated["template"]["spec"]["template"]
    return pod


def runtime_pod(runtime: dict[str, Any]) -> dict[str, Any]:
    (replicated,) = runtime["spec"]["template"]["spec"]["replicatedJobs"]
    pod: dict[str, Any] = replicated["template"]["spec"]["template"]
    return pod


def test_paths_resolve_against_the_artifact_root() -> None:
    assert artifact_uri("datasets/a.jsonl", "s3://bucket") == "s3://bucket/datasets/a.jsonl"
    assert artifact_uri("s3://other/x", "s3://bucket") == "s3://other/x"
    assert artifact_uri("models/m", "/tmp/local/") == "/tmp/local/models/m"


def test_trainer_arguments_carry_every_uri() -> None:
    arguments = trainer_arguments(spec(max_steps=50), "s3://b", "/etc/modelplane/deepspeed.json", 9400)
    pairs = dict(zip(arguments[::2], arguments[1::2], strict=True))
    assert pairs["--dataset-uri"] == "s3://b/datasets/intents/train.jsonl"
    assert pairs["--checkpoint-uri"] == "s3://b/checkpoints/intents"
    assert pairs["--model-uri"] == "s3://b/models/intents"
    assert pairs["--max-steps"] == "50"


def test_gpu_requests_equal_limits_with_efa_devices() -> None:
    resources = node_resources(spec(), gpu_instance_type("p5.48xlarge"), efa=True)
    assert resources["requests"] == resources["limits"]
    assert resources["limits"]["nvidia.com/gpu"] == "8"
    assert resources["limits"]["vpc.amazonaws.com/efa"] == "32"
    half = node_resources(spec(gpus_per_node=4, nodes=1), gpu_instance_type("p5.48xlarge"), efa=False)
    assert half["limits"]["cpu"] == str((192 - 2) // 2)
    assert "vpc.amazonaws.com/efa" not in half["limits"]


def test_train_job_runs_torchrun_on_the_pool_tolerating_the_gpu_taint() -> None:
    body = manifest()
    trainer = body["spec"]["trainer"]
    assert body["spec"]["runtimeRef"]["name"] == "modelplane-deepspeed"
    assert trainer["command"] == [
        *("python", "-m", "modelplane.workloads.training.trainer.launch"),
        *("--module", "modelplane.workloads.training.trainer"),
    ]
    assert trainer["numNodes"] == 2
    assert trainer["numProcPerNode"] == 8
    assert body["spec"]["activeDeadlineSeconds"] == 24 * 60 * 60
    (patch,) = body["spec"]["runtimePatches"]
    assert patch["manager"] == "modelplane.io/training-job"
    (replicated,) = patch["trainingRuntimeSpec"]["template"]["spec"]["replicatedJobs"]
    assert replicated["name"] == "node"
    pod_template = replicated["template"]["spec"]["template"]
    assert pod_template["metadata"]["labels"]["modelplane.io/training-job"] == "intents"
    pod = pod_template["spec"]
    assert pod["nodeSelector"]["modelplane.io/pool"] == "train-h100"
    toleration = {"key": "nvidia.com/gpu", "operator": "Equal", "value": "true", "effect": "NoSchedule"}
    assert toleration in pod["tolerations"]
    shm = next(v for v in pod["volumes"] if v["name"] == "dshm")
    assert shm["emptyDir"]["medium"] == "Memory"
    mounts = {m["mountPath"] for m in pod["containers"][0]["volumeMounts"]}
    assert {"/dev/shm", "/etc/modelplane", "/tmp"} <= mounts
    env = {e["name"]: e["value"] for e in trainer["env"]}
    assert env["FI_PROVIDER"] == "efa"
    assert env["MODELPLANE_RESTART_BUDGET"] == "3"


def test_no_efa_environment_without_efa() -> None:
    env = {e["name"] for e in manifest(efa=False)["spec"]["trainer"]["env"]}
    assert "FI_PROVIDER" not in env


def test_runtime_asks_for_no_gang_scheduler_and_restarts_as_a_group() -> None:
    runtime = cluster_training_runtime_manifest(max_restarts=5)
    spec_ = runtime["spec"]
    # No coscheduling plugin runs: with a podGroupPolicy Trainer 2.2 never creates the JobSet. Kueue gangs instead.
    assert "podGroupPolicy" not in spec_
    assert spec_["template"]["spec"]["failurePolicy"]["maxRestarts"] == 5
    job = spec_["template"]["spec"]["replicatedJobs"][0]["template"]["spec"]
    assert job["backoffLimit"] == 0
    pod = spec_["template"]["spec"]["replicatedJobs"][0]["template"]["spec"]["template"]["spec"]
    assert pod["securityContext"]["runAsNonRoot"] is True
    container = pod["containers"][0]
    assert container["securityContext"]["capabilities"]["drop"] == ["ALL"]
    assert container["securityContext"]["readOnlyRootFilesystem"] is True
    assert container["securityContext"]["allowPrivilegeEscalation"] is False


def test_a_preempted_group_restarts_without_spending_its_failure_budget() -> None:
    jobset = cluster_training_runtime_manifest()["spec"]["template"]["spec"]
    (rule,) = jobset["failurePolicy"]["rules"]
    assert rule["action"] == "RestartJobSetAndIgnoreMaxRestarts" and rule["onJobFailureReasons"] == ["PodFailurePolicy"]
    job = jobset["replicatedJobs"][0]["template"]["spec"]
    (on_exit,) = job["podFailurePolicy"]["rules"]
    assert on_exit["action"] == "FailJob"
    assert on_exit["onExitCodes"]["values"] == [PREEMPTED_EXIT_CODE]
    assert on_exit["onExitCodes"]["containerName"] == job["template"]["spec"]["containers"][0]["name"]
    assert job["template"]["spec"]["restartPolicy"] == "Never"


def test_access_policy_reads_inputs_and_writes_only_its_own_prefixes() -> None:
    policy = s3_access_policy(BUCKET_ARN, ["datasets/intents", "base-models/minilm"], ["checkpoints/intents"], KEY_ARN)
    statements = {s["Sid"]: s for s in policy["Statement"]}
    assert statements["WriteOutputs"]["Resource"] == ["arn:aws:s3:::artifacts/checkpoints/intents/*"]
    assert "arn:aws:s3:::artifacts/datasets/intents/*" in statements["ReadInputs"]["Resource"]
    assert all(r != "*" and not r.endswith(":::artifacts/*") for s in policy["Statement"] for r in s["Resource"])
    assert statements["UseBucketKey"]["Resource"] == [KEY_ARN]
    json.dumps(policy)


@pytest.mark.parametrize(
    ("path", "prefix"),
    [
        ("datasets/intents/train.jsonl", "datasets/intents"),
        ("checkpoints/intents", "checkpoints/intents"),
        ("models/intents/", "models/intents"),
        ("s3://other-bucket/datasets/x/train.csv", "datasets/x"),
    ],
)
def test_bucket_prefix_of_a_path(path: str, prefix: str) -> None:
    assert bucket_prefix(path) == prefix


def test_config_map_and_service_account_shapes_validate() -> None:
    for body in (
        {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": "intents", "namespace": "ml"}},
        {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "intents-deepspeed"}, "data": {"a": "b"}},
    ):
        kubernetes_validate.validate(body, "1.33.0", strict=True)


def test_train_job_matches_kubeflow_trainers_model() -> None:
    assert schema_problems(manifest()) == []


def test_cluster_training_runtime_matches_kubeflow_trainers_model() -> None:
    assert schema_problems(cluster_training_runtime_manifest()) == []


def test_a_misspelt_field_is_caught() -> None:
    broken = copy.deepcopy(manifest())
    broken["spec"]["trainer"]["numNode"] = 2
    assert schema_problems(broken) == ["unknown field spec.trainer.numNode"]
    removed = copy.deepcopy(manifest())
    removed["spec"]["podTemplateOverrides"] = []
    assert schema_problems(removed) == ["unknown field spec.podTemplateOverrides"]


def test_monitoring_objects_are_checked_against_the_operators_models() -> None:
    pod_monitor: dict[str, Any] = {
        "apiVersion": "monitoring.coreos.com/v1",
        "kind": "PodMonitor",
        "metadata": {"name": "intents-trainer", "namespace": "ml"},
        "spec": {"selector": {"matchLabels": {"a": "b"}}, "podMetricsEndpoints": [{"port": "metrics"}]},
    }
    assert schema_problems(pod_monitor) == []
    pod_monitor["spec"]["podMetricEndpoints"] = pod_monitor["spec"].pop("podMetricsEndpoints")
    assert schema_problems(pod_monitor) == ["unknown field spec.podMetricEndpoints"]


def test_train_job_waits_in_its_teams_queue_at_its_priority() -> None:
    labels = manifest(namespace="research", queue_name="gpu", priority="high")["metadata"]["labels"]
    assert labels["kueue.x-k8s.io/queue-name"] == "gpu"
    assert labels["kueue.x-k8s.io/priority-class"] == "modelplane-training-high"
    assert labels["modelplane.io/training-job"] == "intents"
    assert manifest(namespace="research")["metadata"]["namespace"] == "research"
    assert manifest(queue_name="batch")["metadata"]["labels"]["kueue.x-k8s.io/queue-name"] == "batch"


@pytest.mark.parametrize(
    ("priority", "workload_class"),
    [("low", "modelplane-training-low"), ("normal", "modelplane-training"), ("high", "modelplane-training-high")],
)
def test_each_priority_names_its_workload_priority_class(priority: str, workload_class: str) -> None:
    assert manifest(priority=priority)["metadata"]["labels"]["kueue.x-k8s.io/priority-class"] == workload_class


def test_default_priority_is_normal() -> None:
    assert spec().priority == "normal"
    assert manifest()["metadata"]["labels"]["kueue.x-k8s.io/priority-class"] == "modelplane-training"


def test_training_pods_are_never_disrupted_by_karpenter_and_rank_below_serving() -> None:
    pod = runtime_pod(cluster_training_runtime_manifest())
    assert pod["metadata"]["annotations"] == {"karpenter.sh/do-not-disrupt": "true"}
    assert pod["spec"]["priorityClassName"] == "modelplane-training"


def test_the_job_patch_sets_no_priority_class_trainer_would_drop() -> None:
    # Trainer 2.2.1's PodSpecPatch has no priorityClassName: the job's own priority is Kueue's label.
    assert "priorityClassName" not in pod_patch(manifest())["spec"]
    broken = copy.deepcopy(manifest())
    pod_patch(broken)["spec"]["priorityClassName"] = "modelplane-training-high"
    assert schema_problems(broken) == [
        "unknown field spec.runtimePatches[0].trainingRuntimeSpec.template.spec.replicatedJobs[0]"
        ".template.spec.template.spec.priorityClassName"
    ]


@pytest.mark.parametrize("priority", ["low", "normal", "high"])
def test_train_job_with_queue_labels_matches_kubeflow_trainers_model(priority: str) -> None:
    assert schema_problems(manifest(namespace="research", priority=priority)) == []


def test_kueue_counts_only_the_jobs_gpus() -> None:
    requested = node_resources(spec(), gpu_instance_type("p5.48xlarge"), efa=True)["requests"]
    assert counted_resources(list(requested)) == ["nvidia.com/gpu"]


def test_a_dataset_under_the_lustre_prefix_is_read_from_the_file_system() -> None:
    from modelplane.workloads.training.kubernetes import DatasetVolume, dataset_location, pod_volumes, volume_mounts

    volume = DatasetVolume(claim_name="datasets", bucket_prefix="datasets/")
    inside = spec(dataset="datasets/news/train.jsonl")
    outside = spec(dataset="other/train.jsonl")
    assert dataset_location(inside, "s3://bucket", volume) == "/fsx/datasets/news/train.jsonl"
    assert dataset_location(outside, "s3://bucket", volume) == "s3://bucket/other/train.jsonl"
    assert dataset_location(inside, "s3://bucket", None) == "s3://bucket/datasets/news/train.jsonl"
    claim = {"name": "datasets", "persistentVolumeClaim": {"claimName": "datasets", "readOnly": True}}
    assert claim in pod_volumes("cfg", 8, volume)
    assert claim not in pod_volumes("cfg", 8)
    assert {"name": "datasets", "mountPath": "/fsx", "readOnly": True} in volume_mounts(volume)


def test_the_trainer_gets_the_collective_timeout_sized_from_the_model_or_the_jobs_own() -> None:
    def timeout(**overrides: object) -> int:
        arguments = trainer_arguments(spec(**overrides), "s3://b", "/etc/ds.json", 9400)
        return int(arguments[arguments.index("--collective-timeout-seconds") + 1])

    assert timeout(base_model_parameters=22_700_000) == MIN_COLLECTIVE_TIMEOUT_SECONDS
    seven_billion = timeout(base_model_parameters=7_000_000_000)
    assert seven_billion >= 2 * checkpoint_write_seconds(spec(base_model_parameters=7_000_000_000))
    assert timeout(collective_timeout_seconds=45) == 45


def test_a_preempted_pod_has_time_for_its_step_and_checkpoint() -> None:
    small, large = spec(base_model_parameters=22_700_000), spec(base_model_parameters=1_300_000_000)
    assert checkpoint_write_seconds(large) > checkpoint_write_seconds(small)
    for job in (small, large):
        grace = preemption_grace_seconds(job)
        assert grace > checkpoint_write_seconds(job)
        body = train_job_manifest(
            job,
            namespace="ml",
            image="trainer:0.1.0",
            artifact_root="s3://artifacts",
            instance=gpu_instance_type("p5.48xlarge"),
            efa=False,
            service_account="intents",
            config_map_name="intents-deepspeed",
            queue_name="gpu",
        )
        env = {e["name"]: e["value"] for e in body["spec"]["trainer"]["env"]}
        # torchrun waits this long for its workers after SIGTERM: the step and the checkpoint, inside the grace.
        shutdown = int(env["TORCH_ELASTIC_SHUTDOWN_TIMEOUT"])
        assert checkpoint_write_seconds(job) < shutdown < grace
    # The runtime is shared: its grace period covers the most demanding job.
    grace = runtime_grace_seconds([small, large])
    assert grace == preemption_grace_seconds(large)
    runtime = cluster_training_runtime_manifest(termination_grace_seconds=grace)
    assert runtime_pod(runtime)["spec"]["terminationGracePeriodSeconds"] == grace
    assert schema_problems(runtime) == []
    assert runtime_grace_seconds([]) == DEFAULT_TERMINATION_GRACE_SECONDS
