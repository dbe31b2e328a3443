"""The NVIDIA device plugin: advertises each node's GPUs to the scheduler as `nvidia.com/gpu`.

Without it no pod can request a GPU, so every GPU node sits idle.
"""

from __future__ import annotations

from typing import Any, NotRequired, TypedDict

import pulumi
import pulumi_kubernetes as k8s

from modelplane.terms.names import is_dns_label
from modelplane.terms.scheduling import GPU_PRESENT_LABEL, GPU_TAINT_EFFECT, GPU_TAINT_KEY

COMPONENT_TYPE = "modelplane:gpu:NvidiaDevicePlugin"
CHART_NAME = "nvidia-device-plugin"
CHART_REPOSITORY = "https://nvidia.github.io/k8s-device-plugin"
CHART_VERSION = "0.17.1"
"""Pinned so a chart release never changes the cluster without a reviewed commit."""
DEFAULT_NAMESPACE = "nvidia-device-plugin"


class NvidiaDevicePluginArgs(TypedDict):
    gpu_feature_discovery: NotRequired[bool]
    """Also run GPU Feature Discovery (labels nodes with GPU model, memory, driver); default False."""
    namespace: NotRequired[str]
    """Namespace of the release, created if absent; default "nvidia-device-plugin"."""


def device_plugin_values(gpu_feature_discovery: bool = False) -> dict[str, Any]:
    """Helm values for the chart: run on every GPU node, tainted or not, ahead of ordinary pods."""
    return {
        # GPU nodes carry this taint; a plugin that cannot tolerate it leaves every GPU unusable.
        # Exists rather than Equal: the plugin must run whatever value a node's GPU taint carries.
        "tolerations": [{"key": GPU_TAINT_KEY, "operator": "Exists", "effect": GPU_TAINT_EFFECT}],
        "nodeSelector": {GPU_PRESENT_LABEL: "true"},
        # Evicting the plugin under node pressure would withdraw the node's GPUs from the scheduler.
        "priorityClassName": "system-node-critical",
        "gfd": {"enabled": gpu_feature_discovery},
        # Node Feature Discovery comes with GFD only; nothing else here needs it.
        "nfd": {"enabled": gpu_feature_discovery},
    }


class NvidiaDevicePlugin(pulumi.ComponentResource):
    """A pinned Helm release of the NVIDIA device plugin; pass the cluster's Kubernetes provider through opts."""

    namespace: pulumi.Output[str]
    """Namespace the plugin runs in, once the release is deployed."""
    release_name: pulumi.Output[str]

    def __init__(self, name: str, args: NvidiaDevicePluginArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__(COMPONENT_TYPE, name, {}, opts)
        gpu_feature_discovery = args.get("gpu_feature_discovery", False)
        if not isinstance(gpu_feature_discovery, bool):
            raise ValueError(f"gpu_feature_discovery={gpu_feature_discovery!r}: must be True or False")
        namespace = args.get("namespace", DEFAULT_NAMESPACE)
        if not is_dns_label(namespace):
            raise ValueError(
                f"namespace={namespace!r}: must be a DNS label (lowercase, digits, -), e.g. {DEFAULT_NAMESPACE!r}"
            )

        release = k8s.helm.v3.Release(
            f"{name}-release",
            # A fixed release name keeps the DaemonSet's name stable and readable.
            name=CHART_NAME,
            chart=CHART_NAME,
            version=CHART_VERSION,
            repository_opts=k8s.helm.v3.RepositoryOptsArgs(repo=CHART_REPOSITORY),
            namespace=namespace,
            create_namespace=True,
            values=device_plugin_values(gpu_feature_discovery),
            # A failed upgrade rolls back instead of leaving GPU nodes without a plugin.
            atomic=True,
            opts=pulumi.ResourceOptions(parent=self),
        )
        # Known before deployment, but resolved through the release so consumers wait for the plugin.
        self.namespace = release.id.apply(lambda _: namespace)
        self.release_name = release.id.apply(lambda _: CHART_NAME)
        self.register_outputs({"namespace": self.namespace, "release_name": self.release_name})
