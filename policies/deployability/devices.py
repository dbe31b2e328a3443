"""Every extended resource a pod asks for is advertised on the nodes it can land on.

A node offers nvidia.com/gpu only where the NVIDIA device plugin runs (or its image ships one: Bottlerocket's NVIDIA
variants, EKS Auto Mode), and vpc.amazonaws.com/efa only where the EFA device plugin runs; elsewhere a pod asking
for them stays Pending however many GPUs the instance has. So for each such pod: some device plugin for the
resource must exist, and must run (by its nodeSelector, affinity and tolerations) on at least one node shape the
pod can be scheduled on whose hardware has the device. Hardware without the device, and pods that fit no node at
all, are the fit check's to report.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from modelplane.policies.deployability.cluster_model import (
    ClusterModel,
    DevicePlugin,
    NodeShape,
    PodTemplate,
    cluster_model,
    scheduling_reasons,
)
from modelplane.policies.deployability.findings import Finding
from modelplane.policies.deployability.placement import Refusal, Verdict, any_of
from modelplane.terms.scheduling import EFA_RESOURCE, GPU_RESOURCE

CHECK = "devices"
PLUGIN_CHARTS = {
    GPU_RESOURCE: "the nvidia-device-plugin chart (https://nvidia.github.io/k8s-device-plugin)",
    EFA_RESOURCE: "the aws-efa-k8s-device-plugin chart (https://aws.github.io/eks-charts)",
}
"""The extended resources this check knows the device plugins of, and where to get each."""


def advertised(resource: str, shape: NodeShape, plugins: Sequence[DevicePlugin]) -> tuple[Verdict, list[str]]:
    """Whether `resource` is advertised on `shape`'s nodes, and why each plugin is not there where it is not."""
    builtin: Verdict = resource in shape.offer.builtin_resources and shape.hardware_has(resource)
    verdicts: list[Verdict] = [builtin]
    reasons: list[str] = []
    for plugin in plugins:
        verdict, refusals = plugin.reasons_against(shape)
        verdicts.append(verdict)
        if verdict is False:
            reasons.append(f"{plugin.name} does not run there ({', '.join(r.text for r in refusals)})")
    return any_of(verdicts), reasons


def _plugin_fix(plugins: Sequence[DevicePlugin], refusals: Sequence[Refusal], shape: NodeShape) -> str:
    names = ", ".join(p.name for p in plugins)
    kinds = {r.kind for r in refusals}
    fixes = []
    if "labels" in kinds:
        fixes.append(
            f"make {names}'s nodeSelector/affinity match the labels of {shape.offer.describe()}, "
            "or give that pool the labels the plugin selects"
        )
    if "taints" in kinds:
        taints = ", ".join(sorted({r.subject for r in refusals if r.kind == "taints"}))
        fixes.append(f"add a toleration for {taints} to {names}'s tolerations")
    return "; and ".join(fixes) or f"run {names} on the nodes of {shape.offer.describe()}"


def pod_device_findings(pod: PodTemplate, model: ClusterModel) -> list[Finding]:
    """Findings for one workload: a device it asks for that nothing advertises where it can land."""
    findings = []
    for resource, amount in sorted(pod.extended_resources().items()):
        if resource not in PLUGIN_CHARTS:
            continue
        plugins = [p for p in model.plugins if p.resource == resource]
        builtin = [o for o in model.offers if resource in o.builtin_resources]
        if not plugins and not builtin:
            findings.append(
                Finding(
                    CHECK,
                    pod.urn,
                    needs=f"{amount:g} {resource} for each pod of {pod.describe()}",
                    missing=f"nothing in the plan advertises {resource}: no device plugin (Helm release or DaemonSet) "
                    "and no node image that ships one",
                    fix=f"deploy {PLUGIN_CHARTS[resource]} with a nodeSelector and tolerations that match the nodes "
                    f"{pod.describe()} runs on",
                )
            )
            continue
        landing = [
            shape
            for shape in model.candidates(pod)
            if scheduling_reasons(pod, shape)[0] is not False and shape.hardware_has(resource) is not False
        ]
        if not landing:
            continue
        rows = [(shape, *advertised(resource, shape, plugins)) for shape in landing]
        if any(verdict is not False for _, verdict, _ in rows):
            continue
        shape = landing[0]
        refusals = [r for p in plugins for r in p.reasons_against(shape)[1]]
        where = "; ".join(f"{shape.describe()}: {', '.join(reasons)}" for shape, _, reasons in rows)
        findings.append(
            Finding(
                CHECK,
                pod.urn,
                needs=f"{amount:g} {resource} for each pod of {pod.describe()}, advertised on the nodes it lands on",
                missing=f"no device plugin for {resource} runs on those nodes: {where}",
                fix=_plugin_fix(plugins, refusals, shape),
            )
        )
    return findings


def check_devices(resources: Sequence[Mapping[str, Any]]) -> list[Finding]:
    """Every GPU and EFA request is advertised by a device plugin on nodes where the pod can land."""
    model = cluster_model(resources)
    return [finding for pod in model.pods for finding in pod_device_findings(pod, model)]
