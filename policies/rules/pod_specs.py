"""Where Kubernetes objects keep their pods and containers, as plain data, whoever wrote them.

Built-in workload kinds (and their `*Patch` types, which Pulumi uses for server-side apply) and the kinds whose
pods are split over several objects (Kubeflow Trainer, Argo, KServe) are read from where their API puts the pod.
Any other `kubernetes:*` object is searched: every mapping in its `spec` holding `containers` as a list of
mappings is a pod spec (MPIJob, PyTorchJob, RayJob/RayCluster, JobSet, a CRD nobody here knows), named by its
path, list items by their `name` (or `groupName`).

Kubeflow Trainer splits a job's pod in two: the ClusterTrainingRuntime holds the pod template (security contexts,
the trainer container), and each TrainJob fills in the trainer's image and resources and patches the pod
(`runtimePatches`). So the runtime's trainer container is checked for what it owns, the TrainJob's trainer for the
rest (`inherited` names what a container gets from the other resource), and each runtime patch for what it sets.

A patch (`partial`: a `*Patch` resource, a TrainJob's runtime patch, a KServe model merged into its serving
runtime's container, the Prometheus operator's `spec.containers`) leaves what it omits as the patched object
has it, so rules check only what a patch sets.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from modelplane.policies.rules.props import as_dict, as_list, dig, is_unknown

KUBERNETES_PREFIX = "kubernetes:"
PATCH_SUFFIX = "Patch"
NON_OBJECT_GROUPS = frozenset({"helm.sh", "yaml", "kustomize"})
"""Pulumi's components that render objects (Helm charts, YAML, kustomize): no pod of their own."""
BUILT_IN_GROUPS = frozenset({"core", "apps", "batch", "extensions"})
BUILT_IN_POD_PATHS: dict[str, tuple[str, ...]] = {
    "Pod": ("spec",),
    "PodTemplate": ("template", "spec"),
    "ReplicationController": ("spec", "template", "spec"),
    "Deployment": ("spec", "template", "spec"),
    "StatefulSet": ("spec", "template", "spec"),
    "DaemonSet": ("spec", "template", "spec"),
    "ReplicaSet": ("spec", "template", "spec"),
    "Job": ("spec", "template", "spec"),
    "CronJob": ("spec", "jobTemplate", "spec", "template", "spec"),
}
NODE_AGENT_KINDS = frozenset({"DaemonSet"})
TRAINER_GROUP = "trainer.kubeflow.org"
TRAINING_RUNTIME_KINDS = frozenset({"ClusterTrainingRuntime", "TrainingRuntime"})
TRAIN_JOB_KIND = "TrainJob"
TRAIN_JOB_TYPE = "kubernetes:trainer.kubeflow.org/v1alpha1:TrainJob"
TRAINER_STEP_LABEL = "trainer.kubeflow.org/trainjob-ancestor-step"
TRAINER_NODE = "node"
ARGO_GROUP = "argoproj.io"
ARGO_WORKFLOW_KINDS = frozenset({"Workflow", "WorkflowTemplate", "ClusterWorkflowTemplate", "CronWorkflow"})
ARGO_POD_FIELDS = ("securityContext", "hostNetwork", "volumes", "tolerations")
KSERVE_GROUP = "serving.kserve.io"
KSERVE_COMPONENTS = ("predictor", "transformer", "explainer")
KSERVE_MODEL_FIELDS = frozenset(
    {
        "model",
        "sklearn",
        "xgboost",
        "tensorflow",
        "pytorch",
        "triton",
        "onnx",
        "huggingface",
        "pmml",
        "lightgbm",
        "paddle",
        "alibi",
        "art",
    }
)
PROMETHEUS_OPERATOR_GROUP = "monitoring.coreos.com"
PROMETHEUS_OPERATOR_KINDS = frozenset({"Prometheus", "PrometheusAgent", "Alertmanager", "ThanosRuler"})
"""Their `spec.containers` are merged into the pods the operator generates, which hold the rest."""
CONTAINER_LISTS = ("initContainers", "containers", "ephemeralContainers")
LIST_ITEM_NAMES = ("name", "groupName")
SERVING_RUNTIME_ASPECTS = frozenset({"image"})


@dataclass(frozen=True)
class ResourceKind:
    """What a `kubernetes:GROUP/VERSION:KIND[Patch]` type token names."""

    group: str
    version: str
    kind: str
    patch: bool


def resource_kind(resource_type: str) -> ResourceKind | None:
    """The group, version and kind of a Kubernetes type token; None for other providers' types."""
    if not resource_type.startswith(KUBERNETES_PREFIX):
        return None
    parts = resource_type.split(":")
    if len(parts) != 3:
        return None
    group, _, version = parts[1].rpartition("/")
    kind = parts[2]
    patch = kind.endswith(PATCH_SUFFIX) and kind != PATCH_SUFFIX
    return ResourceKind(group or "core", version, kind.removesuffix(PATCH_SUFFIX) if patch else kind, patch)


def is_kubernetes_type(resource_type: str) -> bool:
    """Every Kubernetes type may hold pods (a CRD nobody here knows); Helm's and YAML's are read elsewhere."""
    kind = resource_kind(resource_type)
    return kind is not None and kind.group not in NON_OBJECT_GROUPS


@dataclass(frozen=True)
class Container:
    where: str
    spec: dict[str, Any]
    inherited: frozenset[str] = frozenset()
    """Aspects set by another resource: 'image', 'resources' (from each TrainJob), 'security' (from the runtime)."""
    partial: bool = False
    """A patch: what it leaves unset is the patched container's, so only what it sets is checked."""


@dataclass(frozen=True)
class PodTemplate:
    where: str
    spec: dict[str, Any]
    containers: list[Container] = field(default_factory=list)
    node_agent: bool = False
    """A DaemonSet: one pod per node, e.g. a GPU node agent that tolerates the GPU taint without asking for GPUs."""
    partial: bool = False
    """A patch: pod fields it leaves unset (tolerations, security context) are the patched pod's."""
    unreadable: tuple[str, ...] = ()
    """Parts of the pod this model cannot read (a string-encoded patch, a non-list of containers): why, for advice."""


def _containers(
    where: str, pod: dict[str, Any], inherited: frozenset[str] = frozenset(), partial: bool = False
) -> list[Container]:
    found = []
    for key in CONTAINER_LISTS:
        for index, container in enumerate(as_list(pod.get(key))):
            name = dig(container, "name") or index
            found.append(Container(f"{where}.{key}[{name}]", as_dict(container), inherited, partial))
    return found


def _unreadable_containers(where: str, pod: dict[str, Any]) -> tuple[str, ...]:
    return tuple(
        f"{where}.{key} is a {type(pod[key]).__name__}, not a list of containers"
        for key in CONTAINER_LISTS
        if pod.get(key) is not None and not is_unknown(pod[key]) and not _is_container_list(pod[key])
    )


def _template(where: str, pod: Any, *, node_agent: bool = False, partial: bool = False) -> PodTemplate:
    spec = as_dict(pod)
    return PodTemplate(
        where,
        spec,
        _containers(where, spec, partial=partial),
        node_agent=node_agent,
        partial=partial,
        unreadable=_unreadable_containers(where, spec),
    )


def _is_container_list(value: Any) -> bool:
    return isinstance(value, list) and all(isinstance(item, dict) for item in value)


def _is_pod_spec(value: Any) -> bool:
    """Pod-spec-shaped: a mapping holding `containers` as a list of mappings (or a list not yet known)."""
    return isinstance(value, dict) and (
        _is_container_list(value.get("containers")) or is_unknown(value.get("containers"))
    )


def _item_name(item: Any, index: int) -> str | int:
    for key in LIST_ITEM_NAMES:
        name = dig(item, key)
        if isinstance(name, str) and name:
            return name
    return index


def find_pod_specs(value: Any, where: str) -> list[tuple[str, dict[str, Any]]]:
    """Every pod-spec-shaped mapping within `value` (not looking inside one found), with its path."""
    if _is_pod_spec(value):
        return [(where, value)]
    if isinstance(value, dict):
        return [found for key, item in value.items() for found in find_pod_specs(item, f"{where}.{key}")]
    if isinstance(value, list):
        return [
            found
            for index, item in enumerate(value)
            for found in find_pod_specs(item, f"{where}[{_item_name(item, index)}]")
        ]
    return []


def _discovered_templates(props: dict[str, Any], partial: bool) -> list[PodTemplate]:
    return [_template(where, pod, partial=partial) for where, pod in find_pod_specs(props.get("spec"), "spec")]


def _operator_pod_patches(props: dict[str, Any], _partial: bool) -> list[PodTemplate]:
    return _discovered_templates(props, partial=True)


def _built_in_templates(kind: ResourceKind, props: dict[str, Any]) -> list[PodTemplate]:
    path = BUILT_IN_POD_PATHS[kind.kind]
    pod = dig(props, *path)
    if kind.patch and pod is None:
        return []
    return [_template(".".join(path), pod, node_agent=kind.kind in NODE_AGENT_KINDS, partial=kind.patch)]


def _runtime_templates(props: dict[str, Any], partial: bool) -> list[PodTemplate]:
    templates = []
    for job in as_list(dig(props, "spec", "template", "spec", "replicatedJobs")):
        name = dig(job, "name")
        is_trainer = name == TRAINER_NODE or dig(job, "template", "metadata", "labels", TRAINER_STEP_LABEL) == "trainer"
        where = f"spec.template.spec.replicatedJobs[{name}].template.spec.template.spec"
        template = _template(where, dig(job, "template", "spec", "template", "spec"), partial=partial)
        containers = [
            Container(
                c.where,
                c.spec,
                frozenset({"image", "resources"}) if is_trainer and c.spec.get("name") == TRAINER_NODE else frozenset(),
                c.partial,
            )
            for c in template.containers
        ]
        templates.append(PodTemplate(where, template.spec, containers, partial=partial, unreadable=template.unreadable))
    return templates


def _runtime_patch_templates(props: dict[str, Any]) -> list[PodTemplate]:
    """Each pod a TrainJob's runtime patches change: checked for what they set."""
    templates = []
    for index, patch in enumerate(as_list(dig(props, "spec", "runtimePatches"))):
        manager = dig(patch, "manager")
        label = manager if isinstance(manager, str) and manager else index
        for job in as_list(dig(patch, "trainingRuntimeSpec", "template", "spec", "replicatedJobs")):
            pod = dig(job, "template", "spec", "template", "spec")
            if pod is None:
                continue
            where = (
                f"spec.runtimePatches[{label}].trainingRuntimeSpec.template.spec"
                f".replicatedJobs[{dig(job, 'name')}].template.spec.template.spec"
            )
            templates.append(_template(where, pod, partial=True))
    return templates


def _train_job_trainer(props: dict[str, Any], patches: list[PodTemplate]) -> PodTemplate:
    """The trainer's pod as the TrainJob completes it: its image and resources, the patches' tolerations."""
    trainer = as_dict(dig(props, "spec", "trainer"))
    tolerations = [t for patch in patches for t in as_list(patch.spec.get("tolerations"))]
    container = {"name": TRAINER_NODE, "image": trainer.get("image"), "resources": trainer.get("resourcesPerNode")}
    return PodTemplate(
        "spec.trainer",
        {"tolerations": tolerations, "containers": [container]},
        [Container("spec.trainer", container, frozenset({"security"}))],
    )


def _train_job_templates(props: dict[str, Any], partial: bool) -> list[PodTemplate]:
    patches = _runtime_patch_templates(props)
    if partial:
        return patches
    return [_train_job_trainer(props, patches), *patches]


def _argo_pod(workflow: dict[str, Any], step: dict[str, Any]) -> dict[str, Any]:
    """A template's pod fields: the workflow's, with the template's own added (lists) or taking precedence."""
    pod = {key: workflow[key] for key in ARGO_POD_FIELDS if key in workflow}
    for key in ARGO_POD_FIELDS:
        if key not in step:
            continue
        both_lists = isinstance(pod.get(key), list) and isinstance(step[key], list)
        pod[key] = [*pod[key], *step[key]] if both_lists else step[key]
    return pod


def _argo_templates(props: dict[str, Any], partial: bool) -> list[PodTemplate]:
    """Each Argo template that runs a pod: its container, script or container set, sidecars and init containers."""
    workflow = as_dict(dig(props, "spec", "workflowSpec") or props.get("spec"))
    prefix = "spec.workflowSpec" if dig(props, "spec", "workflowSpec") is not None else "spec"
    templates = []
    for index, item in enumerate(as_list(workflow.get("templates"))):
        where = f"{prefix}.templates[{_item_name(item, index)}]"
        step = as_dict(item)
        containers = [
            Container(f"{where}.{key}", as_dict(step[key]), partial=partial)
            for key in ("container", "script")
            if isinstance(step.get(key), dict)
        ]
        containers += _containers(f"{where}.containerSet", as_dict(step.get("containerSet")), partial=partial)
        containers += [
            Container(f"{where}.{key}[{_item_name(c, i)}]", as_dict(c), partial=partial)
            for key in ("initContainers", "sidecars")
            for i, c in enumerate(as_list(step.get(key)))
        ]
        if not containers:
            continue
        unreadable = tuple(
            f"{holder_where}.podSpecPatch is a string patch this pack does not parse"
            for holder_where, holder in ((prefix, workflow), (where, step))
            if holder.get("podSpecPatch") is not None and not is_unknown(holder["podSpecPatch"])
        )
        pod = _argo_pod(workflow, step)
        templates.append(PodTemplate(where, pod, containers, partial=partial, unreadable=unreadable))
    return templates


def _kserve_templates(props: dict[str, Any], partial: bool) -> list[PodTemplate]:
    """Each InferenceService component's pod: its pod fields inline, its containers, its model's container.

    The model (or framework) container is merged into the serving runtime's container, which supplies the image.
    """
    templates = []
    for component in KSERVE_COMPONENTS:
        pod = dig(props, "spec", component)
        if not isinstance(pod, dict):
            continue
        where = f"spec.{component}"
        template = _template(where, pod, partial=partial)
        models = [
            Container(f"{where}.{key}", value, SERVING_RUNTIME_ASPECTS, partial=True)
            for key, value in pod.items()
            if key in KSERVE_MODEL_FIELDS and isinstance(value, dict)
        ]
        templates.append(
            PodTemplate(where, pod, [*template.containers, *models], partial=True, unreadable=template.unreadable)
        )
    return templates


KNOWN_GROUP_KINDS: dict[tuple[str, str], Callable[[dict[str, Any], bool], list[PodTemplate]]] = {
    **{(TRAINER_GROUP, kind): _runtime_templates for kind in TRAINING_RUNTIME_KINDS},
    (TRAINER_GROUP, TRAIN_JOB_KIND): _train_job_templates,
    **{(ARGO_GROUP, kind): _argo_templates for kind in ARGO_WORKFLOW_KINDS},
    (KSERVE_GROUP, "InferenceService"): _kserve_templates,
    **{(PROMETHEUS_OPERATOR_GROUP, kind): _operator_pod_patches for kind in PROMETHEUS_OPERATOR_KINDS},
}


def pod_templates(resource_type: str, props: dict[str, Any]) -> list[PodTemplate]:
    """Every pod template a Kubernetes resource declares or patches ([] for other resources)."""
    kind = resource_kind(resource_type)
    if kind is None or not is_kubernetes_type(resource_type):
        return []
    if kind.group in BUILT_IN_GROUPS:
        return _built_in_templates(kind, props) if kind.kind in BUILT_IN_POD_PATHS else []
    reader = KNOWN_GROUP_KINDS.get((kind.group, kind.kind))
    if reader is not None:
        return reader(props, kind.patch)
    return _discovered_templates(props, kind.patch)
