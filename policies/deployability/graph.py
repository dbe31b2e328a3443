"""The planned resources as a graph the order and wiring checks read: what each resource waits for, which are
Kubernetes objects (and of what group, kind and scope), which are Helm releases, and which values are not yet known.

A resource waits for its dependencies, for everything its ancestors depend on, and, when it depends on a component,
for everything in that component; waiting is transitive. Values the engine cannot know yet ("[unknown]") or may not
show ("[secret]") are reported as unknown, so a check can skip them rather than guess.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from functools import cached_property
from typing import Any

from modelplane.policies.deployability.findings import field
from modelplane.policies.deployability.quantities import as_list, as_mapping, chart_name, is_unknown, value_at

PlannedResource = Mapping[str, Any]
"""One resource as plan.json records it: urn, type, name, parent, custom, provider, inputs, dependencies."""

PULUMI_KUBERNETES_MODULES = frozenset({"helm.sh", "yaml", "yaml/v2", "kustomize", "kustomize/v2"})
"""Modules of pulumi-kubernetes that are Pulumi's own resources (releases, charts, YAML groups), not API objects."""

HELM_RELEASE_TYPES = frozenset({"kubernetes:helm.sh/v3:Release", "kubernetes:helm.sh/v4:Chart"})
NAMESPACE_TYPE = "kubernetes:core/v1:Namespace"
CRD_TYPES = frozenset(
    {
        "kubernetes:apiextensions.k8s.io/v1:CustomResourceDefinition",
        "kubernetes:apiextensions.k8s.io/v1beta1:CustomResourceDefinition",
    }
)


def has_unknown(value: Any) -> bool:
    """True when `value` or anything inside it is unknown."""
    if isinstance(value, Mapping):
        return any(has_unknown(item) for item in value.values())
    if isinstance(value, Sequence) and not isinstance(value, str):
        return any(has_unknown(item) for item in value)
    return is_unknown(value)


def inputs(resource: PlannedResource) -> Mapping[str, Any]:
    return as_mapping(resource.get("inputs"))


def describe(resource: PlannedResource) -> str:
    return f"{resource.get('type')} {resource.get('name')}"


@dataclass(frozen=True)
class KubernetesKind:
    group: str
    """The API group; '' for the core group."""
    version: str
    kind: str

    @property
    def api_version(self) -> str:
        return f"{self.group}/{self.version}" if self.group else self.version


def kubernetes_kind(resource: PlannedResource) -> KubernetesKind | None:
    """The group, version and kind of a Kubernetes API object (from its apiVersion and kind inputs when known, else
    from its type); None for anything else, including Helm releases, charts and YAML groups."""
    type_ = str(resource.get("type", ""))
    parts = type_.split(":")
    if len(parts) != 3 or parts[0] != "kubernetes" or parts[1] in PULUMI_KUBERNETES_MODULES:
        return None
    group, _, version = parts[1].rpartition("/")
    kind = parts[2]
    api_version, input_kind = field(inputs(resource), "apiVersion"), field(inputs(resource), "kind")
    if isinstance(api_version, str) and not is_unknown(api_version):
        group, _, version = api_version.rpartition("/")
    if isinstance(input_kind, str) and not is_unknown(input_kind):
        kind = input_kind
    return KubernetesKind("" if group == "core" else group, version, kind)


def metadata(resource: PlannedResource, key: str) -> Any:
    return value_at(inputs(resource), "metadata", key)


def labels_of(resource: PlannedResource) -> Any:
    """The object's labels ({} when none); unknown as is."""
    labels = metadata(resource, "labels")
    return {} if labels is None else labels


@dataclass(frozen=True)
class HelmRelease:
    urn: str
    resource_name: str
    chart: str | None
    """The chart's name; None when not known."""
    release_name: str | None
    """Helm's release name, which charts put in labels (`release: <name>`); None when not known."""
    namespace: str | None
    """None when not set (the provider's default) or not known."""
    create_namespace: bool
    skip_crds: bool | None
    values: Any


def helm_release(resource: PlannedResource) -> HelmRelease | None:
    """A Helm v3 Release or a v4 Chart, as the order and wiring checks need it; None for anything else."""
    if resource.get("type") not in HELM_RELEASE_TYPES:
        return None
    props = inputs(resource)
    chart = field(props, "chart")
    name = field(props, "name")
    if name is None and resource.get("type") == "kubernetes:helm.sh/v4:Chart":
        name = resource.get("name")  # a v4 Chart's release name defaults to the resource's name
    namespace = field(props, "namespace")
    skip_crds = field(props, "skipCrds")
    values = field(props, "values")
    return HelmRelease(
        urn=str(resource.get("urn")),
        resource_name=str(resource.get("name")),
        chart=chart_name(chart),
        release_name=name if isinstance(name, str) and not is_unknown(name) else None,
        namespace=namespace if isinstance(namespace, str) and not is_unknown(namespace) else None,
        create_namespace=field(props, "createNamespace") is True,
        skip_crds=None if is_unknown(skip_crds) else skip_crds is True,
        values={} if values is None else values,
    )


class PlanGraph:
    """The planned resources with their parents, children and dependencies, for 'does A wait for B'."""

    def __init__(self, resources: Iterable[PlannedResource]):
        self.resources: list[PlannedResource] = list(resources)
        self.by_urn: dict[str, PlannedResource] = {str(r.get("urn")): r for r in self.resources}
        self._children: defaultdict[str, list[str]] = defaultdict(list)
        for resource in self.resources:
            parent = resource.get("parent")
            if parent in self.by_urn:
                self._children[str(parent)].append(str(resource.get("urn")))
        self._waits: dict[str, frozenset[str]] = {}
        self._direct: dict[str, frozenset[str]] = {}

    def ancestors(self, urn: str) -> list[str]:
        found: list[str] = []
        parent = self.by_urn.get(urn, {}).get("parent")
        while parent in self.by_urn and parent not in found:
            found.append(str(parent))
            parent = self.by_urn[str(parent)].get("parent")
        return found

    def descendants(self, urn: str) -> list[str]:
        found: list[str] = []
        stack = list(self._children.get(urn, []))
        while stack:
            child = stack.pop()
            if child not in found:
                found.append(child)
                stack.extend(self._children.get(child, []))
        return found

    def _direct_waits(self, urn: str) -> frozenset[str]:
        """What `urn` itself waits for: its dependencies and its ancestors' dependencies, and for each of those
        that is a component, everything inside it."""
        if urn not in self._direct:
            waits: set[str] = set()
            for holder in (urn, *self.ancestors(urn)):
                for dependency in as_list(self.by_urn.get(holder, {}).get("dependencies")):
                    waits.add(str(dependency))
                    if not self.by_urn.get(str(dependency), {}).get("custom", True):
                        waits.update(self.descendants(str(dependency)))
            self._direct[urn] = frozenset(waits)
        return self._direct[urn]

    def waits_for(self, urn: str) -> frozenset[str]:
        """Every resource that is created before `urn`: its wait set, closed over waiting."""
        if urn not in self._waits:
            seen: set[str] = set()
            stack = list(self._direct_waits(urn))
            while stack:
                current = stack.pop()
                if current in seen or current == urn:
                    continue
                seen.add(current)
                stack.extend(self._direct_waits(current) - seen)
            self._waits[urn] = frozenset(seen)
        return self._waits[urn]

    @cached_property
    def helm_releases(self) -> list[HelmRelease]:
        return [release for release in map(helm_release, self.resources) if release is not None]

    @cached_property
    def namespaces(self) -> dict[str, PlannedResource]:
        """The Namespace resources the plan creates, by name (those whose name is known)."""
        found: dict[str, PlannedResource] = {}
        for resource in self.resources:
            name = metadata(resource, "name")
            if resource.get("type") == NAMESPACE_TYPE and isinstance(name, str) and not is_unknown(name):
                found.setdefault(name, resource)
        return found

    @cached_property
    def unknown_namespace_names(self) -> bool:
        """True when some Namespace the plan creates has a name not yet known."""
        names = [metadata(r, "name") for r in self.resources if r.get("type") == NAMESPACE_TYPE]
        return any(not isinstance(name, str) or is_unknown(name) for name in names)

    def namespace_labels(self, namespace: str) -> Any:
        """The labels a namespace will carry: those the plan gives it, and the API server's
        kubernetes.io/metadata.name; unknown when the plan's labels are."""
        labels: Any = {}
        if namespace in self.namespaces:
            labels = labels_of(self.namespaces[namespace])
        if is_unknown(labels):
            return labels
        return {**as_mapping(labels), "kubernetes.io/metadata.name": namespace}
