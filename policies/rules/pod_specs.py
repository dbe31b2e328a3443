"""Where each kind of Kubernetes workload keeps its pods and containers, as plain data.

Kubeflow Trainer splits a job's pod in two: the ClusterTrainingRuntime holds the pod template
(security contexts, the trainer container), and each TrainJob fills in the trainer's image and
resources and adds tolerations. So the runtime's trainer container is checked for what it owns and
the TrainJob for the rest; `inherited` names what a container gets from the other resource.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from modelplane.policies.rules.props import as_dict, as_list, dig

POD_TEMPLATE_PATHS: dict[str, tuple[str, ...]] = {
    "kubernetes:apps/v1:Deployment": ("spec", "template", "spec"),
    "kubernetes:apps/v1:StatefulSet": ("spec", "template", "spec"),
    "kubernetes:apps/v1:DaemonSet": ("spec", "template", "spec"),
    "kubernetes:apps/v1:ReplicaSet": ("spec", "template", "spec"),
    "kubernetes:batch/v1:Job": ("spec", "template", "spec"),
    "kubernetes:batch/v1:CronJob": ("spec", "jobTemplate", "spec", "template", "spec"),
    "kubernetes:core/v1:Pod": ("spec",),
}
TRAINING_RUNTIME_TYPES = frozenset(
    {
        "kubernetes:trainer.kubeflow.org/v1alpha1:ClusterTrainingRuntime",
        "kubernetes:trainer.kubeflow.org/v1alpha1:TrainingRuntime",
    }
)
TRAIN_JOB_TYPE = "kubernetes:trainer.kubeflow.org/v1alpha1:TrainJob"
PYTORCH_JOB_TYPE = "kubernetes:kubeflow.org/v1:PyTorchJob"
NODE_AGENT_TYPES = frozenset({"kubernetes:apps/v1:DaemonSet"})
WORKLOAD_TYPES = frozenset({*POD_TEMPLATE_PATHS, *TRAINING_RUNTIME_TYPES, TRAIN_JOB_TYPE, PYTORCH_JOB_TYPE})
TRAINER_STEP_LABEL = "trainer.kubeflow.org/trainjob-ancestor-step"
TRAINER_NODE = "node"


@dataclass(frozen=True)
class Container:
    where: str
    spec: dict[str, Any]
    inherited: frozenset[str] = frozenset()
    """Aspects set by another resource: 'image', 'resources' (from each TrainJob), 'security' (from the runtime)."""


@dataclass(frozen=True)
class PodTemplate:
    where: str
    spec: dict[str, Any]
    containers: list[Container] = field(default_factory=list)
    node_agent: bool = False
    """A DaemonSet: one pod per node, e.g. a GPU node agent that tolerates the GPU taint without asking for GPUs."""


def _containers(where: str, pod: dict[str, Any], inherited: frozenset[str] = frozenset()) -> list[Container]:
    found = []
    for key in ("initContainers", "containers"):
        for index, container in enumerate(as_list(pod.get(key))):
            name = dig(container, "name") or index
            found.append(Container(f"{where}.{key}[{name}]", as_dict(container), inherited))
    return found


def _template(where: str, pod: Any, resource_type: str, inherited: frozenset[str] = frozenset()) -> PodTemplate:
    spec = as_dict(pod)
    return PodTemplate(where, spec, _containers(where, spec, inherited), resource_type in NODE_AGENT_TYPES)


def _runtime_templates(props: dict[str, Any], resource_type: str) -> list[PodTemplate]:
    templates = []
    for job in as_list(dig(props, "spec", "template", "spec", "replicatedJobs")):
        name = dig(job, "name")
        is_trainer = name == TRAINER_NODE or dig(job, "template", "metadata", "labels", TRAINER_STEP_LABEL) == "trainer"
        pod = dig(job, "template", "spec", "template", "spec")
        where = f"spec.template.spec.replicatedJobs[{name}].template.spec.template.spec"
        spec = as_dict(pod)
        containers = [
            Container(
                c.where,
                c.spec,
                frozenset({"image", "resources"}) if is_trainer and c.spec.get("name") == TRAINER_NODE else frozenset(),
            )
            for c in _containers(where, spec)
        ]
        templates.append(PodTemplate(where, spec, containers, resource_type in NODE_AGENT_TYPES))
    return templates


def _train_job_template(props: dict[str, Any]) -> PodTemplate:
    trainer = as_dict(dig(props, "spec", "trainer"))
    pod_patches = [
        dig(job, "template", "spec", "template", "spec")
        for patch in as_list(dig(props, "spec", "runtimePatches"))
        for job in as_list(dig(patch, "trainingRuntimeSpec", "template", "spec", "replicatedJobs"))
    ]
    tolerations = [t for pod in pod_patches for t in as_list(dig(pod, "tolerations"))]
    container = {"name": TRAINER_NODE, "image": trainer.get("image"), "resources": trainer.get("resourcesPerNode")}
    return PodTemplate(
        "spec.trainer",
        {"tolerations": tolerations, "containers": [container]},
        [Container("spec.trainer", container, frozenset({"security"}))],
    )


def pod_templates(resource_type: str, props: dict[str, Any]) -> list[PodTemplate]:
    """Every pod template a workload resource declares ([] for other resources)."""
    if resource_type in POD_TEMPLATE_PATHS:
        path = POD_TEMPLATE_PATHS[resource_type]
        return [_template(".".join(path), dig(props, *path), resource_type)]
    if resource_type in TRAINING_RUNTIME_TYPES:
        return _runtime_templates(props, resource_type)
    if resource_type == TRAIN_JOB_TYPE:
        return [_train_job_template(props)]
    if resource_type == PYTORCH_JOB_TYPE:
        replicas = as_dict(dig(props, "spec", "pytorchReplicaSpecs"))
        return [
            _template(f"spec.pytorchReplicaSpecs.{role}.template.spec", dig(spec, "template", "spec"), resource_type)
            for role, spec in replicas.items()
        ]
    return []
