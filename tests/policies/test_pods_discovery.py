"""Pod specs are found wherever they live: built-in kinds and their patches, CRDs known or not, TrainJob patches."""

from __future__ import annotations

from typing import Any

import pytest

from modelplane.policies.rules.pod_specs import PodTemplate, pod_templates, resource_kind
from modelplane.policies.rules.props import UNKNOWN

CONTAINER = {"name": "main", "image": "repo/image:1.0.0"}


def pod(**fields: Any) -> dict[str, Any]:
    return {"containers": [dict(CONTAINER)], **fields}


def wheres(resource_type: str, props: dict[str, Any]) -> list[str]:
    return [template.where for template in pod_templates(resource_type, props)]


def only(resource_type: str, props: dict[str, Any]) -> PodTemplate:
    (template,) = pod_templates(resource_type, props)
    return template


@pytest.mark.parametrize(
    ("resource_type", "props", "where"),
    [
        ("kubernetes:core/v1:Pod", {"spec": pod()}, "spec"),
        ("kubernetes:core/v1:PodTemplate", {"template": {"spec": pod()}}, "template.spec"),
        ("kubernetes:core/v1:ReplicationController", {"spec": {"template": {"spec": pod()}}}, "spec.template.spec"),
        ("kubernetes:apps/v1:Deployment", {"spec": {"template": {"spec": pod()}}}, "spec.template.spec"),
        ("kubernetes:apps/v1:StatefulSet", {"spec": {"template": {"spec": pod()}}}, "spec.template.spec"),
        ("kubernetes:apps/v1:ReplicaSet", {"spec": {"template": {"spec": pod()}}}, "spec.template.spec"),
        ("kubernetes:apps/v1:DaemonSet", {"spec": {"template": {"spec": pod()}}}, "spec.template.spec"),
        ("kubernetes:batch/v1:Job", {"spec": {"template": {"spec": pod()}}}, "spec.template.spec"),
        (
            "kubernetes:batch/v1:CronJob",
            {"spec": {"jobTemplate": {"spec": {"template": {"spec": pod()}}}}},
            "spec.jobTemplate.spec.template.spec",
        ),
        ("kubernetes:extensions/v1beta1:Deployment", {"spec": {"template": {"spec": pod()}}}, "spec.template.spec"),
    ],
)
def test_every_built_in_workload_kind_has_its_pod_found(resource_type: str, props: dict[str, Any], where: str) -> None:
    template = only(resource_type, props)
    assert template.where == where
    assert [c.where for c in template.containers] == [f"{where}.containers[main]"]
    assert not template.partial


@pytest.mark.parametrize(
    "resource_type",
    [
        "kubernetes:apps/v1:DeploymentPatch",
        "kubernetes:apps/v1:StatefulSetPatch",
        "kubernetes:apps/v1:DaemonSetPatch",
        "kubernetes:apps/v1:ReplicaSetPatch",
        "kubernetes:batch/v1:JobPatch",
    ],
)
def test_patches_are_read_as_partial_pods_even_without_containers(resource_type: str) -> None:
    template = only(resource_type, {"spec": {"template": {"spec": {"hostNetwork": True}}}})
    assert template.partial and template.spec == {"hostNetwork": True}
    assert pod_templates(resource_type, {"metadata": {"name": "x"}}) == []


def test_pod_patch_containers_are_partial() -> None:
    template = only("kubernetes:core/v1:PodPatch", {"spec": pod()})
    assert [c.partial for c in template.containers] == [True]


def test_type_tokens_name_group_version_kind_and_patch() -> None:
    kind = resource_kind("kubernetes:kubeflow.org/v2beta1:MPIJobPatch")
    assert kind is not None and (kind.group, kind.version, kind.kind, kind.patch) == (
        "kubeflow.org",
        "v2beta1",
        "MPIJob",
        True,
    )
    assert resource_kind("aws:s3/bucket:Bucket") is None


@pytest.mark.parametrize(
    ("resource_type", "spec", "expected"),
    [
        (
            "kubernetes:kubeflow.org/v2beta1:MPIJob",
            {"mpiReplicaSpecs": {"Launcher": {"template": {"spec": pod()}}, "Worker": {"template": {"spec": pod()}}}},
            ["spec.mpiReplicaSpecs.Launcher.template.spec", "spec.mpiReplicaSpecs.Worker.template.spec"],
        ),
        (
            "kubernetes:kubeflow.org/v1:PyTorchJob",
            {"pytorchReplicaSpecs": {"Master": {"template": {"spec": pod()}}}},
            ["spec.pytorchReplicaSpecs.Master.template.spec"],
        ),
        (
            "kubernetes:kubeflow.org/v2alpha9:PyTorchJob",
            {"pytorchReplicaSpecs": {"Worker": {"template": {"spec": pod()}}}},
            ["spec.pytorchReplicaSpecs.Worker.template.spec"],
        ),
        (
            "kubernetes:ray.io/v1:RayCluster",
            {
                "headGroupSpec": {"template": {"spec": pod()}},
                "workerGroupSpecs": [{"groupName": "gpu", "template": {"spec": pod()}}],
            },
            ["spec.headGroupSpec.template.spec", "spec.workerGroupSpecs[gpu].template.spec"],
        ),
        (
            "kubernetes:ray.io/v1:RayJob",
            {
                "entrypoint": "python train.py",
                "rayClusterSpec": {"headGroupSpec": {"template": {"spec": pod()}}},
                "submitterPodTemplate": {"spec": pod()},
            },
            ["spec.rayClusterSpec.headGroupSpec.template.spec", "spec.submitterPodTemplate.spec"],
        ),
        (
            "kubernetes:jobset.x-k8s.io/v1alpha2:JobSet",
            {"replicatedJobs": [{"name": "workers", "template": {"spec": {"template": {"spec": pod()}}}}]},
            ["spec.replicatedJobs[workers].template.spec.template.spec"],
        ),
        (
            "kubernetes:example.com/v1:SomethingNobodyKnows",
            {"deep": [{"runner": pod()}]},
            ["spec.deep[0].runner"],
        ),
        ("kubernetes:serving.kserve.io/v1alpha1:ClusterServingRuntime", pod(supportedModelFormats=[]), ["spec"]),
    ],
)
def test_custom_resources_embedding_pods_have_them_found(
    resource_type: str, spec: dict[str, Any], expected: list[str]
) -> None:
    assert wheres(resource_type, {"spec": spec}) == expected


def test_mappings_that_are_not_pod_specs_are_not_taken_for_one() -> None:
    assert wheres("kubernetes:example.com/v1:Thing", {"spec": {"containers": ["a", "b"]}}) == []
    assert wheres("kubernetes:core/v1:ConfigMap", {"data": {"containers": "[]"}}) == []
    assert wheres("kubernetes:helm.sh/v3:Release", {"spec": pod()}) == []


def test_prometheus_operator_container_overrides_are_patches() -> None:
    spec = {"containers": [{"name": "prometheus", "resources": {"limits": {"memory": "4Gi"}}}]}
    template = only("kubernetes:monitoring.coreos.com/v1:Prometheus", {"spec": spec})
    assert template.partial and [c.partial for c in template.containers] == [True]


def test_a_pod_whose_containers_are_not_yet_known_is_still_a_pod() -> None:
    template = only("kubernetes:example.com/v1:Thing", {"spec": {"containers": UNKNOWN, "hostPID": True}})
    assert template.spec["hostPID"] is True and template.containers == []


def test_kserve_components_are_pods_and_their_model_is_a_container_taking_its_image_from_the_runtime() -> None:
    spec = {
        "predictor": {
            "hostNetwork": True,
            "model": {"modelFormat": {"name": "sklearn"}, "securityContext": {"privileged": True}},
        },
        "transformer": pod(),
    }
    templates = pod_templates("kubernetes:serving.kserve.io/v1beta1:InferenceService", {"spec": spec})
    assert [t.where for t in templates] == ["spec.predictor", "spec.transformer"]
    (model,) = templates[0].containers
    assert model.where == "spec.predictor.model" and model.partial and "image" in model.inherited
    assert templates[0].spec["hostNetwork"] is True


def test_argo_templates_run_pods_with_the_workflows_pod_fields() -> None:
    spec = {
        "hostNetwork": True,
        "volumes": [{"name": "a", "emptyDir": {}}],
        "templates": [
            {"name": "steps", "steps": []},
            {"name": "train", "container": dict(CONTAINER), "volumes": [{"name": "b", "emptyDir": {}}]},
            {"name": "script", "script": {**CONTAINER, "source": "print(1)"}, "podSpecPatch": "{}"},
        ],
    }
    templates = pod_templates("kubernetes:argoproj.io/v1alpha1:Workflow", {"spec": spec})
    assert [t.where for t in templates] == ["spec.templates[train]", "spec.templates[script]"]
    assert templates[0].containers[0].where == "spec.templates[train].container"
    assert templates[0].spec["hostNetwork"] is True
    assert [v["name"] for v in templates[0].spec["volumes"]] == ["a", "b"]
    assert templates[1].unreadable and not templates[0].unreadable
    cron = pod_templates("kubernetes:argoproj.io/v1alpha1:CronWorkflow", {"spec": {"workflowSpec": spec}})
    assert cron[0].where == "spec.workflowSpec.templates[train]"


def train_job_with_patch(pod_patch: dict[str, Any]) -> dict[str, Any]:
    job = {"name": "node", "template": {"spec": {"template": {"spec": pod_patch}}}}
    patch = {"manager": "someone", "trainingRuntimeSpec": {"template": {"spec": {"replicatedJobs": [job]}}}}
    return {"spec": {"trainer": {"image": "repo/trainer:1.0.0"}, "runtimePatches": [patch]}}


def test_train_job_runtime_patches_are_pods_of_their_own_besides_the_trainer() -> None:
    props = train_job_with_patch({"hostIPC": True, "containers": [{"name": "node", "securityContext": {}}]})
    trainer, patch = pod_templates("kubernetes:trainer.kubeflow.org/v1alpha1:TrainJob", props)
    assert trainer.where == "spec.trainer" and not trainer.partial
    assert patch.where == (
        "spec.runtimePatches[someone].trainingRuntimeSpec.template.spec.replicatedJobs[node].template.spec.template.spec"
    )
    assert patch.partial and patch.spec["hostIPC"] is True
    assert [c.partial for c in patch.containers] == [True]


def test_daemon_sets_and_their_patches_are_node_agents() -> None:
    props = {"spec": {"template": {"spec": pod()}}}
    assert only("kubernetes:apps/v1:DaemonSet", props).node_agent
    assert only("kubernetes:apps/v1:DaemonSetPatch", props).node_agent
    assert not only("kubernetes:apps/v1:Deployment", props).node_agent
