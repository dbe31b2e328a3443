"""How an InferenceServiceSpec becomes Kubernetes objects and an IAM policy: plain functions.

Each renderer returns the object as `kubectl apply` would take it (tested with kubernetes-validate);
the `InferenceService` component hands its `metadata` and `spec` to the typed pulumi_kubernetes resource.

One Service fronts both tracks: it selects the service label, while each Deployment selects its track
(`modelplane.io/track: stable|canary`), so a canary takes requests in proportion to its ready pods.
"""

from __future__ import annotations

import math
from typing import Any

from modelplane.components.prometheus_rule import ScrapeEndpoint, service_monitor_spec
from modelplane.terms.scheduling import (
    GPU_PRESENT_LABEL,
    GPU_RESOURCE,
    POOL_LABEL,
    SERVING_PRIORITY_CLASS,
    SYSTEM_POOL_NAME,
    gpu_toleration,
)
from modelplane.workloads.serving.server.metrics import REQUESTS_IN_FLIGHT
from modelplane.workloads.serving.spec import (
    Accelerator,
    InferenceServiceSpec,
    ScalingMetric,
    canary_replicas,
    cpu_cores,
)
from modelplane.workloads.training.kubernetes import NON_ROOT_UID, artifact_uri

SERVER_CONTAINER = "server"
HTTP_PORT = 8080
HTTP_PORT_NAME = "http"
SERVICE_PORT = 80
SERVICE_LABEL = "modelplane.io/inference-service"
TRACK_LABEL = "modelplane.io/track"
"""Copied onto every scraped series as `modelplane_io_track` (podTargetLabels), which the canary's rules select."""
STABLE = "stable"
CANARY = "canary"
LIVE_PATH = "/v2/health/live"
READY_PATH = "/v2/health/ready"
METRICS_PATH = "/metrics"
MODEL_CACHE_DIR = "/var/cache/modelplane/models"
PRESTOP_SLEEP_SECONDS = 10
"""Time for kube-proxy and every client's endpoint list to drop a terminating pod before it stops accepting."""
GRACE_MARGIN_SECONDS = 5
STARTUP_SECONDS = 600
"""How long a replica may take to download, load and warm up its model before the kubelet restarts it."""


def service_labels(spec: InferenceServiceSpec) -> dict[str, str]:
    """Labels of every object of the service; the Service, PDB and ServiceMonitor select `SERVICE_LABEL`."""
    return {
        SERVICE_LABEL: spec.name,
        "app.kubernetes.io/name": spec.name,
        "app.kubernetes.io/part-of": "modelplane",
        "app.kubernetes.io/component": "inference",
    }


def track_selector(spec: InferenceServiceSpec, track: str) -> dict[str, str]:
    return {SERVICE_LABEL: spec.name, TRACK_LABEL: track}


def deployment_name(spec: InferenceServiceSpec, track: str) -> str:
    return spec.name if track == STABLE else f"{spec.name}-{track}"


def termination_grace_seconds(spec: InferenceServiceSpec) -> int:
    """The preStop sleep, then the server's drain of every accepted request, then a margin before SIGKILL."""
    return PRESTOP_SLEEP_SECONDS + spec.drain_seconds + GRACE_MARGIN_SECONDS


def server_arguments(
    spec: InferenceServiceSpec, artifact_root: str, port: int, *, model: str | None = None
) -> list[str]:
    """Arguments of `python -m modelplane.workloads.serving.server` for this service, in the cluster and locally
    (see workloads/serving/config.py); `model` replaces `spec.model` (the canary's)."""
    return [
        "--model-uri", artifact_uri(model or spec.model, artifact_root),
        "--model-name", spec.served_model_name,
        "--port", str(port),
        "--max-batch-size", str(spec.batching.max_batch_size),
        "--max-queue-size", str(spec.batching.max_queue_size),
        "--max-text-chars", str(spec.limits.max_text_chars),
        "--max-body-bytes", str(spec.limits.max_body_bytes),
        "--header-timeout-seconds", f"{spec.limits.header_timeout_seconds:g}",
        "--body-timeout-seconds", f"{spec.limits.body_timeout_seconds:g}",
        "--request-timeout-seconds", f"{spec.limits.request_timeout_seconds:g}",
        "--shutdown-timeout-seconds", str(spec.drain_seconds),
    ]  # fmt: skip


def cluster_arguments(spec: InferenceServiceSpec) -> list[str]:
    """What differs in a pod: every interface, the model cache's emptyDir, and the device named outright
    (a GPU replica that cannot see its GPU fails at start instead of serving slowly from the CPU)."""
    device = "cuda" if spec.accelerator is Accelerator.GPU else "cpu"
    return ["--host", "0.0.0.0", "--model-cache-dir", MODEL_CACHE_DIR, "--device", device]


def server_environment(spec: InferenceServiceSpec) -> list[dict[str, str]]:
    env = {"HF_HOME": "/tmp/hf", "HF_HUB_OFFLINE": "1", "PYTHONUNBUFFERED": "1"}
    if spec.accelerator is Accelerator.CPU:
        # torch sizes its thread pool by the node's cores, not the container's CPU limit.
        env["OMP_NUM_THREADS"] = str(max(1, math.floor(cpu_cores(spec.resources.cpu))))
    env.update(spec.env)
    return [{"name": key, "value": value} for key, value in env.items()]


def container_resources(spec: InferenceServiceSpec) -> dict[str, dict[str, str]]:
    """Requests equal limits (guaranteed QoS: evicted last, never throttled below its request); one GPU on GPUs."""
    resources = {"cpu": spec.resources.cpu, "memory": spec.resources.memory}
    if spec.accelerator is Accelerator.GPU:
        resources[GPU_RESOURCE] = "1"
    return {"requests": dict(resources), "limits": dict(resources)}


def container_security_context() -> dict[str, Any]:
    return {
        "runAsNonRoot": True,
        "runAsUser": NON_ROOT_UID,
        "runAsGroup": NON_ROOT_UID,
        "allowPrivilegeEscalation": False,
        "readOnlyRootFilesystem": True,
        "privileged": False,
        "capabilities": {"drop": ["ALL"]},
        "seccompProfile": {"type": "RuntimeDefault"},
    }


def pod_security_context() -> dict[str, Any]:
    return {
        "runAsNonRoot": True,
        "runAsUser": NON_ROOT_UID,
        "runAsGroup": NON_ROOT_UID,
        "fsGroup": NON_ROOT_UID,
        "seccompProfile": {"type": "RuntimeDefault"},
    }


def probes() -> dict[str, dict[str, Any]]:
    """Startup waits for the model (the server listens only once it is loaded); readiness takes a replica out
    of the Service the moment it starts draining; liveness restarts a hung server."""

    def http_get(path: str) -> dict[str, Any]:
        return {"path": path, "port": HTTP_PORT_NAME, "scheme": "HTTP"}

    period = 5
    return {
        "startupProbe": {
            "httpGet": http_get(LIVE_PATH),
            "periodSeconds": period,
            "timeoutSeconds": 2,
            "failureThreshold": STARTUP_SECONDS // period,
        },
        "readinessProbe": {
            "httpGet": http_get(READY_PATH),
            "periodSeconds": period,
            "timeoutSeconds": 2,
            "failureThreshold": 2,
            "successThreshold": 1,
        },
        "livenessProbe": {
            "httpGet": http_get(LIVE_PATH),
            "periodSeconds": 10,
            "timeoutSeconds": 5,
            "failureThreshold": 3,
        },
    }


def pod_volumes(spec: InferenceServiceSpec) -> list[dict[str, Any]]:
    # The root filesystem is read-only: the model download and Python's scratch files get their own emptyDirs.
    return [
        {"name": "model-cache", "emptyDir": {"sizeLimit": spec.resources.model_cache}},
        {"name": "tmp", "emptyDir": {"sizeLimit": "1Gi"}},
    ]


def volume_mounts() -> list[dict[str, Any]]:
    return [
        {"name": "model-cache", "mountPath": MODEL_CACHE_DIR},
        {"name": "tmp", "mountPath": "/tmp"},
    ]


def placement(spec: InferenceServiceSpec) -> dict[str, Any]:
    """GPU replicas on their pool's nodes, tolerating the GPU taint, at serving priority: placed before training
    pods and, when a pool is full, preempting them. CPU replicas on the untainted system nodes, at no priority
    (there they would preempt the platform's own controllers)."""
    if spec.accelerator is Accelerator.GPU:
        assert spec.gpu_pool is not None, "spec_problems requires gpu_pool with accelerator gpu"
        return {
            "nodeSelector": {POOL_LABEL: spec.gpu_pool, GPU_PRESENT_LABEL: "true"},
            "tolerations": [gpu_toleration()],
            "priorityClassName": SERVING_PRIORITY_CLASS,
        }
    return {"nodeSelector": {POOL_LABEL: SYSTEM_POOL_NAME}}


def spread(spec: InferenceServiceSpec, track: str) -> list[dict[str, Any]]:
    """Replicas spread over zones and nodes where capacity allows (ScheduleAnyway: never left Pending for it)."""
    return [
        {
            "maxSkew": 1,
            "topologyKey": key,
            "whenUnsatisfiable": "ScheduleAnyway",
            "labelSelector": {"matchLabels": track_selector(spec, track)},
            "matchLabelKeys": ["pod-template-hash"],
        }
        for key in ("topology.kubernetes.io/zone", "kubernetes.io/hostname")
    ]


SKIP_AWAIT_ANNOTATION = "pulumi.com/skipAwait"


def deployment_manifest(
    spec: InferenceServiceSpec,
    track: str,
    *,
    namespace: str,
    image: str,
    artifact_root: str,
    service_account: str,
) -> dict[str, Any]:
    """One track's Deployment. The stable one starts at `replicas.min` (the autoscaler owns it afterwards);
    the canary's is fixed by `canary_replicas`. Rollouts surge one pod and never drop below the count."""
    if track == STABLE:
        model, replicas = spec.model, spec.replicas.min
    elif track == CANARY and spec.canary is not None:
        model, replicas = spec.canary_model or spec.model, canary_replicas(spec)
    else:
        raise ValueError(f"track={track!r}: must be {STABLE!r}, or {CANARY!r} for a spec with a canary")
    labels = {**service_labels(spec), TRACK_LABEL: track}
    container = {
        "name": SERVER_CONTAINER,
        "image": image,
        "command": ["python", "-m", "modelplane.workloads.serving.server"],
        "args": server_arguments(spec, artifact_root, HTTP_PORT, model=model) + cluster_arguments(spec),
        "env": server_environment(spec),
        "ports": [{"name": HTTP_PORT_NAME, "containerPort": HTTP_PORT, "protocol": "TCP"}],
        "resources": container_resources(spec),
        **probes(),
        # Endpoints drop a terminating pod asynchronously: keep serving until they have, then SIGTERM drains.
        "lifecycle": {"preStop": {"sleep": {"seconds": PRESTOP_SLEEP_SECONDS}}},
        "securityContext": container_security_context(),
        "volumeMounts": volume_mounts(),
    }
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {
            "name": deployment_name(spec, track),
            "namespace": namespace,
            "labels": labels,
            # A new environment's service runs before its model exists and waits for it (not ready, alerting):
            # `pulumi up` must not wait on its readiness, or the first up could never finish.
            "annotations": {SKIP_AWAIT_ANNOTATION: "true"},
        },
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": track_selector(spec, track)},
            "strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": 1, "maxUnavailable": 0}},
            "template": {
                "metadata": {"labels": labels},
                "spec": {
                    "serviceAccountName": service_account,
                    "automountServiceAccountToken": False,
                    "enableServiceLinks": False,
                    "terminationGracePeriodSeconds": termination_grace_seconds(spec),
                    "securityContext": pod_security_context(),
                    **placement(spec),
                    "topologySpreadConstraints": spread(spec, track),
                    "containers": [container],
                    "volumes": pod_volumes(spec),
                },
            },
        },
    }


def service_manifest(spec: InferenceServiceSpec, *, namespace: str) -> dict[str, Any]:
    """ClusterIP on port 80, selecting both tracks' pods by the service label (never by track)."""
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": spec.name, "namespace": namespace, "labels": service_labels(spec)},
        "spec": {
            "type": "ClusterIP",
            "selector": {SERVICE_LABEL: spec.name},
            "ports": [{"name": HTTP_PORT_NAME, "port": SERVICE_PORT, "targetPort": HTTP_PORT_NAME, "protocol": "TCP"}],
        },
    }


def autoscaling_metric(spec: InferenceServiceSpec) -> dict[str, Any]:
    """CPU utilisation (metrics-server), or requests in flight per pod: the latter is served by a custom-metrics
    adapter (prometheus-adapter exposing `modelplane_inference_requests_in_flight` on custom.metrics.k8s.io),
    which the platform does not install; without one the autoscaler reports the metric missing and holds."""
    if spec.scaling.metric is ScalingMetric.CPU:
        return {
            "type": "Resource",
            "resource": {
                "name": "cpu",
                "target": {"type": "Utilization", "averageUtilization": round(spec.scaling_target)},
            },
        }
    return {
        "type": "Pods",
        "pods": {
            "metric": {"name": REQUESTS_IN_FLIGHT},
            "target": {"type": "AverageValue", "averageValue": f"{spec.scaling_target:g}"},
        },
    }


def autoscaler_manifest(spec: InferenceServiceSpec, *, namespace: str) -> dict[str, Any]:
    """Scales the stable Deployment; up at once when needed, down one pod a minute after 5 quiet minutes
    (a GPU replica takes minutes to come back)."""
    return {
        "apiVersion": "autoscaling/v2",
        "kind": "HorizontalPodAutoscaler",
        "metadata": {"name": spec.name, "namespace": namespace, "labels": service_labels(spec)},
        "spec": {
            "scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": deployment_name(spec, STABLE)},
            "minReplicas": spec.replicas.min,
            "maxReplicas": spec.replicas.max,
            "metrics": [autoscaling_metric(spec)],
            "behavior": {
                "scaleUp": {
                    "stabilizationWindowSeconds": 0,
                    "policies": [{"type": "Pods", "value": 2, "periodSeconds": 60}],
                },
                "scaleDown": {
                    "stabilizationWindowSeconds": 300,
                    "policies": [{"type": "Pods", "value": 1, "periodSeconds": 60}],
                },
            },
        },
    }


def disruption_budget_manifest(spec: InferenceServiceSpec, *, namespace: str) -> dict[str, Any]:
    """At most one pod of the service (either track) evicted at a time.

    maxUnavailable, not minAvailable: it holds at any size the autoscaler picks (minAvailable=min would let
    a scaled-up service lose all but `min` pods at once), and with one replica it lets a node drain proceed
    where minAvailable=1 would block it forever. Pods that are not ready may always be evicted, so a
    crash-looping replica never blocks a drain.
    """
    return {
        "apiVersion": "policy/v1",
        "kind": "PodDisruptionBudget",
        "metadata": {"name": spec.name, "namespace": namespace, "labels": service_labels(spec)},
        "spec": {
            "maxUnavailable": 1,
            "selector": {"matchLabels": {SERVICE_LABEL: spec.name}},
            "unhealthyPodEvictionPolicy": "AlwaysAllow",
        },
    }


def scrape_spec(spec: InferenceServiceSpec) -> dict[str, Any]:
    """The ServiceMonitor's spec: /metrics on the http port of both tracks' pods, each series labelled
    `service` (the Service's name) and `modelplane_io_track` (the pod's track)."""
    endpoints = [ScrapeEndpoint(port=HTTP_PORT_NAME, path=METRICS_PATH, interval="30s")]
    return service_monitor_spec({SERVICE_LABEL: spec.name}, endpoints, pod_target_labels=[TRACK_LABEL])


def _s3_arn(path: str, bucket_arn: str) -> str:
    """The ARN of a spec path's prefix: in the artifact bucket, or in the bucket an s3:// URI names."""
    if path.startswith("s3://"):
        bucket, _, key = path.removeprefix("s3://").partition("/")
        return f"arn:aws:s3:::{bucket}/{key.strip('/')}"
    return f"{bucket_arn}/{path.strip('/')}"


def model_read_policy(bucket_arn: str, models: list[str], kms_key_arn: str) -> dict[str, Any]:
    """Read the service's model prefixes (stable and canary) and decrypt them: nothing else, and no writes."""
    prefixes = sorted({_s3_arn(model, bucket_arn) for model in models})
    buckets = sorted({prefix.split("/", 1)[0] for prefix in prefixes})
    keys = sorted({prefix.split("/", 1)[1] for prefix in prefixes})
    return {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Sid": "ReadModel",
                "Effect": "Allow",
                "Action": ["s3:GetObject"],
                "Resource": [f"{p}/*" for p in prefixes],
            },
            {
                "Sid": "ListModel",
                "Effect": "Allow",
                "Action": ["s3:ListBucket"],
                "Resource": buckets,
                "Condition": {"StringLike": {"s3:prefix": sorted({*keys, *(f"{k}/*" for k in keys)})}},
            },
            {"Sid": "DecryptModel", "Effect": "Allow", "Action": ["kms:Decrypt"], "Resource": [kms_key_arn]},
        ],
    }
