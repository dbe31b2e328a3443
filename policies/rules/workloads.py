"""Kubernetes workload rules over every container of every pod template, wherever it lives (see `pod_specs`).

Helm releases are not inspected: their pods are rendered from the chart inside the provider, so the
inputs hold only chart values in the chart's own shape. The add-ons modelplane installs by Helm
(NVIDIA device plugin, dcgm-exporter, kube-prometheus-stack, Kubeflow Trainer) are upstream charts
pinned by version (`kubernetes-helm-release-require-pinned-version`), and their GPU node agents are
DaemonSets, which may tolerate the GPU taint without asking for GPUs.

Kubernetes defaults a container's requests to its limits, so a request given only as a limit counts as both.
A patch is checked only for what it sets (`Container.partial`).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from typing import Any

from modelplane.policies.rules.pod_specs import Container, PodTemplate, is_kubernetes_type, pod_templates
from modelplane.policies.rules.props import as_dict, as_list, dig, is_true, is_unknown
from modelplane.policies.rules.rule import ResourceCheck, ResourceRule, Rule, Undecided
from modelplane.terms.scheduling import GPU_TAINT_EFFECT, GPU_TAINT_KEY, GPU_TAINT_VALUE

GPU_RESOURCE = "nvidia.com/gpu"
REQUIRED_RESOURCES = ("cpu", "memory")

ContainerCheck = Callable[[Container, PodTemplate, Mapping[str, Any]], list[str]]
PodCheck = Callable[[PodTemplate, dict[str, Any], Mapping[str, Any]], list[str]]
"""(pod template, the resource's inputs, the rule's config) -> messages, each prefixed with where it applies."""


def _unreadable(template: PodTemplate) -> list[str]:
    return [Undecided(f"{reason}; its containers are not checked") for reason in template.unreadable]


def _located(where: str, problem: str) -> str:
    """`where: problem`, still `Undecided` if the problem is."""
    message = f"{where}: {problem}"
    return Undecided(message) if isinstance(problem, Undecided) else message


def over_containers(aspect: str, check: ContainerCheck) -> ResourceCheck:
    """A resource check running `check` on each container that owns `aspect` itself."""

    def run(resource_type: str, props: dict[str, Any], config: Mapping[str, Any]) -> list[str]:
        messages = []
        for template in pod_templates(resource_type, props):
            messages += _unreadable(template)
            messages += [
                _located(container.where, problem)
                for container in template.containers
                if aspect not in container.inherited
                for problem in check(container, template, config)
            ]
        return messages

    return run


def over_pods(check: PodCheck) -> ResourceCheck:
    """A resource check running `check` on each pod template."""

    def run(resource_type: str, props: dict[str, Any], config: Mapping[str, Any]) -> list[str]:
        return [
            message for template in pod_templates(resource_type, props) for message in check(template, props, config)
        ]

    return run


def effective(container: Container, pod: PodTemplate, key: str) -> Any:
    """A security setting as Kubernetes applies it: the container's own, else the pod's."""
    own = dig(container.spec, "securityContext", key)
    return own if own is not None else dig(pod.spec, "securityContext", key)


def left_to_patched(container: Container, *values: Any) -> bool:
    """A patch that sets none of `values`: the patched object's values stand, and are checked where it is declared."""
    return container.partial and all(value is None for value in values)


def _request(resources: Any, name: str) -> Any:
    """A container's request for `name`; Kubernetes defaults an unset request to the limit."""
    requested = dig(resources, "requests", name)
    return requested if requested is not None else dig(resources, "limits", name)


def _requests_and_limits(container: Container, _pod: PodTemplate, _config: Mapping[str, Any]) -> list[str]:
    resources = container.spec.get("resources")
    if is_unknown(resources) or container.partial:
        return []
    missing = [f"requests.{name}" for name in REQUIRED_RESOURCES if _request(resources, name) is None]
    missing += [f"limits.{name}" for name in REQUIRED_RESOURCES if dig(resources, "limits", name) is None]
    return [f"no {', '.join(missing)}; set cpu and memory requests and limits"] if missing else []


def _non_root(container: Container, pod: PodTemplate, _config: Mapping[str, Any]) -> list[str]:
    non_root, user = effective(container, pod, "runAsNonRoot"), effective(container, pod, "runAsUser")
    if is_unknown(non_root) or is_unknown(user) or left_to_patched(container, non_root, user):
        return []
    if user == 0:
        return ["runAsUser is 0 (root); run as a non-root user"]
    if is_true(non_root) or (isinstance(user, (int, float)) and user > 0):
        return []
    return ["may run as root; set securityContext.runAsNonRoot true (or a non-zero runAsUser)"]


def _not_privileged(container: Container, pod: PodTemplate, _config: Mapping[str, Any]) -> list[str]:
    context = container.spec.get("securityContext")
    if is_unknown(context):
        return []
    context = as_dict(context)
    problems = []
    if is_true(context.get("privileged")):
        problems.append("is privileged; drop securityContext.privileged")
    host_process = dig(context, "windowsOptions", "hostProcess")
    if is_true(
        host_process if host_process is not None else dig(pod.spec, "securityContext", "windowsOptions", "hostProcess")
    ):
        problems.append("is a Windows HostProcess container (privileged on the node); drop windowsOptions.hostProcess")
    escalation = context.get("allowPrivilegeEscalation")
    if is_true(escalation):
        problems.append("allows privilege escalation; set securityContext.allowPrivilegeEscalation false")
    elif escalation is None and not container.partial:
        problems.append(
            "allows privilege escalation (securityContext.allowPrivilegeEscalation unset means true); set it false"
        )
    return problems


def _read_only_root(container: Container, _pod: PodTemplate, _config: Mapping[str, Any]) -> list[str]:
    read_only = dig(container.spec, "securityContext", "readOnlyRootFilesystem")
    if is_unknown(read_only) or is_true(read_only) or left_to_patched(container, read_only):
        return []
    return [
        "root filesystem is writable; set securityContext.readOnlyRootFilesystem true (mount emptyDirs for scratch)"
    ]


def _matches_registry(image: str, registry: str) -> bool:
    """A registry entry is an image prefix, or a regular expression when it starts with '^' (to allow any account)."""
    return re.match(registry, image) is not None if registry.startswith("^") else image.startswith(registry)


def _platform_registry(container: Container, _pod: PodTemplate, config: Mapping[str, Any]) -> list[str]:
    image = container.spec.get("image")
    if is_unknown(image) or left_to_patched(container, image):
        return []
    if not isinstance(image, str) or not image:
        return ["no image; set one from the platform's registry"]
    registries = [str(r) for r in as_list(config.get("allowedRegistries"))]
    if not registries:
        return ["no allowedRegistries in this environment's policy config"]
    if any(_matches_registry(image, registry) for registry in registries):
        return []
    return [f"image {image!r} is not from the platform's registry ({', '.join(registries)})"]


def _pinned_image(container: Container, _pod: PodTemplate, _config: Mapping[str, Any]) -> list[str]:
    image = container.spec.get("image")
    if is_unknown(image) or not isinstance(image, str) or not image or "@sha256:" in image:
        return []
    last = image.rsplit("/", 1)[-1]
    tag = last.split(":", 1)[1] if ":" in last else None
    if tag is None:
        return [f"image {image!r} has no tag (so it means ':latest'); pin a digest or an immutable version tag"]
    if tag == "latest":
        return [f"image {image!r} uses ':latest'; pin a digest or an immutable version tag"]
    return []


def _quantity(value: Any) -> str | None:
    if value is None:
        return None
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def _gpu_quantities(container: Container) -> tuple[Any, Any]:
    """A container's GPU request (its limit where no request is set) and limit."""
    resources = container.spec.get("resources")
    return _request(resources, GPU_RESOURCE), dig(resources, "limits", GPU_RESOURCE)


def _gpus_guaranteed(container: Container, _pod: PodTemplate, _config: Mapping[str, Any]) -> list[str]:
    requests, limits = _gpu_quantities(container)
    if is_unknown(requests) or is_unknown(limits) or (requests is None and limits is None):
        return []
    if container.partial and (requests is None or limits is None):
        return []
    if _quantity(requests) == _quantity(limits):
        return []
    return [f"{GPU_RESOURCE} requests={_quantity(requests)} but limits={_quantity(limits)}; set both to the same count"]


def _asks_for_gpus(template: PodTemplate) -> bool:
    for container in template.containers:
        requests, limits = _gpu_quantities(container)
        if any(q not in (None, 0, "0") and not is_unknown(q) for q in (requests, limits)):
            return True
    return False


def _tolerates_gpu_taint(template: PodTemplate) -> bool:
    for toleration in as_list(template.spec.get("tolerations")):
        key, operator = dig(toleration, "key"), dig(toleration, "operator") or "Equal"
        effect = dig(toleration, "effect")
        if effect not in (None, "", GPU_TAINT_EFFECT):
            continue
        if operator == "Exists" and key in (None, "", GPU_TAINT_KEY):
            return True
        if operator == "Equal" and key == GPU_TAINT_KEY and dig(toleration, "value") == GPU_TAINT_VALUE:
            return True
    return False


def _gpu_pods_tolerate_taint(resource_type: str, props: dict[str, Any], _config: Mapping[str, Any]) -> list[str]:
    return [
        f"{template.where}: asks for {GPU_RESOURCE} but does not tolerate the GPU taint "
        f"{GPU_TAINT_KEY}={GPU_TAINT_VALUE}:{GPU_TAINT_EFFECT}; it would never be scheduled"
        for template in pod_templates(resource_type, props)
        if not template.partial and _asks_for_gpus(template) and not _tolerates_gpu_taint(template)
    ]


def _gpu_toleration_needs_gpus(resource_type: str, props: dict[str, Any], _config: Mapping[str, Any]) -> list[str]:
    return [
        f"{template.where}: tolerates the GPU taint but asks for no {GPU_RESOURCE}; "
        "it would hold a GPU node without using its GPUs"
        for template in pod_templates(resource_type, props)
        if not (template.node_agent or template.partial)
        and _tolerates_gpu_taint(template)
        and not _asks_for_gpus(template)
    ]


def _container_rule(
    name: str, description: str, why: str, aspect: str, check: ContainerCheck, **extra: Any
) -> ResourceRule:
    return ResourceRule(
        name=name,
        description=description,
        why=why,
        resource_types=is_kubernetes_type,
        check=over_containers(aspect, check),
        **extra,
    )


REQUIRE_REQUESTS_AND_LIMITS = _container_rule(
    "kubernetes-pods-container-require-requests-limits",
    "Every container sets cpu and memory requests (or only limits, which requests default to) and limits "
    "(a TrainJob's trainer through resourcesPerNode).",
    "Without them one pod starves its neighbours on a node, and the scheduler packs GPU nodes blindly.",
    "resources",
    _requests_and_limits,
)
DISALLOW_ROOT = _container_rule(
    "kubernetes-pods-container-disallow-root",
    "Every container runs as a non-root user (runAsNonRoot or a non-zero runAsUser, its own or its pod's).",
    "A container escape as root owns the node, its GPUs and the node role.",
    "security",
    _non_root,
)
DISALLOW_PRIVILEGED = _container_rule(
    "kubernetes-pods-container-disallow-privileged",
    "No container is privileged or allows privilege escalation (allowPrivilegeEscalation explicitly false).",
    "A privileged container is root on the node; GPUs are exposed by the device plugin, never by privilege.",
    "security",
    _not_privileged,
)
REQUIRE_READ_ONLY_ROOT = _container_rule(
    "kubernetes-pods-container-require-readonly-rootfs",
    "Every container has a read-only root filesystem.",
    "An attacker cannot plant binaries in the image; scratch space is explicit (emptyDir), sized and wiped.",
    "security",
    _read_only_root,
)
REQUIRE_PLATFORM_REGISTRY = _container_rule(
    "kubernetes-pods-container-require-platform-registry",
    "Every image comes from the platform's ECR registry (policy config allowedRegistries).",
    "Only images that were pushed to the platform's registry, and scanned there, run on the cluster.",
    "image",
    _platform_registry,
    config_properties={
        "allowedRegistries": {
            "type": "array",
            "items": {"type": "string"},
            "description": "Image prefixes allowed, e.g. '123456789012.dkr.ecr.us-east-1.amazonaws.com/', or "
            "regular expressions starting with '^' (any account, the platform's repositories only).",
        }
    },
)
REQUIRE_PINNED_IMAGE = _container_rule(
    "kubernetes-pods-container-require-pinned-image",
    "Every image is pinned by digest or a version tag, never ':latest' or no tag.",
    "A run must be reproducible and a rollback must bring back the same bits.",
    "image",
    _pinned_image,
)
GPU_REQUESTS_EQUAL_LIMITS = _container_rule(
    "kubernetes-pods-gpu-require-equal-requests-limits",
    f"A container asking for {GPU_RESOURCE} requests as many as its limit.",
    "GPUs cannot be overcommitted; the device plugin allocates whole GPUs and rejects differing values.",
    "resources",
    _gpus_guaranteed,
)
GPU_PODS_TOLERATE_TAINT = ResourceRule(
    name="kubernetes-pods-gpu-require-taint-toleration",
    description=f"A pod asking for {GPU_RESOURCE} tolerates the GPU node taint.",
    why="GPU nodes are tainted; a GPU pod without the toleration stays Pending forever.",
    resource_types=is_kubernetes_type,
    check=_gpu_pods_tolerate_taint,
)
GPU_TOLERATION_NEEDS_GPUS = ResourceRule(
    name="kubernetes-pods-gpu-toleration-require-gpu-request",
    description=f"A pod tolerating the GPU taint asks for {GPU_RESOURCE} (DaemonSets, i.e. GPU node agents, excepted).",
    why="The taint keeps CPU work off GPU nodes; a tolerating pod without GPUs defeats it and blocks scale-down.",
    resource_types=is_kubernetes_type,
    check=_gpu_toleration_needs_gpus,
)

RULES: list[Rule] = [
    REQUIRE_REQUESTS_AND_LIMITS,
    DISALLOW_ROOT,
    DISALLOW_PRIVILEGED,
    REQUIRE_READ_ONLY_ROOT,
    REQUIRE_PLATFORM_REGISTRY,
    REQUIRE_PINNED_IMAGE,
    GPU_REQUESTS_EQUAL_LIMITS,
    GPU_PODS_TOLERATE_TAINT,
    GPU_TOLERATION_NEEDS_GPUS,
]
