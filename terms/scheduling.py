"""Where workloads land and in what order: the node labels, the GPU taint, the resources, the namespace and the
queue and priority names every layer agrees on."""

from __future__ import annotations

POOL_LABEL = "modelplane.io/pool"
"""Every node carries its pool's name here; workloads select their pool by it."""
GPU_MODEL_LABEL = "modelplane.io/gpu-model"
GPU_PRESENT_LABEL = "nvidia.com/gpu.present"
EFA_LABEL = "modelplane.io/efa"
"""Set to "true" on the nodes of EFA pools: the EFA device plugin runs there and nowhere else."""
SYSTEM_POOL_NAME = "system"
"""The pool of the platform's own controllers (and of CPU-only services)."""

GPU_TAINT_KEY = "nvidia.com/gpu"
GPU_TAINT_VALUE = "true"
GPU_TAINT_EFFECT = "NoSchedule"
"""The Kubernetes spelling, for tolerations; EKS's API spells it NO_SCHEDULE."""
EKS_GPU_TAINT_EFFECT = "NO_SCHEDULE"

NODE_RESERVED_VCPUS = 2
NODE_RESERVED_MEMORY_FRACTION = 0.1
"""Left on every node to the kubelet, system daemons and device plugins; a pod may ask for the rest."""

WORKLOAD_NAMESPACE = "ml"
"""Namespace of training jobs, inference services and their data volumes."""


def gpu_toleration() -> dict[str, str]:
    """The toleration (Kubernetes spelling) GPU workloads need for the GPU taint."""
    return {"key": GPU_TAINT_KEY, "operator": "Equal", "value": GPU_TAINT_VALUE, "effect": GPU_TAINT_EFFECT}


GPU_RESOURCE = "nvidia.com/gpu"
"""The extended resource the NVIDIA device plugin advertises: what pods request and what team quotas count."""
EFA_RESOURCE = "vpc.amazonaws.com/efa"
"""The extended resource the EFA device plugin advertises, one per EFA interface."""

SERVING_PRIORITY_CLASS = "modelplane-serving"
"""PriorityClass of GPU inference replicas: above every training class (values in components/priorities.py)."""
QUEUE_NAME_LABEL = "kueue.x-k8s.io/queue-name"
"""On a job: the LocalQueue (in the job's namespace) Kueue admits it from."""
WORKLOAD_PRIORITY_LABEL = "kueue.x-k8s.io/priority-class"
"""On a job: the WorkloadPriorityClass Kueue orders and preempts it by."""
DO_NOT_DISRUPT_ANNOTATION = "karpenter.sh/do-not-disrupt"
"""On a pod, "true": Karpenter picks its node for no voluntary disruption (consolidation, drift) while it runs;
forceful ones (expiry, spot interruption) still happen."""
