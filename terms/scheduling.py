"""Where workloads land: the node labels, the GPU taint and the namespace every layer agrees on."""

from __future__ import annotations

POOL_LABEL = "modelplane.io/pool"
"""Every node carries its pool's name here; workloads select their pool by it."""
GPU_MODEL_LABEL = "modelplane.io/gpu-model"
GPU_PRESENT_LABEL = "nvidia.com/gpu.present"
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
