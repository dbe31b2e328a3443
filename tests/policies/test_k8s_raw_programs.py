"""Raw `pulumi_kubernetes` programs, planned under the plan's mocks and checked by the pack's rules: what a platform
engineer writes by hand (patches, CRDs, raw TrainJobs, Ingresses, Helm charts) trips the rules when unsafe, and the
safe forms (limits-only GPUs, the Load Balancer Controller's internal default) pass.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict
from typing import Any

import pulumi_kubernetes as k8s
import pytest

from modelplane.plan.policy_check import Report
from modelplane.policies.deployability.cluster_model import container_requests
from modelplane.policies.rules import alerting, exposure, pod_security, workloads
from modelplane.policies.rules.rule import Rule
from tests.conftest import ProgramRunner
from tests.policies.harness import violations

REGISTRY = "123456789012.dkr.ecr.us-east-1.amazonaws.com/"
CONFIG = {"allowedRegistries": [REGISTRY]}
IMAGE = f"{REGISTRY}modelplane-test/trainer:1.0.0"
RESTRICTED = {
    "runAsNonRoot": True,
    "allowPrivilegeEscalation": False,
    "readOnlyRootFilesystem": True,
    "capabilities": {"drop": ["ALL"]},
    "seccompProfile": {"type": "RuntimeDefault"},
}
GPU_TOLERATION = {"key": "nvidia.com/gpu", "operator": "Equal", "value": "true", "effect": "NoSchedule"}
POD_RULES: list[Rule] = [*workloads.RULES, *pod_security.RULES]


def reports(run_program: ProgramRunner, program: Callable[[], Any], rule: Rule) -> list[Report]:
    resources = [asdict(r) for r in run_program(program)]
    return violations(rule, resources, CONFIG)


def fired(run_program: ProgramRunner, program: Callable[[], Any], rules: list[Rule]) -> set[str]:
    """The rules that report a violation (not advice) on what `program` registers."""
    resources = [asdict(r) for r in run_program(program)]
    return {rule.name for rule in rules if any(not r.advice for r in violations(rule, resources, CONFIG))}


def container(security: dict[str, Any] | None = None, **fields: Any) -> dict[str, Any]:
    quantities = {"cpu": "2", "memory": "8Gi"}
    return {
        "name": "main",
        "image": IMAGE,
        "resources": {"requests": dict(quantities), "limits": dict(quantities)},
        "security_context": {**RESTRICTED, **(security or {})},
        **fields,
    }


def pod(*containers: dict[str, Any], **fields: Any) -> dict[str, Any]:
    return {"containers": list(containers) or [container()], **fields}


def test_deployment_patch_setting_privileged_is_caught_and_an_image_bump_is_not(run_program: ProgramRunner) -> None:
    def bad() -> None:
        k8s.apps.v1.DeploymentPatch(
            "coredns-debug",
            metadata={"name": "coredns", "namespace": "kube-system"},
            spec={
                "template": {
                    "spec": {
                        "host_network": True,
                        "containers": [
                            {
                                "name": "coredns",
                                "security_context": {"privileged": True, "capabilities": {"add": ["SYS_ADMIN"]}},
                            }
                        ],
                    }
                }
            },
        )

    def good() -> None:
        k8s.apps.v1.DeploymentPatch(
            "coredns-bump",
            metadata={"name": "coredns", "namespace": "kube-system"},
            spec={"template": {"spec": {"containers": [{"name": "coredns", "image": f"{REGISTRY}coredns:1.11.3"}]}}},
        )

    assert fired(run_program, bad, POD_RULES) == {
        workloads.DISALLOW_PRIVILEGED.name,
        pod_security.RESTRICT_CAPABILITIES.name,
        pod_security.DISALLOW_HOST_NAMESPACES.name,
    }
    assert fired(run_program, good, POD_RULES) == set()


@pytest.mark.parametrize("patch_type", [k8s.core.v1.PodPatch, k8s.batch.v1.JobPatch, k8s.apps.v1.DaemonSetPatch])
def test_other_patch_types_are_read_too(run_program: ProgramRunner, patch_type: Any) -> None:
    privileged = [{"name": "main", "security_context": {"privileged": True}}]
    spec = (
        {"containers": privileged}
        if patch_type is k8s.core.v1.PodPatch
        else {"template": {"spec": {"containers": privileged}}}
    )
    assert fired(run_program, lambda: patch_type("patch", metadata={"name": "x"}, spec=spec), POD_RULES) == {
        workloads.DISALLOW_PRIVILEGED.name
    }


def custom(api_version: str, kind: str, spec: dict[str, Any]) -> Callable[[], None]:
    def program() -> None:
        k8s.apiextensions.CustomResource(
            kind.lower(), api_version=api_version, kind=kind, metadata={"name": kind.lower()}, spec=spec
        )

    return program


def camel(container_spec: dict[str, Any]) -> dict[str, Any]:
    """CustomResource specs go to the engine as written: Kubernetes' own camelCase."""
    return {("securityContext" if key == "security_context" else key): value for key, value in container_spec.items()}


def mpi_job(launcher: dict[str, Any]) -> Callable[[], None]:
    worker = {"replicas": 2, "template": {"spec": pod(camel(container()))}}
    spec = {"mpiReplicaSpecs": {"Launcher": {"template": {"spec": pod(launcher)}}, "Worker": worker}}
    return custom("kubeflow.org/v2beta1", "MPIJob", {**spec, "runPolicy": {"activeDeadlineSeconds": 3600}})


def ray_job(worker_pod: dict[str, Any]) -> Callable[[], None]:
    cluster = {
        "headGroupSpec": {"template": {"spec": pod(camel(container()))}},
        "workerGroupSpecs": [{"groupName": "gpu", "replicas": 1, "template": {"spec": worker_pod}}],
    }
    return custom(
        "ray.io/v1",
        "RayJob",
        {
            "entrypoint": "python train.py --checkpoint-uri s3://b/c",
            "activeDeadlineSeconds": 3600,
            "rayClusterSpec": cluster,
        },
    )


def job_set(volumes: list[dict[str, Any]]) -> Callable[[], None]:
    job = {"name": "workers", "template": {"spec": {"template": {"spec": pod(camel(container()), volumes=volumes)}}}}
    return custom("jobset.x-k8s.io/v1alpha2", "JobSet", {"replicatedJobs": [job]})


def inference_service(model_security: dict[str, Any]) -> Callable[[], None]:
    model = {"modelFormat": {"name": "sklearn"}, "storageUri": "s3://b/m", "securityContext": model_security}
    return custom("serving.kserve.io/v1beta1", "InferenceService", {"predictor": {"model": model}})


@pytest.mark.parametrize(
    ("bad", "good", "expected"),
    [
        (
            mpi_job(camel(container({"privileged": True, "capabilities": {"add": ["SYS_ADMIN"], "drop": ["ALL"]}}))),
            mpi_job(camel(container())),
            {workloads.DISALLOW_PRIVILEGED.name, pod_security.RESTRICT_CAPABILITIES.name},
        ),
        (
            ray_job(pod(camel(container()), hostNetwork=True)),
            ray_job(pod(camel(container()))),
            {pod_security.DISALLOW_HOST_NAMESPACES.name},
        ),
        (
            job_set([{"name": "docker", "hostPath": {"path": "/var/run/docker.sock"}}]),
            job_set([{"name": "scratch", "emptyDir": {}}]),
            {pod_security.DISALLOW_HOST_PATHS.name},
        ),
        (
            inference_service({"privileged": True}),
            inference_service({"allowPrivilegeEscalation": False}),
            {workloads.DISALLOW_PRIVILEGED.name},
        ),
        (
            custom(
                "example.com/v1",
                "Runner",
                {"pods": [{"containers": [camel(container({"allowPrivilegeEscalation": None}))]}]},
            ),
            custom("example.com/v1", "Runner", {"pods": [{"containers": [camel(container())]}]}),
            {workloads.DISALLOW_PRIVILEGED.name},
        ),
    ],
    ids=["mpijob", "rayjob", "jobset", "kserve", "unknown-crd"],
)
def test_pods_inside_custom_resources_are_checked(
    run_program: ProgramRunner, bad: Callable[[], None], good: Callable[[], None], expected: set[str]
) -> None:
    assert fired(run_program, bad, POD_RULES) == expected
    assert fired(run_program, good, POD_RULES) == set()


def train_job(spec: dict[str, Any], patch_container: dict[str, Any] | None = None) -> Callable[[], None]:
    pod_patch: dict[str, Any] = {"tolerations": [GPU_TOLERATION]}
    if patch_container is not None:
        pod_patch["containers"] = [patch_container]
    replicated = [{"name": "node", "template": {"spec": {"template": {"spec": pod_patch}}}}]
    quantities = {"cpu": "8", "memory": "32Gi", "nvidia.com/gpu": "1"}
    trainer = {"image": IMAGE, "resourcesPerNode": {"limits": quantities}}
    patches = [{"manager": "team-a", "trainingRuntimeSpec": {"template": {"spec": {"replicatedJobs": replicated}}}}]
    full = {"runtimeRef": {"name": "torch-distributed"}, "trainer": trainer, "runtimePatches": patches, **spec}
    return custom("trainer.kubeflow.org/v1alpha1", "TrainJob", full)


DEADLINE_AND_CHECKPOINTS = {"activeDeadlineSeconds": 7200}
CHECKPOINT_ARGS = ["--checkpoint-uri", "s3://bucket/checkpoints/run"]


def test_train_job_runtime_patch_is_checked_for_what_it_sets(run_program: ProgramRunner) -> None:
    privileged = train_job(DEADLINE_AND_CHECKPOINTS, {"name": "node", "securityContext": {"privileged": True}})
    mounts = train_job(DEADLINE_AND_CHECKPOINTS, {"name": "node", "volumeMounts": [{"name": "x", "mountPath": "/x"}]})
    assert fired(run_program, privileged, POD_RULES) == {workloads.DISALLOW_PRIVILEGED.name}
    assert fired(run_program, mounts, POD_RULES) == set()


def test_raw_train_job_needs_a_deadline_and_a_checkpoint_uri(run_program: ProgramRunner) -> None:
    rules: list[Rule] = [alerting.TRAINING_JOB_DEADLINE, alerting.TRAINING_JOB_CHECKPOINTS]
    bare = train_job({})
    (deadline,) = reports(run_program, bare, alerting.TRAINING_JOB_DEADLINE)
    assert "TrainJob 'trainjob' has no deadline (a positive spec.activeDeadlineSeconds)" in deadline.message
    assert fired(run_program, bare, rules) == {rule.name for rule in rules}
    sound = train_job({**DEADLINE_AND_CHECKPOINTS, "trainer": {"image": IMAGE, "args": CHECKPOINT_ARGS}})
    assert fired(run_program, sound, rules) == set()
    by_variable = {"image": IMAGE, "env": [{"name": "MODELPLANE_CHECKPOINT_URI", "value": "s3://bucket/c"}]}
    assert fired(run_program, train_job({**DEADLINE_AND_CHECKPOINTS, "trainer": by_variable}), rules) == set()


def pytorch_job(run_policy: dict[str, Any], args: list[str]) -> Callable[[], None]:
    master = {"replicas": 1, "template": {"spec": pod({**camel(container()), "args": args})}}
    return custom("kubeflow.org/v1", "PyTorchJob", {"runPolicy": run_policy, "pytorchReplicaSpecs": {"Master": master}})


def test_kubeflow_and_ray_jobs_need_a_deadline_too(run_program: ProgramRunner) -> None:
    rules: list[Rule] = [alerting.TRAINING_JOB_DEADLINE, alerting.TRAINING_JOB_CHECKPOINTS]
    (deadline,) = reports(run_program, pytorch_job({}, CHECKPOINT_ARGS), alerting.TRAINING_JOB_DEADLINE)
    assert (
        "PyTorchJob 'pytorchjob' has no deadline (a positive spec.runPolicy.activeDeadlineSeconds)" in deadline.message
    )
    assert fired(run_program, pytorch_job({"activeDeadlineSeconds": 3600}, []), rules) == {
        alerting.TRAINING_JOB_CHECKPOINTS.name
    }
    assert fired(run_program, pytorch_job({"activeDeadlineSeconds": 3600}, CHECKPOINT_ARGS), rules) == set()
    assert fired(run_program, ray_job(pod(camel(container()))), rules) == set()


def gpu_deployment(resources: dict[str, Any]) -> Callable[[], None]:
    spec: Any = {
        "selector": {"match_labels": {"app": "gpu-server"}},
        "template": {
            "metadata": {"labels": {"app": "gpu-server"}},
            "spec": pod(container(resources=resources), tolerations=[GPU_TOLERATION]),
        },
    }

    def program() -> None:
        k8s.apps.v1.Deployment("gpu-server", metadata={"name": "gpu-server", "namespace": "ml"}, spec=spec)

    return program


def test_gpu_given_only_as_a_limit_passes_every_pod_rule(run_program: ProgramRunner) -> None:
    limits_only = {"limits": {"cpu": "4", "memory": "16Gi", "nvidia.com/gpu": "1"}}
    gpu_only_in_limits = {"requests": {"cpu": "4", "memory": "16Gi"}, "limits": {**limits_only["limits"]}}
    assert fired(run_program, gpu_deployment(limits_only), POD_RULES) == set()
    assert container_requests({"resources": limits_only})["nvidia.com/gpu"] == 1  # what deployability's fit counts
    assert fired(run_program, gpu_deployment(gpu_only_in_limits), POD_RULES) == set()
    differing = {
        "requests": {"cpu": "4", "memory": "16Gi", "nvidia.com/gpu": "1"},
        "limits": {"cpu": "4", "memory": "16Gi", "nvidia.com/gpu": "2"},
    }
    assert fired(run_program, gpu_deployment(differing), POD_RULES) == {workloads.GPU_REQUESTS_EQUAL_LIMITS.name}


def service(annotations: dict[str, str], **extra: Any) -> Callable[[], None]:
    spec: Any = {"type": "LoadBalancer", "selector": {"app": "server"}, "ports": [{"port": 80}], **extra}

    def program() -> None:
        k8s.core.v1.Service("server", metadata={"annotations": annotations}, spec=spec)

    return program


def test_load_balancer_controller_services_are_internal_unless_their_scheme_says_otherwise(
    run_program: ProgramRunner,
) -> None:
    rules: list[Rule] = [exposure.INTERNAL_LOAD_BALANCERS]
    lbc_type = "service.beta.kubernetes.io/aws-load-balancer-type"
    scheme = "service.beta.kubernetes.io/aws-load-balancer-scheme"
    assert fired(run_program, service({lbc_type: "external"}), rules) == set()
    assert fired(run_program, service({}, load_balancer_class="service.k8s.aws/nlb"), rules) == set()
    assert fired(run_program, service({lbc_type: "external", scheme: "internet-facing"}), rules) == {rules[0].name}
    assert fired(run_program, service({lbc_type: "nlb"}), rules) == {rules[0].name}
    assert fired(run_program, service({}), rules) == {rules[0].name}


def ingress(annotations: dict[str, str]) -> Callable[[], None]:
    backend = {"service": {"name": "server", "port": {"number": 80}}}
    spec: Any = {
        "ingress_class_name": "alb",
        "rules": [{"http": {"paths": [{"path": "/", "path_type": "Prefix", "backend": backend}]}}],
    }

    def program() -> None:
        k8s.networking.v1.Ingress("server", metadata={"annotations": annotations}, spec=spec)

    return program


def test_internet_facing_alb_ingress_is_caught_and_an_internal_one_is_not(run_program: ProgramRunner) -> None:
    rules: list[Rule] = [exposure.INTERNAL_INGRESSES]
    scheme = "alb.ingress.kubernetes.io/scheme"
    assert fired(run_program, ingress({scheme: "internet-facing"}), rules) == {rules[0].name}
    assert fired(run_program, ingress({scheme: "internal"}), rules) == set()
    assert fired(run_program, ingress({}), rules) == set()
    public_class = custom("elbv2.k8s.aws/v1beta1", "IngressClassParams", {"scheme": "internet-facing"})
    assert fired(run_program, public_class, rules) == {rules[0].name}


@pytest.mark.parametrize("version", [">=3.0.0", "*", "^1.2", "~1.2", "1.x", "1.2", ""])
def test_helm_version_ranges_are_not_pinned(run_program: ProgramRunner, version: str) -> None:
    def program() -> None:
        k8s.helm.v3.Release("plugin", chart="nvidia-device-plugin", version=version)

    assert fired(run_program, program, [exposure.PINNED_HELM_CHARTS]) == {exposure.PINNED_HELM_CHARTS.name}


def test_exact_helm_versions_are_pinned(run_program: ProgramRunner) -> None:
    def program() -> None:
        k8s.helm.v3.Release("plugin", chart="nvidia-device-plugin", version="0.17.1")
        k8s.helm.v3.Release("oci", chart="oci://ghcr.io/kubeflow/charts/kubeflow-trainer", version="v2.2.1-rc.0")

    assert reports(run_program, program, exposure.PINNED_HELM_CHARTS) == []


def test_helm_v3_chart_version_cannot_be_read_and_says_so_as_advice(run_program: ProgramRunner) -> None:
    def program() -> None:
        k8s.helm.v3.Chart("plugin", k8s.helm.v3.ChartOpts(chart="nvidia-device-plugin", version="0.17.1"))

    (report,) = reports(run_program, program, exposure.PINNED_HELM_CHARTS)
    assert report.advice and "cannot be read" in report.message
