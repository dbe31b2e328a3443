"""The AWS EFA device plugin: advertises each EFA node's interfaces to the scheduler as `vpc.amazonaws.com/efa`.

Without it no node advertises the resource, and a multi-node training pod that requests EFA stays Pending.
"""

from __future__ import annotations

from typing import Any, TypedDict

import pulumi
import pulumi_kubernetes as k8s

from modelplane.terms.scheduling import EFA_LABEL, GPU_TAINT_EFFECT, GPU_TAINT_KEY

COMPONENT_TYPE = "modelplane:gpu:EfaDevicePlugin"
CHART_NAME = "aws-efa-k8s-device-plugin"
CHART_REPOSITORY = "https://aws.github.io/eks-charts"
CHART_VERSION = "v0.5.30"
"""Pinned (the chart's versions carry the `v`); aws/eks-charts stable/aws-efa-k8s-device-plugin."""
NAMESPACE = "kube-system"


class EfaDevicePluginArgs(TypedDict):
    """No settings: the plugin runs on every node labelled `modelplane.io/efa=true`, in kube-system."""


def efa_device_plugin_values() -> dict[str, Any]:
    """Helm values: run on EFA nodes only, tolerating the GPU taint they carry, ahead of ordinary pods."""
    return {
        "tolerations": [{"key": GPU_TAINT_KEY, "operator": "Exists", "effect": GPU_TAINT_EFFECT}],
        "nodeSelector": {EFA_LABEL: "true"},
        # Evicting the plugin under node pressure would withdraw the node's interfaces from the scheduler.
        "priorityClassName": "system-node-critical",
    }


class EfaDevicePlugin(pulumi.ComponentResource):
    """A pinned Helm release of the EFA device plugin; pass the cluster's Kubernetes provider through opts."""

    release_name: pulumi.Output[str]

    def __init__(self, name: str, args: EfaDevicePluginArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__(COMPONENT_TYPE, name, {}, opts)
        release = k8s.helm.v3.Release(
            f"{name}-release",
            name=CHART_NAME,
            chart=CHART_NAME,
            version=CHART_VERSION,
            repository_opts=k8s.helm.v3.RepositoryOptsArgs(repo=CHART_REPOSITORY),
            namespace=NAMESPACE,
            values=efa_device_plugin_values(),
            atomic=True,
            opts=pulumi.ResourceOptions(parent=self),
        )
        self.release_name = release.id.apply(lambda _: CHART_NAME)
        self.register_outputs({"release_name": self.release_name})
