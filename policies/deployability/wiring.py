"""Wiring: what each object names resolves to something the stack runs, so nothing is created only to be ignored.

- monitors: every PrometheusRule, ServiceMonitor, PodMonitor, Probe and ScrapeConfig is selected by a Prometheus the
  plan runs (a kube-prometheus-stack release, or a Prometheus object), by its label and namespace selectors;
- storage: every PersistentVolumeClaim (StatefulSet claim templates and Prometheus/Alertmanager storage included)
  names a storage class the plan creates or EKS provides, falls to a default class the plan marks, or binds a
  PersistentVolume the plan creates;
- identity: every pod that needs AWS runs as a service account with an EKS pod identity association (or an IRSA
  role annotation), and waits for the association: pods started before it get no credentials until restarted;
- images: every image a workload runs comes from an ECR repository the plan manages, or is pinned by digest.

A pod needs AWS when the plan creates its service account with modelplane's label (app.kubernetes.io/part-of:
modelplane: modelplane creates a ServiceAccount only together with its pod identity, for pods that use AWS), or when
one of its containers sets an AWS_* variable or passes an s3:// URI in its command, args or env; unless a container is
handed credentials explicitly (CREDENTIAL_VARIABLES). Unknown values are skipped, never guessed.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from modelplane.policies.deployability.findings import Finding
from modelplane.policies.deployability.graph import (
    KubernetesKind,
    PlanGraph,
    PlannedResource,
    describe,
    has_unknown,
    helm_release,
    inputs,
    kubernetes_kind,
    labels_of,
    metadata,
)
from modelplane.policies.deployability.quantities import as_list, as_mapping, is_unknown, value_at

CHECK = "wiring"

MODELPLANE_LABEL = ("app.kubernetes.io/part-of", "modelplane")
"""The label modelplane puts on what it creates; on a ServiceAccount it marks one whose pods use AWS."""
IRSA_ANNOTATION = "eks.amazonaws.com/role-arn"
CREDENTIAL_VARIABLES = frozenset(
    {
        "AWS_ACCESS_KEY_ID",
        "AWS_WEB_IDENTITY_TOKEN_FILE",
        "AWS_CONTAINER_CREDENTIALS_FULL_URI",
        "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI",
    }
)
"""Variables that hand a container AWS credentials without a pod identity; a pod that sets one has its own."""
EKS_STORAGE_CLASSES = frozenset({"gp2"})
"""Storage classes every EKS cluster has. gp2 is not the default class on clusters created at 1.30 or later."""
DEFAULT_CLASS_ANNOTATION = "storageclass.kubernetes.io/is-default-class"
KUBE_PROMETHEUS_STACK = "kube-prometheus-stack"
MONITORING_GROUP = "monitoring.coreos.com"
MONITOR_SELECTORS = {
    "PrometheusRule": "rule",
    "ServiceMonitor": "serviceMonitor",
    "PodMonitor": "podMonitor",
    "Probe": "probe",
    "ScrapeConfig": "scrapeConfig",
}
"""Monitoring kind -> the prefix of the Prometheus fields that select it: ruleSelector, ruleNamespaceSelector, ..."""

POD_SPEC_PATHS: Mapping[tuple[str, str], tuple[str, ...]] = {
    ("apps", "Deployment"): ("spec", "template", "spec"),
    ("apps", "StatefulSet"): ("spec", "template", "spec"),
    ("apps", "DaemonSet"): ("spec", "template", "spec"),
    ("apps", "ReplicaSet"): ("spec", "template", "spec"),
    ("batch", "Job"): ("spec", "template", "spec"),
    ("batch", "CronJob"): ("spec", "jobTemplate", "spec", "template", "spec"),
    ("", "Pod"): ("spec",),
}
TRAINER_GROUP = "trainer.kubeflow.org"
TRAINING_RUNTIME_KINDS = frozenset({"ClusterTrainingRuntime", "TrainingRuntime"})
TRAINER_STEP_LABEL = "trainer.kubeflow.org/trainjob-ancestor-step"
TRAINER_NODE = "node"
"""Kubeflow Trainer fills each TrainJob's image into the container named `node` of the runtime's trainer job."""

ECR_HOST = re.compile(r"^\d{12}\.dkr\.ecr(-fips)?\.[a-z0-9-]+\.amazonaws\.com(\.cn)?$")
DIGEST = re.compile(r"@sha256:[0-9a-f]{64}$")
REPOSITORY_TYPE = "aws:ecr/repository:Repository"
POD_IDENTITY_TYPE = "aws:eks/podIdentityAssociation:PodIdentityAssociation"
IMAGE_BUILD_TYPE = "docker-build:index:Image"


def _known(value: Any) -> bool:
    return isinstance(value, str) and not is_unknown(value)


# Label selectors


def selector_matches(selector: Any, labels: Any) -> bool | None:
    """Whether a Kubernetes label selector ({} matches everything) matches `labels`; None when that depends on
    something unknown."""
    if is_unknown(selector) or is_unknown(labels):
        return None
    labels = as_mapping(labels)
    match_labels = value_at(selector, "matchLabels")
    expressions = value_at(selector, "matchExpressions")
    if is_unknown(match_labels) or is_unknown(expressions):
        return None
    results: list[bool | None] = []
    for key, value in as_mapping(match_labels).items():
        actual = labels.get(key)
        results.append(None if has_unknown([value, actual]) else actual == value)
    for expression in as_list(expressions):
        key, operator, values = (
            value_at(expression, "key"),
            value_at(expression, "operator"),
            value_at(expression, "values"),
        )
        actual = labels.get(key) if isinstance(key, str) else None
        if has_unknown([key, operator, values, actual]):
            results.append(None)
        elif operator == "In":
            results.append(key in labels and actual in as_list(values))
        elif operator == "NotIn":
            results.append(key not in labels or actual not in as_list(values))
        elif operator == "Exists":
            results.append(key in labels)
        elif operator == "DoesNotExist":
            results.append(key not in labels)
        else:
            results.append(None)
    if any(result is False for result in results):
        return False
    return None if any(result is None for result in results) else True


def _selector_text(selector: Any) -> str:
    match_labels = as_mapping(value_at(selector, "matchLabels"))
    parts = [f"{key}={value}" for key, value in match_labels.items()]
    parts += [str(dict(as_mapping(e))) for e in as_list(value_at(selector, "matchExpressions"))]
    return ", ".join(parts) or "everything"


# Monitors


@dataclass(frozen=True)
class _Selection:
    """How one Prometheus selects one monitoring kind, with what to say when it does not select an object."""

    selector: Any
    """A label selector ({} selects all), None (selects nothing) or unknown."""
    namespaces: Any
    """A namespace selector ({} selects all), None (only `own_namespace`) or unknown."""
    own_namespace: Any
    labels_why: str
    labels_fix: str
    namespaces_why: str
    namespaces_fix: str


def _release_selection(resource: PlannedResource, prefix: str) -> _Selection | None:
    """How a kube-prometheus-stack release's Prometheus selects objects of `prefix`, as the chart renders it: an
    explicit selector when it is non-empty, else `release: <release name>` unless ...SelectorNilUsesHelmValues (true by
    default) is false, else everything; the namespace selector when non-empty, else every namespace."""
    release = helm_release(resource)
    if release is None or release.chart != KUBE_PROMETHEUS_STACK:
        return None
    values, unknown = release.values, "[unknown]"
    enabled = value_at(values, "prometheus", "enabled")
    if enabled is False:
        return None
    if is_unknown(values) or is_unknown(enabled):
        return _Selection(unknown, unknown, None, "", "", "", "")
    name, path = resource.get("name"), "prometheus.prometheusSpec"
    spec = value_at(values, "prometheus", "prometheusSpec")
    explicit = value_at(spec, f"{prefix}Selector")
    nil_uses_helm = value_at(spec, f"{prefix}SelectorNilUsesHelmValues")
    namespaces = value_at(spec, f"{prefix}NamespaceSelector")
    selector: Any
    if is_unknown(explicit) or (isinstance(explicit, Mapping) and explicit):
        selector = explicit
        labels_why = f"{describe(resource)} selects by {path}.{prefix}Selector ({_selector_text(explicit)})"
        labels_fix = f"give it labels that {path}.{prefix}Selector of {name} matches"
    elif is_unknown(nil_uses_helm) or (nil_uses_helm is not False and release.release_name is None):
        selector, labels_why, labels_fix = unknown, "", ""
    elif nil_uses_helm is False:
        selector, labels_why, labels_fix = {}, "", ""
    else:
        selector = {"matchLabels": {"release": release.release_name}}
        labels_why = (
            f"{describe(resource)} selects only objects labelled release={release.release_name} "
            f"({path}.{prefix}SelectorNilUsesHelmValues is true, the chart's default)"
        )
        labels_fix = (
            f"label it release: {release.release_name}, or set {path}.{prefix}SelectorNilUsesHelmValues: false "
            f"in {name}'s values"
        )
    if not is_unknown(namespaces) and not (isinstance(namespaces, Mapping) and namespaces):
        namespaces = {}
    namespaces_why = (
        f"{describe(resource)} looks only in namespaces matching {path}.{prefix}NamespaceSelector "
        f"({_selector_text(namespaces)})"
    )
    namespaces_fix = f"put it in a namespace that {path}.{prefix}NamespaceSelector of {name} matches"
    return _Selection(selector, namespaces, release.namespace, labels_why, labels_fix, namespaces_why, namespaces_fix)


def _object_selection(resource: PlannedResource, prefix: str) -> _Selection | None:
    """How a Prometheus object selects objects of `prefix`: a null selector selects nothing, and a null namespace
    selector only the Prometheus's own namespace."""
    kind = kubernetes_kind(resource)
    if kind is None or (kind.group, kind.kind) != (MONITORING_GROUP, "Prometheus"):
        return None
    spec = value_at(inputs(resource), "spec")
    selector, namespaces = value_at(spec, f"{prefix}Selector"), value_at(spec, f"{prefix}NamespaceSelector")
    own, name = metadata(resource, "namespace"), resource.get("name")
    labels_why = f"{describe(resource)} " + (
        f"selects none (spec.{prefix}Selector is not set)"
        if selector is None
        else f"selects by spec.{prefix}Selector ({_selector_text(selector)})"
    )
    namespaces_why = f"{describe(resource)} looks only in " + (
        f"its own namespace {own}"
        if namespaces is None
        else f"namespaces matching spec.{prefix}NamespaceSelector ({_selector_text(namespaces)})"
    )
    return _Selection(
        selector,
        namespaces,
        own,
        labels_why,
        f"set spec.{prefix}Selector of {name} to match its labels",
        namespaces_why,
        f"set spec.{prefix}NamespaceSelector of {name} to match its namespace",
    )


def _matches_namespace(graph: PlanGraph, selection: _Selection, namespace: Any) -> bool | None:
    if is_unknown(namespace) or is_unknown(selection.namespaces):
        return None
    if selection.namespaces is None:
        own = selection.own_namespace
        return (namespace or "default") == own if _known(own) else None
    if namespace is None:
        return True if selection.namespaces == {} else None
    return selector_matches(selection.namespaces, graph.namespace_labels(namespace))


def _monitor_findings(graph: PlanGraph) -> Iterator[Finding]:
    selections_of: dict[str, list[_Selection]] = {}
    for resource in graph.resources:
        kind = kubernetes_kind(resource)
        if kind is None or kind.group != MONITORING_GROUP or kind.kind not in MONITOR_SELECTORS:
            continue
        prefix = MONITOR_SELECTORS[kind.kind]
        if prefix not in selections_of:
            selections_of[prefix] = [
                s
                for r in graph.resources
                for s in (_release_selection(r, prefix), _object_selection(r, prefix))
                if s is not None
            ]
        selections = selections_of[prefix]
        namespace, labels = metadata(resource, "namespace"), labels_of(resource)
        whys: list[str] = []
        fixes: list[str] = []
        selected: list[bool | None] = []
        for selection in selections:
            by_labels = False if selection.selector is None else selector_matches(selection.selector, labels)
            by_namespace = _matches_namespace(graph, selection, namespace)
            if by_labels is False:
                whys.append(selection.labels_why)
                fixes.append(selection.labels_fix)
            if by_namespace is False:
                whys.append(selection.namespaces_why)
                fixes.append(selection.namespaces_fix)
            selected.append(
                False if False in (by_labels, by_namespace) else None if None in (by_labels, by_namespace) else True
            )
        if any(verdict is not False for verdict in selected):
            continue
        needs = f"a Prometheus that selects it (a {kind.kind} no Prometheus selects is never {_used(kind)})"
        if not selections:
            yield Finding(
                CHECK,
                str(resource["urn"]),
                needs,
                "the plan runs no Prometheus: no kube-prometheus-stack release and no Prometheus object",
                "add kube-prometheus-stack (or a Prometheus object) to the stack",
            )
            continue
        yield Finding(
            CHECK,
            str(resource["urn"]),
            needs,
            "; ".join(whys) + f"; it is in namespace {namespace} with labels {dict(as_mapping(labels))}",
            "; or ".join(fixes),
        )


def _used(kind: KubernetesKind) -> str:
    return "evaluated" if kind.kind == "PrometheusRule" else "scraped"


# Storage


@dataclass(frozen=True)
class _Claim:
    urn: str
    where: str
    namespace: Any
    name: Any
    spec: Any


def _claims(graph: PlanGraph) -> Iterator[_Claim]:
    """Every claim the plan makes: PersistentVolumeClaims, StatefulSet claim templates, and the storage of
    Prometheus and Alertmanager (objects, or kube-prometheus-stack's values)."""
    for resource in graph.resources:
        urn, props = str(resource["urn"]), inputs(resource)
        kind = kubernetes_kind(resource)
        namespace, name = metadata(resource, "namespace"), metadata(resource, "name")
        if kind is not None and (kind.group, kind.kind) == ("", "PersistentVolumeClaim"):
            yield _Claim(urn, "spec", namespace, name, value_at(props, "spec"))
        elif kind is not None and (kind.group, kind.kind) == ("apps", "StatefulSet"):
            for index, template in enumerate(as_list(value_at(props, "spec", "volumeClaimTemplates"))):
                yield _Claim(
                    urn, f"spec.volumeClaimTemplates[{index}].spec", namespace, None, value_at(template, "spec")
                )
        elif kind is not None and (kind.group, kind.kind) in {
            (MONITORING_GROUP, "Prometheus"),
            (MONITORING_GROUP, "Alertmanager"),
        }:
            spec = value_at(props, "spec", "storage", "volumeClaimTemplate", "spec")
            if spec is not None:
                yield _Claim(urn, "spec.storage.volumeClaimTemplate.spec", namespace, None, spec)
        release = helm_release(resource)
        if release is not None and release.chart == KUBE_PROMETHEUS_STACK and not is_unknown(release.values):
            for path in (
                ("prometheus", "prometheusSpec", "storageSpec", "volumeClaimTemplate", "spec"),
                ("alertmanager", "alertmanagerSpec", "storage", "volumeClaimTemplate", "spec"),
            ):
                spec = value_at(release.values, *path)
                if spec is not None:
                    yield _Claim(urn, "values." + ".".join(path), release.namespace, None, spec)


def _storage_findings(graph: PlanGraph) -> Iterator[Finding]:
    classes = [
        r
        for r in graph.resources
        if (k := kubernetes_kind(r)) and (k.group, k.kind) == ("storage.k8s.io", "StorageClass")
    ]
    volumes = [
        r for r in graph.resources if (k := kubernetes_kind(r)) and (k.group, k.kind) == ("", "PersistentVolume")
    ]
    class_names = {metadata(c, "name") for c in classes}
    unknown_classes = any(not _known(name) for name in class_names)
    defaults = [value_at(metadata(c, "annotations"), DEFAULT_CLASS_ANNOTATION) for c in classes]
    has_default = any(d == "true" for d in defaults) or any(is_unknown(d) for d in defaults)
    volume_names = {metadata(v, "name"): v for v in volumes}
    unknown_volumes = any(not _known(name) for name in volume_names)
    known_classes = sorted({n for n in class_names if _known(n)} | EKS_STORAGE_CLASSES)
    for claim in _claims(graph):
        storage_class, volume = value_at(claim.spec, "storageClassName"), value_at(claim.spec, "volumeName")
        if is_unknown(storage_class) or is_unknown(volume) or is_unknown(claim.spec):
            continue
        what = f"{claim.where} of {describe(graph.by_urn[claim.urn])}" if claim.where != "spec" else "the claim"
        if volume:
            pv = volume_names.get(volume)
            if pv is None:
                if not unknown_volumes:
                    yield Finding(
                        CHECK,
                        claim.urn,
                        f"PersistentVolume {volume} for {what} to bind",
                        f"the plan creates no PersistentVolume named {volume}",
                        f"create PersistentVolume {volume} in the stack, or drop volumeName to provision one",
                    )
                continue
            pv_class = value_at(inputs(pv), "spec", "storageClassName") or ""
            if storage_class is not None and not is_unknown(pv_class) and pv_class != storage_class:
                yield Finding(
                    CHECK,
                    claim.urn,
                    f"PersistentVolume {volume} of the same storage class as {what} ({storage_class!r})",
                    f"{volume} has storageClassName {pv_class!r}, so the claim never binds",
                    f"set the same storageClassName on the claim and on PersistentVolume {volume}",
                )
            continue
        if storage_class is None:
            if not has_default:
                yield Finding(
                    CHECK,
                    claim.urn,
                    f"a default StorageClass for {what}, which names none",
                    f'the plan marks no StorageClass {DEFAULT_CLASS_ANNOTATION}: "true", and EKS clusters created '
                    "at 1.30 or later have no default class",
                    f"set storageClassName to one of {', '.join(known_classes)}, or mark a StorageClass default",
                )
        elif storage_class == "":
            static = [
                v
                for v in volumes
                if (value_at(inputs(v), "spec", "storageClassName") or "") == "" or has_unknown(inputs(v))
                if _claim_ref_allows(value_at(inputs(v), "spec", "claimRef"), claim)
            ]
            if not static and not unknown_volumes:
                yield Finding(
                    CHECK,
                    claim.urn,
                    f"a PersistentVolume without a storage class for {what} (storageClassName '' turns off "
                    "provisioning)",
                    "the plan creates no PersistentVolume it could bind",
                    "create the PersistentVolume in the stack and name it in volumeName, or name a storage class",
                )
        elif storage_class not in class_names and storage_class not in EKS_STORAGE_CLASSES and not unknown_classes:
            yield Finding(
                CHECK,
                claim.urn,
                f"storage class {storage_class} for {what}",
                f"the plan creates no StorageClass named {storage_class} and EKS provides only "
                f"{', '.join(sorted(EKS_STORAGE_CLASSES))}",
                f"create StorageClass {storage_class} in the stack, or name one of {', '.join(known_classes)}",
            )


def _claim_ref_allows(claim_ref: Any, claim: _Claim) -> bool:
    if claim_ref is None:
        return True
    if has_unknown(claim_ref):
        return True
    return value_at(claim_ref, "name") == claim.name and value_at(claim_ref, "namespace") in (claim.namespace, None)


# Workloads: pods and images


@dataclass(frozen=True)
class _Pod:
    """A pod a workload runs: its namespace, service account and containers (each as (where, container))."""

    urn: str
    namespace: Any
    service_account: Any
    containers: tuple[tuple[str, Any], ...]


def _containers(where: str, pod: Any) -> list[tuple[str, Any]]:
    return [
        (f"{where}.{key}[{value_at(c, 'name') or index}]", c)
        for key in ("initContainers", "containers", "ephemeralContainers")
        for index, c in enumerate(as_list(value_at(pod, key)))
    ]


def _service_account(pod: Any) -> Any:
    return value_at(pod, "serviceAccountName") or value_at(pod, "serviceAccount")


def _runtime_jobs(resource: PlannedResource) -> list[tuple[str, Any, bool]]:
    """(where, pod spec, is the trainer job) for each replicated job of a training runtime."""
    jobs = []
    for job in as_list(value_at(inputs(resource), "spec", "template", "spec", "replicatedJobs")):
        name = value_at(job, "name")
        trainer = (
            name == TRAINER_NODE or value_at(job, "template", "metadata", "labels", TRAINER_STEP_LABEL) == "trainer"
        )
        where = f"spec.template.spec.replicatedJobs[{name}].template.spec.template.spec"
        jobs.append((where, value_at(job, "template", "spec", "template", "spec"), trainer))
    return jobs


def _runtime_of(graph: PlanGraph, train_job: PlannedResource) -> PlannedResource | None:
    ref = value_at(inputs(train_job), "spec", "runtimeRef")
    name, kind = value_at(ref, "name"), value_at(ref, "kind") or "ClusterTrainingRuntime"
    for resource in graph.resources:
        k = kubernetes_kind(resource)
        if k is None or (k.group, k.kind) != (TRAINER_GROUP, kind) or metadata(resource, "name") != name:
            continue
        if kind == "ClusterTrainingRuntime" or metadata(resource, "namespace") == metadata(train_job, "namespace"):
            return resource
    return None


def _train_job_pods(graph: PlanGraph, resource: PlannedResource) -> list[_Pod]:
    """The trainer pods of a TrainJob: its runtime's trainer pod, with the service account its patches set
    (runtimePatches in Trainer 2.2, podTemplateOverrides in 2.1, podSpecOverrides in 2.0) and its trainer container."""
    spec = value_at(inputs(resource), "spec")
    runtime = _runtime_of(graph, resource)
    runtime_trainer = next((pod for _, pod, trainer in _runtime_jobs(runtime) if trainer), None) if runtime else None
    patches: list[tuple[str, Any]] = []
    for i, patch in enumerate(as_list(value_at(spec, "runtimePatches"))):
        for job in as_list(value_at(patch, "trainingRuntimeSpec", "template", "spec", "replicatedJobs")):
            where = (
                f"spec.runtimePatches[{i}].trainingRuntimeSpec.template.spec.replicatedJobs[{value_at(job, 'name')}]"
            )
            patches.append(
                (where + ".template.spec.template.spec", value_at(job, "template", "spec", "template", "spec"))
            )
    for i, override in enumerate(as_list(value_at(spec, "podTemplateOverrides"))):
        patches.append((f"spec.podTemplateOverrides[{i}].spec", value_at(override, "spec")))
    for i, override in enumerate(as_list(value_at(spec, "podSpecOverrides"))):
        patches.append((f"spec.podSpecOverrides[{i}]", override))
    accounts = [account for _, pod in patches if (account := _service_account(pod)) is not None]
    if accounts:
        account = accounts[-1]
    elif runtime is None and not _known(value_at(spec, "runtimeRef", "name")):
        account = "[unknown]"  # the runtime that would name it is not known
    else:
        account = _service_account(runtime_trainer) or "default"
    trainer = value_at(spec, "trainer")
    image = value_at(trainer, "image")
    if image is None and runtime_trainer is not None:
        image = next(
            (
                value_at(c, "image")
                for c in as_list(value_at(runtime_trainer, "containers"))
                if value_at(c, "name") == TRAINER_NODE
            ),
            None,
        )
    container = {**as_mapping(trainer), "image": image}
    containers = [("spec.trainer", container), *(c for where, pod in patches for c in _containers(where, pod))]
    return [_Pod(str(resource["urn"]), metadata(resource, "namespace"), account, tuple(containers))]


def _pods(graph: PlanGraph) -> Iterator[_Pod]:
    """The pods each workload runs (training runtimes are templates: their pods belong to the TrainJobs)."""
    for resource in graph.resources:
        kind = kubernetes_kind(resource)
        if kind is None:
            continue
        urn, namespace, props = str(resource["urn"]), metadata(resource, "namespace"), inputs(resource)
        path = POD_SPEC_PATHS.get((kind.group, kind.kind))
        pods: list[tuple[str, Any]] = []
        if path is not None:
            pods = [(".".join(path), value_at(props, *path))]
        elif (kind.group, kind.kind) == ("jobset.x-k8s.io", "JobSet"):
            pods = [
                (
                    f"spec.replicatedJobs[{value_at(job, 'name')}].template.spec.template.spec",
                    value_at(job, "template", "spec", "template", "spec"),
                )
                for job in as_list(value_at(props, "spec", "replicatedJobs"))
            ]
        elif (kind.group, kind.kind) == ("kubeflow.org", "PyTorchJob"):
            pods = [
                (f"spec.pytorchReplicaSpecs.{role}.template.spec", value_at(replica, "template", "spec"))
                for role, replica in as_mapping(value_at(props, "spec", "pytorchReplicaSpecs")).items()
            ]
        elif (kind.group, kind.kind) == (TRAINER_GROUP, "TrainJob"):
            yield from _train_job_pods(graph, resource)
            continue
        for where, pod in pods:
            yield _Pod(urn, namespace, _service_account(pod) or "default", tuple(_containers(where, pod)))


def _strings(value: Any) -> Iterator[str]:
    if isinstance(value, str):
        yield value
    elif isinstance(value, Mapping):
        for item in value.values():
            yield from _strings(item)
    elif isinstance(value, Sequence):
        for item in value:
            yield from _strings(item)


def _brings_credentials(pod: _Pod) -> bool:
    """True when a container is given AWS credentials explicitly (keys, a web identity token, a credentials URI)."""
    return any(
        value_at(variable, "name") in CREDENTIAL_VARIABLES
        for _, container in pod.containers
        for variable in as_list(value_at(container, "env"))
    )


def _uses_aws(pod: _Pod) -> str | None:
    """Why the pod's containers need AWS credentials; None when nothing says so."""
    for where, container in pod.containers:
        for variable in as_list(value_at(container, "env")):
            name = value_at(variable, "name")
            if isinstance(name, str) and name.startswith("AWS_"):
                return f"{where} sets {name}"
        for key in ("command", "args", "env"):
            if any("s3://" in text for text in _strings(value_at(container, key))):
                return f"{where} passes an s3:// URI in its {key}"
    return None


def _identity_findings(graph: PlanGraph) -> Iterator[Finding]:
    associations = [r for r in graph.resources if r.get("type") == POD_IDENTITY_TYPE]
    accounts = {
        (metadata(r, "namespace"), metadata(r, "name")): r
        for r in graph.resources
        if (k := kubernetes_kind(r)) and (k.group, k.kind) == ("", "ServiceAccount")
    }
    unknown_associations = any(
        has_unknown([value_at(inputs(a), "namespace"), value_at(inputs(a), "serviceAccount")]) for a in associations
    )
    for pod in _pods(graph):
        if not _known(pod.namespace) or not _known(pod.service_account):
            continue
        account = accounts.get((pod.namespace, pod.service_account))
        labelled = account is not None and value_at(labels_of(account), MODELPLANE_LABEL[0]) == MODELPLANE_LABEL[1]
        reason = _uses_aws(pod) or (
            f"the plan creates service account {pod.service_account} with {MODELPLANE_LABEL[0]}: {MODELPLANE_LABEL[1]}"
            if labelled
            else None
        )
        if reason is None or _brings_credentials(pod):
            continue
        irsa = value_at(metadata(account, "annotations"), IRSA_ANNOTATION) if account is not None else None
        if irsa:
            continue
        matching = [
            a
            for a in associations
            if (value_at(inputs(a), "namespace"), value_at(inputs(a), "serviceAccount"))
            == (pod.namespace, pod.service_account)
        ]
        name = graph.by_urn[pod.urn].get("name")
        if not matching:
            if unknown_associations:
                continue
            yield Finding(
                CHECK,
                pod.urn,
                f"AWS credentials for service account {pod.namespace}/{pod.service_account} ({reason})",
                f"the plan has no EKS pod identity association for {pod.namespace}/{pod.service_account} "
                f"(nor an {IRSA_ANNOTATION} annotation on it)",
                f"add an aws.eks.PodIdentityAssociation with namespace={pod.namespace!r}, "
                f"service_account={pod.service_account!r} and a role that grants what it needs, and make {name} "
                "depend on it",
            )
            continue
        if not any(str(a["urn"]) in graph.waits_for(pod.urn) for a in matching):
            yield Finding(
                CHECK,
                pod.urn,
                f"its pod identity association {describe(matching[0])} in place before its pods start ({reason})",
                "it does not wait for the association, and pods started before it get no AWS credentials until "
                "they are restarted",
                f"add depends_on=[{matching[0].get('name')}] to it or to its parent component",
            )


def _image_findings(graph: PlanGraph) -> Iterator[Finding]:
    repositories = [value_at(inputs(r), "name") for r in graph.resources if r.get("type") == REPOSITORY_TYPE]
    names = {name for name in repositories if _known(name)}
    unknown_names = len(names) < len(repositories)
    hosts = {
        address
        for r in graph.resources
        if r.get("type") == IMAGE_BUILD_TYPE
        for registry in as_list(value_at(inputs(r), "registries"))
        if _known(address := value_at(registry, "address")) and ECR_HOST.match(address)
    }
    images: list[tuple[str, str, Any]] = [
        (pod.urn, where, value_at(container, "image")) for pod in _pods(graph) for where, container in pod.containers
    ]
    for resource in graph.resources:
        kind = kubernetes_kind(resource)
        if kind is not None and kind.group == TRAINER_GROUP and kind.kind in TRAINING_RUNTIME_KINDS:
            for where, pod, trainer in _runtime_jobs(resource):
                images += [
                    (str(resource["urn"]), w, value_at(c, "image"))
                    for w, c in _containers(where, pod)
                    if not (trainer and value_at(c, "name") == TRAINER_NODE)  # each TrainJob sets this one's image
                ]
    for urn, where, image in images:
        if not _known(image) or DIGEST.search(image):
            continue
        host, repository = _registry_and_repository(image)
        in_stack = repository in names and (host in hosts if hosts else bool(ECR_HOST.match(host)))
        if in_stack or (unknown_names and ECR_HOST.match(host)):
            continue
        managed = ", ".join(sorted(names)) or "none"
        yield Finding(
            CHECK,
            urn,
            f"the image of {where} from a repository the stack manages, or pinned by digest",
            f"{image} is neither in one of the plan's ECR repositories ({managed}) nor pinned by @sha256: digest",
            "push the image to an aws.ecr.Repository of the stack and run it from there, or pin it as "
            "image@sha256:<digest>",
        )


def _registry_and_repository(image: str) -> tuple[str, str]:
    """('123456789012.dkr.ecr.us-east-1.amazonaws.com', 'modelplane-prod/server') for an ECR image; Docker Hub's
    host for an image that names no registry."""
    first, _, rest = image.partition("/")
    if rest and ("." in first or ":" in first or first == "localhost"):
        host, path = first, rest
    else:
        host, path = "docker.io", image
    path = path.split("@", 1)[0]
    last = path.rsplit("/", 1)[-1]
    if ":" in last:
        path = path[: len(path) - len(last)] + last.split(":", 1)[0]
    return host, path


def check_wiring(resources: Sequence[PlannedResource]) -> list[Finding]:
    """Monitors no Prometheus selects, claims with no storage behind them, pods that need AWS without an identity
    (or that start before it), and images from outside the stack's repositories that are not pinned by digest."""
    graph = PlanGraph(resources)
    return [
        *_monitor_findings(graph),
        *_storage_findings(graph),
        *_identity_findings(graph),
        *_image_findings(graph),
    ]
