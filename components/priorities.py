"""Who goes first: one ladder of priorities, rendered twice.

Kubernetes PriorityClasses order pods for the kube-scheduler (and let a GPU inference replica preempt a training
pod); Kueue WorkloadPriorityClasses of the same names and values order and preempt whole training jobs in the
GPU queues (a high job evicts a low one, every rank at once). Serving sits above all training.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Any, TypedDict

import pulumi
import pulumi_kubernetes as k8s

from modelplane.terms.scheduling import SERVING_PRIORITY_CLASS

COMPONENT_TYPE = "modelplane:scheduling:PriorityClasses"
KUEUE_API_VERSION = "kueue.x-k8s.io/v1beta2"
PREEMPTION_POLICY = "PreemptLowerPriority"
LABELS = {"app.kubernetes.io/part-of": "modelplane"}
MAX_USER_PRIORITY = 1_000_000_000
"""Kubernetes keeps values above one billion for its own system-cluster-critical and system-node-critical."""


class TrainingPriority(StrEnum):
    """A training job's place in its team's GPU queue."""

    LOW = "low"
    """Runs on what is idle; the first job Kueue preempts."""
    NORMAL = "normal"
    HIGH = "high"
    """Admitted before normal and low jobs, and may preempt low ones in its own team's queue."""


@dataclass(frozen=True)
class PriorityLevel:
    name: str
    """The PriorityClass and the WorkloadPriorityClass name."""
    value: int
    description: str


_TRAINING_CLASSES = {
    TrainingPriority.HIGH: "modelplane-training-high",
    TrainingPriority.NORMAL: "modelplane-training",
    TrainingPriority.LOW: "modelplane-training-low",
}

PRIORITY_LEVELS: tuple[PriorityLevel, ...] = (
    PriorityLevel(
        SERVING_PRIORITY_CLASS,
        100_000,
        "modelplane inference replicas: scheduled before, and may preempt, training pods.",
    ),
    PriorityLevel(
        _TRAINING_CLASSES[TrainingPriority.HIGH],
        10_000,
        "modelplane training jobs of priority high: Kueue admits them first and may preempt low ones.",
    ),
    PriorityLevel(
        _TRAINING_CLASSES[TrainingPriority.NORMAL],
        1_000,
        "modelplane training jobs of priority normal (the default).",
    ),
    PriorityLevel(
        _TRAINING_CLASSES[TrainingPriority.LOW],
        100,
        "modelplane training jobs of priority low: run on idle quota, preempted first.",
    ),
)
"""Highest first. Every value is above 0 (pods without a class) and far below the system classes."""


def training_priority_class(priority: TrainingPriority) -> str:
    """The (Workload)PriorityClass name of a training job's priority."""
    return _TRAINING_CLASSES[TrainingPriority(priority)]


def priority_class_manifests() -> list[dict[str, Any]]:
    """The scheduling.k8s.io/v1 PriorityClasses, none of them the cluster default."""
    return [
        {
            "apiVersion": "scheduling.k8s.io/v1",
            "kind": "PriorityClass",
            "metadata": {"name": level.name, "labels": dict(LABELS)},
            "value": level.value,
            "globalDefault": False,
            "preemptionPolicy": PREEMPTION_POLICY,
            "description": level.description,
        }
        for level in PRIORITY_LEVELS
    ]


def workload_priority_class_manifests() -> list[dict[str, Any]]:
    """Kueue's WorkloadPriorityClasses: the same names and values, for admission order and preemption of jobs."""
    return [
        {
            "apiVersion": KUEUE_API_VERSION,
            "kind": "WorkloadPriorityClass",
            "metadata": {"name": level.name, "labels": dict(LABELS)},
            "value": level.value,
            "description": level.description,
        }
        for level in PRIORITY_LEVELS
    ]


class PriorityClassesArgs(TypedDict):
    """No inputs: the ladder is the platform's, the same in every environment."""


class PriorityClasses(pulumi.ComponentResource):
    """The Kubernetes PriorityClasses of PRIORITY_LEVELS; pass the cluster's Kubernetes provider through opts.

    Pods naming a class are refused until it exists: workloads go in with `depends_on` this component.
    """

    names: pulumi.Output[list[str]]
    """The classes' names, once they exist."""

    def __init__(self, name: str, args: PriorityClassesArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__(COMPONENT_TYPE, name, {}, opts)
        classes = [
            k8s.scheduling.v1.PriorityClass(
                f"{name}-{manifest['metadata']['name'].removeprefix('modelplane-')}",
                metadata=k8s.meta.v1.ObjectMetaArgs(
                    name=manifest["metadata"]["name"], labels=manifest["metadata"]["labels"]
                ),
                value=manifest["value"],
                global_default=manifest["globalDefault"],
                preemption_policy=manifest["preemptionPolicy"],
                description=manifest["description"],
                opts=pulumi.ResourceOptions(parent=self),
            )
            for manifest in priority_class_manifests()
        ]
        names = [level.name for level in PRIORITY_LEVELS]
        # Known before deployment, but resolved through the classes so consumers wait for them.
        self.names = pulumi.Output.all(*(c.id for c in classes)).apply(lambda _: names)
        self.register_outputs({"names": self.names})
