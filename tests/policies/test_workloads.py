from __future__ import annotations

import copy
from collections.abc import Callable
from typing import Any

import pytest

from modelplane.policies.rules import workloads
from modelplane.policies.rules.rule import ResourceRule
from modelplane.workloads.training.kubernetes import cluster_training_runtime_manifest
from tests.policies.harness import messages, resource

REGISTRY = "123456789012.dkr.ecr.us-east-1.amazonaws.com/"
CONFIG = {"allowedRegistries": [REGISTRY]}
DEPLOYMENT = "kubernetes:apps/v1:Deployment"
DAEMON_SET = "kubernetes:apps/v1:DaemonSet"
TRAIN_JOB = "kubernetes:trainer.kubeflow.org/v1alpha1:TrainJob"
RUNTIME = "kubernetes:trainer.kubeflow.org/v1alpha1:ClusterTrainingRuntime"
GPU_TOLERATION = {"key": "nvidia.com/gpu", "operator": "Equal", "value": "true", "effect": "NoSchedule"}
SECURE = {"runAsNonRoot": True, "allowPrivilegeEscalation": False, "readOnlyRootFilesystem": True, "privileged": False}


def gpu_container(**overrides: Any) -> dict[str, Any]:
    quantities = {"cpu": "4", "memory": "16Gi", "nvidia.com/gpu": "1"}
    return {
        "name": "server",
        "image": f"{REGISTRY}modelplane-test/server:0.1.0",
        "resources": {"requests": dict(quantities), "limits": dict(quantities)},
        "securityContext": dict(SECURE),
        **overrides,
    }


def deployment(container: dict[str, Any] | None = None, **pod: Any) -> dict[str, Any]:
    spec = {"containers": [container or gpu_container()], "tolerations": [GPU_TOLERATION], **pod}
    return resource(DEPLOYMENT, "server", {"kind": "Deployment", "spec": {"template": {"spec": spec}}})


def train_job(**trainer: Any) -> dict[str, Any]:
    quantities = {"cpu": "8", "memory": "32Gi", "nvidia.com/gpu": "4"}
    spec = {
        "trainer": {
            "image": f"{REGISTRY}modelplane-test/trainer:0.1.0",
            "resourcesPerNode": {"requests": dict(quantities), "limits": dict(quantities)},
            **trainer,
        },
        "runtimePatches": [
            {
                "manager": "modelplane.io/training-job",
                "trainingRuntimeSpec": {
                    "template": {
                        "spec": {
                            "replicatedJobs": [
                                {
                                    "name": "node",
                                    "template": {"spec": {"template": {"spec": {"tolerations": [GPU_TOLERATION]}}}},
                                }
                            ]
                        }
                    }
                },
            }
        ],
    }
    return resource(TRAIN_JOB, "job-trainjob", {"kind": "TrainJob", "spec": spec})


def with_container(**changes: Any) -> dict[str, Any]:
    return deployment(gpu_container(**changes))


def with_security(**changes: Any) -> dict[str, Any]:
    return deployment(gpu_container(securityContext={**SECURE, **changes}))


def runtime() -> dict[str, Any]:
    return resource(RUNTIME, "deepspeed-runtime", cluster_training_runtime_manifest())


GOOD = [deployment(), train_job(), runtime()]
BAD: list[tuple[ResourceRule, Callable[[], dict[str, Any]]]] = [
    (
        workloads.REQUIRE_REQUESTS_AND_LIMITS,
        lambda: with_container(resources={"requests": {"cpu": "1", "memory": "1Gi"}}),
    ),
    (workloads.REQUIRE_REQUESTS_AND_LIMITS, lambda: train_job(resourcesPerNode=None)),
    (workloads.DISALLOW_ROOT, lambda: with_security(runAsNonRoot=None)),
    (workloads.DISALLOW_ROOT, lambda: with_security(runAsUser=0)),
    (workloads.DISALLOW_PRIVILEGED, lambda: with_security(privileged=True)),
    (workloads.DISALLOW_PRIVILEGED, lambda: with_security(allowPrivilegeEscalation=True)),
    (workloads.REQUIRE_READ_ONLY_ROOT, lambda: with_security(readOnlyRootFilesystem=False)),
    (workloads.REQUIRE_PLATFORM_REGISTRY, lambda: with_container(image="docker.io/library/python:3.11")),
    (workloads.REQUIRE_PLATFORM_REGISTRY, lambda: train_job(image=None)),
    (workloads.REQUIRE_PINNED_IMAGE, lambda: with_container(image=f"{REGISTRY}modelplane-test/server:latest")),
    (workloads.REQUIRE_PINNED_IMAGE, lambda: with_container(image=f"{REGISTRY}modelplane-test/server")),
    (
        workloads.GPU_REQUESTS_EQUAL_LIMITS,
        lambda: with_container(
            resources={
                "requests": {"cpu": "1", "memory": "1Gi", "nvidia.com/gpu": "1"},
                "limits": {"cpu": "1", "memory": "1Gi", "nvidia.com/gpu": "2"},
            }
        ),
    ),
    (workloads.GPU_PODS_TOLERATE_TAINT, lambda: deployment(tolerations=[])),
    (workloads.GPU_TOLERATION_NEEDS_GPUS, lambda: with_container(resources={"requests": {}, "limits": {}})),
]


@pytest.mark.parametrize("rule", workloads.RULES, ids=[r.name for r in workloads.RULES])
def test_sound_workloads_pass(rule: ResourceRule) -> None:
    assert messages(rule, GOOD, CONFIG) == []


@pytest.mark.parametrize(("rule", "bad"), BAD, ids=[f"{r.name}-{i}" for i, (r, _) in enumerate(BAD)])
def test_unsound_workload_fires(rule: ResourceRule, bad: Callable[[], dict[str, Any]]) -> None:
    assert len(messages(rule, [bad()], CONFIG)) == 1


def test_every_workload_rule_has_a_failing_case() -> None:
    assert {rule.name for rule, _ in BAD} == {rule.name for rule in workloads.RULES}


def test_pinned_digest_and_integer_gpu_quantities_pass() -> None:
    digest = f"{REGISTRY}modelplane-test/server@sha256:" + "a" * 64
    quantities = {"cpu": "1", "memory": "1Gi", "nvidia.com/gpu": 1.0}
    container = gpu_container(
        image=digest, resources={"requests": quantities, "limits": {**quantities, "nvidia.com/gpu": "1"}}
    )
    for rule in workloads.RULES:
        assert messages(rule, [deployment(container)], CONFIG) == [], rule.name


def test_gpu_node_agent_daemon_set_may_tolerate_the_taint_without_gpus() -> None:
    agent = copy.deepcopy(with_container(resources={"requests": {"cpu": "1"}, "limits": {"cpu": "1"}}))
    agent["type"] = DAEMON_SET
    assert messages(workloads.GPU_TOLERATION_NEEDS_GPUS, [agent]) == []


def test_pod_security_context_applies_to_its_containers() -> None:
    container = gpu_container(securityContext={"readOnlyRootFilesystem": True})
    pod = deployment(container, securityContext={"runAsNonRoot": True, "runAsUser": 1000})
    assert messages(workloads.DISALLOW_ROOT, [pod]) == []


def test_image_not_yet_known_is_not_reported() -> None:
    job = train_job(image="[unknown]")
    assert messages(workloads.REQUIRE_PLATFORM_REGISTRY, [job], CONFIG) == []
    assert messages(workloads.REQUIRE_PINNED_IMAGE, [job], CONFIG) == []


def test_registry_patterns_allow_any_account_but_only_the_platforms_repositories() -> None:
    config = {"allowedRegistries": [r"^[0-9]{12}\.dkr\.ecr\.us-east-1\.amazonaws\.com/modelplane-prod/"]}
    rule = workloads.REQUIRE_PLATFORM_REGISTRY
    ours = "210987654321.dkr.ecr.us-east-1.amazonaws.com/modelplane-prod/server:0.2.0"
    assert messages(rule, [with_container(image=ours)], config) == []
    for image in (
        "210987654321.dkr.ecr.us-east-1.amazonaws.com/someone-else/server:0.2.0",
        "210987654321.dkr.ecr.eu-west-1.amazonaws.com/modelplane-prod/server:0.2.0",
    ):
        assert len(messages(rule, [with_container(image=image)], config)) == 1, image
