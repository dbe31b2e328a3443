"""Pod security rules, after the Kubernetes Pod Security Standards (baseline and restricted), over every pod.

Privileged containers, root and writable root filesystems are in `workloads`; these add the restricted
standard's capabilities and seccomp profile, and the baseline's host namespaces, host paths and host ports.

Node agents: a device plugin must create its socket in the kubelet's device-plugin directory, and a GPU metrics
exporter reads the kubelet's pod-resources socket. A DaemonSet in a node-agent namespace (`NODE_AGENT_NAMESPACES`)
may mount those two directories, and nothing else of the host; every other rule holds for it too. The agents
modelplane installs come from pinned Helm charts, whose pods no rule can read (see `workloads`).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from modelplane.policies.rules.pod_specs import Container, PodTemplate, is_kubernetes_type
from modelplane.policies.rules.props import as_list, dig, is_true, is_unknown
from modelplane.policies.rules.rule import ResourceRule, Rule, Undecided
from modelplane.policies.rules.workloads import effective, left_to_patched, over_containers, over_pods

ADDABLE_CAPABILITIES = frozenset({"NET_BIND_SERVICE"})
"""The only capability the restricted standard lets a container add."""
HOST_NAMESPACES = {"hostNetwork": "network", "hostPID": "process", "hostIPC": "IPC"}
ALLOWED_SECCOMP_PROFILES = frozenset({"RuntimeDefault", "Localhost"})
NODE_AGENT_NAMESPACES = frozenset({"kube-system", "nvidia-device-plugin", "gpu-operator"})
"""Where node agents run: Kubernetes' own, the NVIDIA device plugin chart's and the NVIDIA GPU Operator's."""
NODE_AGENT_HOST_PATHS = ("/var/lib/kubelet/device-plugins", "/var/lib/kubelet/pod-resources")
"""The kubelet's device-plugin socket directory and its pod-resources API socket directory."""


def _capability(name: Any) -> str:
    """A capability as Kubernetes names it: 'SYS_ADMIN' (runtimes also accept 'CAP_SYS_ADMIN')."""
    return str(name).upper().removeprefix("CAP_")


def _capabilities(container: Container, _pod: PodTemplate, _config: Mapping[str, Any]) -> list[str]:
    capabilities = dig(container.spec, "securityContext", "capabilities")
    if is_unknown(capabilities):
        return []
    added, dropped = dig(capabilities, "add"), dig(capabilities, "drop")
    if is_unknown(added) or is_unknown(dropped):
        return []
    problems: list[str] = []
    for field, value in (("add", added), ("drop", dropped)):
        if value is not None and not isinstance(value, list):
            problems.append(Undecided(f"securityContext.capabilities.{field} is not a list of capability names"))
    if problems:
        return problems
    extra = sorted({_capability(c) for c in as_list(added)} - ADDABLE_CAPABILITIES)
    if extra:
        problems.append(
            f"adds capabilities {', '.join(extra)}; add none but NET_BIND_SERVICE "
            "(GPUs come from the device plugin, not from capabilities)"
        )
    if "ALL" not in {_capability(c) for c in as_list(dropped)} and not left_to_patched(container, dropped):
        problems.append("does not drop all capabilities; set securityContext.capabilities.drop [ALL]")
    return problems


def _seccomp(container: Container, pod: PodTemplate, _config: Mapping[str, Any]) -> list[str]:
    profile = effective(container, pod, "seccompProfile")
    kind = dig(profile, "type")
    if is_unknown(profile) or is_unknown(kind) or left_to_patched(container, kind):
        return []
    if isinstance(kind, str) and kind in ALLOWED_SECCOMP_PROFILES:
        return []
    if kind is None:
        return ["has no seccomp profile; set securityContext.seccompProfile.type RuntimeDefault (pod or container)"]
    return [f"seccomp profile {kind!r}; use RuntimeDefault (or a Localhost profile)"]


def _host_ports(container: Container, _pod: PodTemplate, _config: Mapping[str, Any]) -> list[str]:
    return [
        f"ports[{dig(port, 'name') or index}] binds host port {dig(port, 'hostPort')}; "
        "drop hostPort and reach the pod through a Service"
        for index, port in enumerate(as_list(container.spec.get("ports")))
        if not is_unknown(dig(port, "hostPort")) and dig(port, "hostPort") not in (None, 0, 0.0)
    ]


def _host_namespaces(template: PodTemplate, _props: dict[str, Any], _config: Mapping[str, Any]) -> list[str]:
    return [
        f"{template.where}: {field} is true, so the pod shares its node's {namespace} namespace; drop {field}"
        for field, namespace in HOST_NAMESPACES.items()
        if is_true(template.spec.get(field))
    ]


def _within(path: str, directory: str) -> bool:
    path = path.rstrip("/") or "/"
    return path == directory or path.startswith(f"{directory}/")


def _node_agent_mount(template: PodTemplate, props: dict[str, Any], path: Any) -> bool:
    """A node agent's kubelet socket directory (see the module's docstring)."""
    return (
        template.node_agent
        and dig(props, "metadata", "namespace") in NODE_AGENT_NAMESPACES
        and isinstance(path, str)
        and any(_within(path, directory) for directory in NODE_AGENT_HOST_PATHS)
    )


def _host_paths(template: PodTemplate, props: dict[str, Any], _config: Mapping[str, Any]) -> list[str]:
    volumes = template.spec.get("volumes")
    problems = []
    for index, volume in enumerate(as_list(volumes)):
        host_path = dig(volume, "hostPath")
        if host_path is None or is_unknown(host_path):
            continue
        path = dig(host_path, "path")
        if is_unknown(path) or _node_agent_mount(template, props, path):
            continue
        problems.append(
            f"{template.where}.volumes[{dig(volume, 'name') or index}] mounts the node's {path!r} (hostPath); "
            "use an emptyDir, a ConfigMap or a PersistentVolumeClaim"
        )
    return problems


RESTRICT_CAPABILITIES = ResourceRule(
    name="kubernetes-pods-container-restrict-capabilities",
    description="Every container drops ALL capabilities and adds none but NET_BIND_SERVICE.",
    why="Capabilities such as SYS_ADMIN are most of root on the node; the restricted Pod Security Standard "
    "allows none but binding low ports.",
    resource_types=is_kubernetes_type,
    check=over_containers("security", _capabilities),
)
REQUIRE_SECCOMP = ResourceRule(
    name="kubernetes-pods-container-require-seccomp-profile",
    description="Every container runs under the RuntimeDefault (or a Localhost) seccomp profile, its own or its pod's.",
    why="Seccomp blocks the rarely used system calls most container escapes go through.",
    resource_types=is_kubernetes_type,
    check=over_containers("security", _seccomp),
)
DISALLOW_HOST_PORTS = ResourceRule(
    name="kubernetes-pods-container-disallow-host-ports",
    description="No container binds a port on its node (hostPort).",
    why="A host port bypasses Services and network policies and pins the pod to nodes where the port is free.",
    resource_types=is_kubernetes_type,
    check=over_containers("security", _host_ports),
)
DISALLOW_HOST_NAMESPACES = ResourceRule(
    name="kubernetes-pods-pod-disallow-host-namespaces",
    description="No pod shares its node's network, process or IPC namespace (hostNetwork, hostPID, hostIPC).",
    why="A pod in the node's namespaces sees every other pod's traffic and processes, and the node's own services.",
    resource_types=is_kubernetes_type,
    check=over_pods(_host_namespaces),
)
DISALLOW_HOST_PATHS = ResourceRule(
    name="kubernetes-pods-pod-disallow-host-path",
    description="No pod mounts a directory of its node (hostPath), but node agents (DaemonSets in kube-system, "
    "nvidia-device-plugin, gpu-operator) the kubelet's device-plugin and pod-resources sockets.",
    why="A host path gives the pod the node's files: the kubelet's credentials, other pods' volumes, the container "
    "runtime's socket.",
    resource_types=is_kubernetes_type,
    check=over_pods(_host_paths),
)

RULES: list[Rule] = [
    RESTRICT_CAPABILITIES,
    REQUIRE_SECCOMP,
    DISALLOW_HOST_PORTS,
    DISALLOW_HOST_NAMESPACES,
    DISALLOW_HOST_PATHS,
]
