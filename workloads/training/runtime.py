"""Kubeflow Trainer on the cluster: its controller (pinned Helm chart) and modelplane's DeepSpeed runtime.

The runtime's pods run at the `modelplane-training` PriorityClass (components/priorities.py) and Kueue admits
their TrainJobs (components/kueue.py): TrainJobs go in after both.
"""

from __future__ import annotations

from typing import NotRequired, TypedDict

import pulumi
import pulumi_kubernetes as k8s

from modelplane.terms.scheduling import POOL_LABEL, SYSTEM_POOL_NAME
from modelplane.workloads.training.kubernetes import (
    DEFAULT_TERMINATION_GRACE_SECONDS,
    TRAINER_API_VERSION,
    cluster_training_runtime_manifest,
)

CHART = "oci://ghcr.io/kubeflow/charts/kubeflow-trainer"
CHART_VERSION = "2.2.1"
"""Pinned with the `kubeflow-trainer-api` models the tests validate against: TrainJob's API is v1alpha1 and
changes between releases (modelplane renders `runtimePatches` and `activeDeadlineSeconds`, new in 2.2)."""
NAMESPACE = "kubeflow-system"


def trainer_chart_values() -> dict[str, object]:
    # The controller runs on system nodes; JobSet comes with the chart as its dependency.
    return {
        "jobset": {"install": True},
        "manager": {"nodeSelector": {POOL_LABEL: SYSTEM_POOL_NAME}},
    }


class KubeflowTrainerArgs(TypedDict):
    max_restarts: NotRequired[int]
    """Most group restarts any TrainJob gets from the runtime; default 10."""
    termination_grace_seconds: NotRequired[int]
    """Between SIGTERM and SIGKILL, the time every training pod gets to checkpoint: `runtime_grace_seconds` of the
    environment's jobs; default 120."""


class KubeflowTrainer(pulumi.ComponentResource):
    runtime_name: pulumi.Output[str]

    def __init__(self, name: str, args: KubeflowTrainerArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__("modelplane:workloads:KubeflowTrainer", name, {}, opts)
        max_restarts = args.get("max_restarts", 10)
        if max_restarts < 0:
            raise ValueError(f"max_restarts={max_restarts}: must be at least 0")
        grace = args.get("termination_grace_seconds", DEFAULT_TERMINATION_GRACE_SECONDS)
        if grace < 1:
            raise ValueError(f"termination_grace_seconds={grace}: must be at least 1")
        release = k8s.helm.v3.Release(
            f"{name}-controller",
            name="kubeflow-trainer",
            chart=CHART,
            version=CHART_VERSION,
            namespace=NAMESPACE,
            create_namespace=True,
            atomic=True,
            values=trainer_chart_values(),
            opts=pulumi.ResourceOptions(parent=self),
        )
        manifest = cluster_training_runtime_manifest(max_restarts=max_restarts, termination_grace_seconds=grace)
        k8s.apiextensions.CustomResource(
            f"{name}-deepspeed-runtime",
            api_version=TRAINER_API_VERSION,
            kind="ClusterTrainingRuntime",
            metadata=manifest["metadata"],
            spec=manifest["spec"],
            opts=pulumi.ResourceOptions(parent=self, depends_on=[release]),
        )
        self.runtime_name = pulumi.Output.from_input(str(manifest["metadata"]["name"]))
        self.register_outputs({"runtime_name": self.runtime_name})
