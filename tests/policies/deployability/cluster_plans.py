"""Planned resources as plan.json records them, for the cluster model's checks: nodes, device plugins, workloads.

Each builder returns one resource dict; keyword arguments land in its inputs, so a test can spell them camelCase
(as the engine sends them) or snake_case (as a hand-written dict may).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

from tests.conftest import ProgramRunner

NODE_GROUP = "aws:eks/nodeGroup:NodeGroup"
LAUNCH_TEMPLATE = "aws:ec2/launchTemplate:LaunchTemplate"
ASG = "aws:autoscaling/group:Group"
INSTANCE = "aws:ec2/instance:Instance"
CLUSTER = "aws:eks/cluster:Cluster"
ADDON = "aws:eks/addon:Addon"
NODE_POOL = "kubernetes:karpenter.sh/v1:NodePool"
NODE_CLASS = "kubernetes:karpenter.k8s.aws/v1:EC2NodeClass"
RELEASE = "kubernetes:helm.sh/v3:Release"
DEPLOYMENT = "kubernetes:apps/v1:Deployment"
DAEMON_SET = "kubernetes:apps/v1:DaemonSet"
JOB = "kubernetes:batch/v1:Job"
HPA = "kubernetes:autoscaling/v2:HorizontalPodAutoscaler"
TRAIN_JOB = "kubernetes:trainer.kubeflow.org/v1alpha1:TrainJob"
RUNTIME = "kubernetes:trainer.kubeflow.org/v1alpha1:ClusterTrainingRuntime"
UNKNOWN = "[unknown]"

GPU_TOLERATION = {"key": "nvidia.com/gpu", "operator": "Equal", "value": "true", "effect": "NoSchedule"}
GPU_TAINT = {"key": "nvidia.com/gpu", "value": "true", "effect": "NoSchedule"}
EKS_GPU_TAINT = {"key": "nvidia.com/gpu", "value": "true", "effect": "NO_SCHEDULE"}


def urn(type_: str, name: str) -> str:
    return f"urn:pulumi:test::modelplane::{type_}::{name}"


def resource(type_: str, name: str, inputs: dict[str, Any], deps: tuple[str, ...] = ()) -> dict[str, Any]:
    return {
        "urn": urn(type_, name),
        "type": type_,
        "name": name,
        "parent": "",
        "custom": True,
        "provider": "",
        "inputs": inputs,
        "dependencies": list(deps),
    }


def cluster(name: str = "cluster", **inputs: Any) -> dict[str, Any]:
    return resource(CLUSTER, name, {"name": name, **inputs})


def node_group(
    name: str = "gpu-nodes",
    instance_types: Any = ("g6.xlarge",),
    min_size: Any = 1,
    max_size: Any = 2,
    labels: Any = None,
    taints: Any = None,
    deps: tuple[str, ...] = (),
    **inputs: Any,
) -> dict[str, Any]:
    props: dict[str, Any] = {
        "clusterName": "cluster",
        "scalingConfig": {"minSize": min_size, "maxSize": max_size, "desiredSize": min_size},
        **inputs,
    }
    if instance_types is not None:
        props["instanceTypes"] = list(instance_types) if isinstance(instance_types, tuple) else instance_types
    if labels is not None:
        props["labels"] = labels
    if taints is not None:
        props["taints"] = taints
    return resource(NODE_GROUP, name, props, deps)


def launch_template(resource_name: str = "template", **inputs: Any) -> dict[str, Any]:
    return resource(LAUNCH_TEMPLATE, resource_name, inputs)


def node_pool(
    name: str = "gpu",
    instance_types: tuple[str, ...] | None = ("g6.xlarge",),
    limits: dict[str, Any] | None = None,
    labels: dict[str, str] | None = None,
    taints: list[dict[str, Any]] | None = None,
    requirements: list[dict[str, Any]] | None = None,
    node_class: str = "default",
    node_class_group: str = "karpenter.k8s.aws",
) -> dict[str, Any]:
    reqs = list(requirements or [])
    if instance_types is not None:
        reqs.insert(0, {"key": "node.kubernetes.io/instance-type", "operator": "In", "values": list(instance_types)})
    spec: dict[str, Any] = {
        "template": {
            "metadata": {"labels": labels if labels is not None else {"pool": name}},
            "spec": {
                "nodeClassRef": {"group": node_class_group, "kind": "EC2NodeClass", "name": node_class},
                "requirements": reqs,
                "taints": taints if taints is not None else [GPU_TAINT],
            },
        }
    }
    if limits is not None:
        spec["limits"] = limits
    return resource(
        NODE_POOL, name, {"apiVersion": "karpenter.sh/v1", "kind": "NodePool", "metadata": {"name": name}, "spec": spec}
    )


def node_class(name: str = "default", alias: str = "al2023@latest") -> dict[str, Any]:
    return resource(
        NODE_CLASS,
        f"{name}-class",
        {"metadata": {"name": name}, "spec": {"amiSelectorTerms": [{"alias": alias}], "role": "node"}},
    )


def release(name: str, chart: str, values: Any = None, **inputs: Any) -> dict[str, Any]:
    props: dict[str, Any] = {"chart": chart, "name": name, "namespace": "kube-system", **inputs}
    if values is not None:
        props["values"] = values
    return resource(RELEASE, name, props)


def nvidia_plugin(
    node_selector: dict[str, str] | None = None, tolerations: list[dict[str, Any]] | None = None
) -> dict[str, Any]:
    values: dict[str, Any] = {}
    if node_selector is not None:
        values["nodeSelector"] = node_selector
    if tolerations is not None:
        values["tolerations"] = tolerations
    return release(
        "nvidia-device-plugin",
        "nvidia-device-plugin",
        values,
        repositoryOpts={"repo": "https://nvidia.github.io/k8s-device-plugin"},
    )


def efa_plugin(
    node_selector: dict[str, str] | None = None, tolerations: list[dict[str, Any]] | None = None
) -> dict[str, Any]:
    values: dict[str, Any] = {"tolerations": tolerations if tolerations is not None else [{"operator": "Exists"}]}
    if node_selector is not None:
        values["nodeSelector"] = node_selector
    return release("efa-device-plugin", "aws-efa-k8s-device-plugin", values)


def container(
    requests: dict[str, Any] | None = None, limits: dict[str, Any] | None = None, name: str = "app"
) -> dict[str, Any]:
    resources: dict[str, Any] = {}
    if requests is not None:
        resources["requests"] = requests
    if limits is not None:
        resources["limits"] = limits
    return {"name": name, "image": "registry/app:1", "resources": resources}


def pod_spec(
    containers: list[dict[str, Any]] | None = None,
    node_selector: Any = None,
    tolerations: Any = None,
    affinity: Any = None,
    **extra: Any,
) -> dict[str, Any]:
    spec: dict[str, Any] = {"containers": containers or [container({"cpu": "1", "memory": "1Gi"})], **extra}
    if node_selector is not None:
        spec["nodeSelector"] = node_selector
    if tolerations is not None:
        spec["tolerations"] = tolerations
    if affinity is not None:
        spec["affinity"] = affinity
    return spec


def deployment(
    name: str = "app", pod: dict[str, Any] | None = None, replicas: Any = 1, namespace: str = "ml"
) -> dict[str, Any]:
    spec: dict[str, Any] = {
        "selector": {"matchLabels": {"app": name}},
        "template": {"metadata": {"labels": {"app": name}}, "spec": pod or pod_spec()},
    }
    if replicas is not None:
        spec["replicas"] = replicas
    return resource(DEPLOYMENT, name, {"metadata": {"name": name, "namespace": namespace}, "spec": spec})


def gpu_deployment(name: str = "server", gpus: int = 1, replicas: Any = 1, **pod: Any) -> dict[str, Any]:
    pod.setdefault("tolerations", [GPU_TOLERATION])
    containers = [container(limits={"cpu": "1", "memory": "4Gi", "nvidia.com/gpu": str(gpus)})]
    return deployment(name, pod_spec(containers, **pod), replicas)


def daemon_set(name: str, pod: dict[str, Any]) -> dict[str, Any]:
    return resource(
        DAEMON_SET, name, {"metadata": {"name": name, "namespace": "kube-system"}, "spec": {"template": {"spec": pod}}}
    )


def hpa(
    name: str = "app", target: str = "app", metrics: Any = None, min_replicas: int = 1, namespace: str = "ml"
) -> dict[str, Any]:
    spec: dict[str, Any] = {
        "scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": target},
        "minReplicas": min_replicas,
        "maxReplicas": 4,
    }
    if metrics is not None:
        spec["metrics"] = metrics
    return resource(HPA, name, {"metadata": {"name": name, "namespace": namespace}, "spec": spec})


def cpu_metric(target_type: str = "Utilization") -> dict[str, Any]:
    target = (
        {"type": target_type, "averageUtilization": 60}
        if target_type == "Utilization"
        else {"type": target_type, "averageValue": "500m"}
    )
    return {"type": "Resource", "resource": {"name": "cpu", "target": target}}


def runtime(name: str = "torch", pod: dict[str, Any] | None = None, num_nodes: int = 1) -> dict[str, Any]:
    job = {
        "name": "node",
        "template": {"spec": {"template": {"spec": pod or {"containers": [{"name": "node", "image": "x"}]}}}},
    }
    return resource(
        RUNTIME,
        f"{name}-runtime",
        {
            "metadata": {"name": name},
            "spec": {"mlPolicy": {"numNodes": num_nodes}, "template": {"spec": {"replicatedJobs": [job]}}},
        },
    )


def train_job(
    name: str = "train",
    num_nodes: Any = 2,
    per_node: dict[str, Any] | None = None,
    node_selector: dict[str, str] | None = None,
    tolerations: list[dict[str, Any]] | None = None,
    runtime_name: str = "torch",
) -> dict[str, Any]:
    patch_pod: dict[str, Any] = {"tolerations": tolerations if tolerations is not None else [GPU_TOLERATION]}
    if node_selector is not None:
        patch_pod["nodeSelector"] = node_selector
    patch = {
        "manager": "test",
        "trainingRuntimeSpec": {
            "template": {
                "spec": {"replicatedJobs": [{"name": "node", "template": {"spec": {"template": {"spec": patch_pod}}}}]}
            }
        },
    }
    trainer: dict[str, Any] = {
        "image": "trainer:1",
        "resourcesPerNode": {"limits": per_node or {"nvidia.com/gpu": "1"}},
    }
    if num_nodes is not None:
        trainer["numNodes"] = num_nodes
    return resource(
        TRAIN_JOB,
        name,
        {
            "metadata": {"name": name, "namespace": "ml"},
            "spec": {
                "runtimeRef": {"name": runtime_name, "kind": "ClusterTrainingRuntime"},
                "trainer": trainer,
                "runtimePatches": [patch],
            },
        },
    )


def asg(
    resource_name: str = "asg",
    min_size: Any = 0,
    max_size: Any = 2,
    tags: list[dict[str, Any]] | None = None,
    deps: tuple[str, ...] = (),
    **inputs: Any,
) -> dict[str, Any]:
    props: dict[str, Any] = {
        "minSize": min_size,
        "tags": tags
        if tags is not None
        else [{"key": "kubernetes.io/cluster/cluster", "value": "owned", "propagateAtLaunch": True}],
        **inputs,
    }
    if max_size is not None:
        props["maxSize"] = max_size
    return resource(ASG, resource_name, props, deps)


def planned(run_program: ProgramRunner, program: Callable[[], Any]) -> list[dict[str, Any]]:
    """Run a hand-written program under the plan's mocks and return its resources as plan.json holds them."""
    return [dataclasses.asdict(r) for r in run_program(program)]
