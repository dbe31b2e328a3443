"""An inference service as ML teams declare it: the one spec that renders to a Deployment, its Service,
autoscaler, disruption budget, scrape config and alert rules.

`model` (and a canary's) is a path in the environment's artifact store (`s3://<bucket>/`), as the
trainer exports it (`models/<job>`), unless given as a full `s3://` URI.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator

from modelplane.terms.gpu_catalog import GpuInstanceType
from modelplane.terms.names import check_workload_name
from modelplane.terms.scheduling import NODE_RESERVED_MEMORY_FRACTION, NODE_RESERVED_VCPUS
from modelplane.workloads.serving.alerts import InferenceObjectives
from modelplane.workloads.serving.server.config import MODEL_NAME
from modelplane.workloads.spec_fields import artifact_path, env_names, pinned_image, registry_problem

CPU_QUANTITY = re.compile(r"^(\d+(\.\d{1,3})?|\d+m)$")
MEMORY_QUANTITY = re.compile(r"^\d+(Mi|Gi)$")
IMAGE_EXAMPLE = "server:1.4.0"
MODEL_EXAMPLE = "models/sentiment"


class Accelerator(StrEnum):
    GPU = "gpu"
    """One GPU per replica, on a GPU pool's nodes."""
    CPU = "cpu"
    """CPU only, on the untainted system nodes: for small models and quiet environments."""


class ScalingMetric(StrEnum):
    CPU = "cpu"
    """Average CPU utilisation of the server containers, in percent of their request: works out of the box."""
    IN_FLIGHT = "in_flight"
    """Average `modelplane_inference_requests_in_flight` per pod: tracks load on GPUs, where CPU does not;
    needs a custom-metrics adapter (prometheus-adapter) serving that metric through `custom.metrics.k8s.io`."""


DEFAULT_TARGETS = {ScalingMetric.CPU: 70.0}
"""Targets used when `scaling.target` is unset; in_flight defaults to one full batch per pod."""


class StrictModel(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Replicas(StrictModel):
    min: int = Field(default=2, ge=1, le=100)
    """Replicas kept at the quietest hour; 2 or more survives a node's loss."""
    max: int = Field(default=4, ge=1, le=100)
    """The autoscaler's ceiling; at least `min`."""


class Scaling(StrictModel):
    metric: ScalingMetric = ScalingMetric.CPU
    target: float | None = Field(default=None, gt=0)
    """cpu: utilisation percent (1-100, default 70); in_flight: requests per pod (default `batching.max_batch_size`)."""


class Objectives(StrictModel):
    p99_latency_seconds: float = Field(default=0.5, gt=0, le=60)
    """99% of requests answered within this; alerts fire above it."""
    availability: float = Field(default=0.999, gt=0, lt=1)
    """Share of requests answered without a 5xx over 30 days: sets the error budget the burn-rate alerts watch."""


class Batching(StrictModel):
    """The model takes everything waiting each time it is free: a lone request runs at once, and batches
    grow with the load."""

    max_batch_size: int = Field(default=32, ge=1, le=1024)
    """Most texts run through the model at once; also the most per request."""
    max_queue_size: int = Field(default=256, ge=1, le=100_000)
    """Texts (not requests) allowed to wait per replica; beyond it the server answers 503 at once."""


class RequestLimits(StrictModel):
    max_text_chars: int = Field(default=4096, ge=1, le=1_000_000)
    max_body_bytes: int = Field(default=1024 * 1024, ge=1024, le=64 * 1024 * 1024)
    header_timeout_seconds: float = Field(default=5.0, gt=0, le=300)
    """A connection that has not sent a request's headers by then gets 408 and is closed."""
    body_timeout_seconds: float = Field(default=10.0, gt=0, le=300)
    """A request whose body has not arrived by then gets 408."""
    request_timeout_seconds: float = Field(default=10.0, gt=0, le=3600)
    """A request's deadline (clients may set a shorter one): work still queued then is dropped, answered 504."""


class Resources(StrictModel):
    """The server container's requests, equal to its limits (guaranteed QoS); a GPU replica also gets one GPU."""

    cpu: str = "2"
    """Kubernetes CPU quantity: "2", "1.5" or "500m"."""
    memory: str = "4Gi"
    """Kubernetes memory quantity in Mi or Gi: "4Gi"."""
    model_cache: str = "10Gi"
    """Size limit of the emptyDir the model is downloaded into."""

    @field_validator("cpu", mode="before")
    @classmethod
    def _cpu(cls, value: Any) -> Any:
        value = str(value) if isinstance(value, int | float) else value
        if isinstance(value, str) and (not CPU_QUANTITY.match(value) or cpu_cores(value) <= 0):
            raise ValueError("expected a CPU quantity above 0 such as '2', '1.5' or '500m'")
        return value

    @field_validator("memory", "model_cache")
    @classmethod
    def _memory(cls, value: str) -> str:
        if not MEMORY_QUANTITY.match(value) or memory_gib(value) <= 0:
            raise ValueError("expected a quantity above 0 in Mi or Gi such as '4Gi' or '512Mi'")
        return value


class Canary(StrictModel):
    """A second Deployment behind the same Service, with its own image and/or model and its own alerts."""

    image: str | None = None
    """The canary's server image; default the stable one."""
    model: str | None = None
    """The canary's model; default the stable one."""
    traffic_percent: int = Field(default=10, ge=1, le=50)
    """Share of requests the canary should take; met by its replica count (see `canary_replicas`)."""


class InferenceServiceSpec(StrictModel):
    name: str
    """DNS label; names the Deployment, Service, autoscaler, metrics' `service` label and alerts."""
    image: str
    """Server image in the platform's registry: `server:TAG` or `server@sha256:...` (never `latest`)."""
    model: str
    """The exported model directory, as the trainer writes it: `models/<job>` or an s3:// URI."""
    model_name: str | None = None
    """The name clients address (`/v2/models/<name>`); default `name`."""
    accelerator: Accelerator = Accelerator.GPU
    gpu_pool: str | None = None
    """The GPU pool the replicas run on: required with accelerator gpu, forbidden with cpu."""
    replicas: Replicas = Replicas()
    scaling: Scaling = Scaling()
    objectives: Objectives = Objectives()
    batching: Batching = Batching()
    limits: RequestLimits = RequestLimits()
    resources: Resources = Resources()
    drain_seconds: int = Field(default=25, ge=1, le=600)
    """After SIGTERM, how long a replica may take to answer what it accepted (the server's shutdown timeout);
    the server never queues more than its model, at its measured speed, can finish in half this time."""
    canary: Canary | None = None
    env: dict[str, str] = Field(default_factory=dict)
    team: str | None = None
    """The team whose namespace the service runs in; None: the platform's default team."""

    @field_validator("name")
    @classmethod
    def _dns_label(cls, value: str) -> str:
        return check_workload_name(value)

    @field_validator("model_name")
    @classmethod
    def _model_name(cls, value: str | None) -> str | None:
        if value is not None and not MODEL_NAME.match(value):
            raise ValueError("use 1-64 letters, digits, '.', '_' or '-', starting with a letter or digit")
        return value

    @field_validator("image")
    @classmethod
    def _pinned_image(cls, value: str) -> str:
        return pinned_image(value, example=IMAGE_EXAMPLE)

    @field_validator("model")
    @classmethod
    def _artifact_path(cls, value: str) -> str:
        return artifact_path(value, example=MODEL_EXAMPLE)

    @field_validator("canary")
    @classmethod
    def _canary(cls, value: Canary | None) -> Canary | None:
        if value is not None:
            if value.image is not None:
                pinned_image(value.image, example=IMAGE_EXAMPLE)
            if value.model is not None:
                artifact_path(value.model, example=MODEL_EXAMPLE)
        return value

    @field_validator("env")
    @classmethod
    def _env_names(cls, value: dict[str, str]) -> dict[str, str]:
        return env_names(value, reserved_because="configure the server and are set by modelplane")

    @property
    def served_model_name(self) -> str:
        return self.model_name or self.name

    @property
    def canary_image(self) -> str | None:
        return None if self.canary is None else (self.canary.image or self.image)

    @property
    def canary_model(self) -> str | None:
        return None if self.canary is None else (self.canary.model or self.model)

    @property
    def scaling_target(self) -> float:
        if self.scaling.target is not None:
            return self.scaling.target
        return DEFAULT_TARGETS.get(self.scaling.metric, float(self.batching.max_batch_size))

    @property
    def queue_drain_seconds(self) -> float:
        """Time a full queue (in texts) and the batch running beside it take, if every batch takes the p99
        objective."""
        batches = math.ceil(self.batching.max_queue_size / self.batching.max_batch_size) + 1
        return batches * self.objectives.p99_latency_seconds

    def inference_objectives(self) -> InferenceObjectives:
        return inference_objectives(self.objectives, self.batching)


def inference_objectives(objectives: Objectives, batching: Batching) -> InferenceObjectives:
    """The alert rules' objectives: the declared ones and the queue the server is given."""
    return InferenceObjectives(
        p99_latency_seconds=objectives.p99_latency_seconds,
        max_queue_size=batching.max_queue_size,
        availability=objectives.availability,
    )


def cpu_cores(quantity: str) -> float:
    return int(quantity[:-1]) / 1000 if quantity.endswith("m") else float(quantity)


def memory_gib(quantity: str) -> float:
    return int(quantity[:-2]) / (1024 if quantity.endswith("Mi") else 1)


def canary_replicas(spec: InferenceServiceSpec) -> int:
    """Canary pods for `traffic_percent` of requests at the stable track's minimum, at least 1.

    The Service spreads requests evenly over ready pods, so the canary's share is its share of pods:
    c / (stable + c). As the autoscaler adds stable replicas, the canary's share shrinks.
    """
    if spec.canary is None:
        return 0
    percent = spec.canary.traffic_percent
    return max(1, round(spec.replicas.min * percent / (100 - percent)))


def canary_share(spec: InferenceServiceSpec) -> float:
    """The canary's actual share of requests at the stable minimum, in percent."""
    canary = canary_replicas(spec)
    return 100 * canary / (spec.replicas.min + canary) if canary else 0.0


def spec_problems(spec: InferenceServiceSpec) -> list[str]:
    """Problems within one spec (paths relative to it): fields that only make sense together."""
    problems = []
    if spec.accelerator is Accelerator.GPU and spec.gpu_pool is None:
        problems.append("gpu_pool=None: required with accelerator gpu; name a GPU pool, or set accelerator: cpu")
    if spec.accelerator is Accelerator.CPU and spec.gpu_pool is not None:
        problems.append(f"gpu_pool={spec.gpu_pool!r}: only with accelerator gpu; remove it or set accelerator: gpu")
    if spec.replicas.max < spec.replicas.min:
        problems.append(f"replicas.max={spec.replicas.max}: must be at least replicas.min ({spec.replicas.min})")
    target = spec.scaling.target
    if spec.scaling.metric is ScalingMetric.CPU and target is not None and not 1 <= target <= 100:
        problems.append(f"scaling.target={target}: a CPU utilisation target is a percent of the request, 1-100")
    if spec.queue_drain_seconds > spec.drain_seconds:
        problems.append(
            f"drain_seconds={spec.drain_seconds}: a full queue ({spec.batching.max_queue_size} texts in batches "
            f"of {spec.batching.max_batch_size}, after the one running, at {spec.objectives.p99_latency_seconds}s "
            f"each) takes {spec.queue_drain_seconds:g}s to drain; raise drain_seconds or lower "
            "batching.max_queue_size"
        )
    if spec.canary is not None and spec.canary.image is None and spec.canary.model is None:
        problems.append("canary: set image, model or both; a canary differs from the stable track")
    elif spec.canary is not None and (spec.canary_image, spec.canary_model) == (spec.image, spec.model):
        problems.append("canary: its image and model equal the stable ones; change one or remove the canary")
    return problems


@dataclass(frozen=True)
class PoolHardware:
    """What one GPU pool offers an inference service."""

    instance: GpuInstanceType
    max_nodes: int


def allocatable(instance: GpuInstanceType) -> tuple[float, float]:
    """vCPUs and GiB of memory a node leaves to pods (the rest goes to the kubelet and daemons)."""
    return instance.vcpus - NODE_RESERVED_VCPUS, instance.memory_gib * (1 - NODE_RESERVED_MEMORY_FRACTION)


def fit_problems(spec: InferenceServiceSpec, instance: GpuInstanceType) -> list[str]:
    """Problems of one replica's resources on `instance` (paths relative to the spec)."""
    cpus, memory = allocatable(instance)
    # One replica per GPU: a node holds as many replicas as GPUs, each with its share of the node.
    cpu_share, memory_share = cpus / instance.gpus, memory / instance.gpus
    problems = []
    if cpu_cores(spec.resources.cpu) > cpu_share:
        problems.append(
            f"resources.cpu={spec.resources.cpu!r}: a replica on {instance.name} gets at most {cpu_share:g} vCPUs "
            "(one GPU's share of the node, less its reserve)"
        )
    if memory_gib(spec.resources.memory) > memory_share:
        problems.append(
            f"resources.memory={spec.resources.memory!r}: a replica on {instance.name} gets at most "
            f"{memory_share:.1f}Gi (one GPU's share of the node, less its reserve)"
        )
    return problems


def service_problems(
    index: int, spec: InferenceServiceSpec, pools: dict[str, PoolHardware], repositories: list[str]
) -> list[str]:
    """Problems of `spec`, alone and against the environment's GPU pools and registries."""
    at = f"inference_services[{index}]"
    problems = [f"{at}.{problem}" for problem in spec_problems(spec)]
    pool = pools.get(spec.gpu_pool) if spec.gpu_pool is not None else None
    if spec.gpu_pool is not None and spec.accelerator is Accelerator.GPU and pool is None:
        problems.append(f"{at}.gpu_pool={spec.gpu_pool!r}: unknown pool; pools: {', '.join(pools) or 'none'}")
    if pool is not None and spec.accelerator is Accelerator.GPU:
        problems.extend(f"{at}.{problem}" for problem in fit_problems(spec, pool.instance))
        gpus = pool.instance.gpus * pool.max_nodes
        wanted = spec.replicas.max + canary_replicas(spec)
        if wanted > gpus:
            problems.append(
                f"{at}.replicas.max={spec.replicas.max}: with {canary_replicas(spec)} canary replica(s) the "
                f"service needs {wanted} GPUs; pool {spec.gpu_pool!r} scales to {gpus}; "
                "raise its max_size or lower replicas.max"
            )
    images = [("image", spec.image)]
    if spec.canary is not None and spec.canary.image is not None:
        images.append(("canary.image", spec.canary.image))
    problems.extend(
        problem for field, image in images if (problem := registry_problem(f"{at}.{field}", image, repositories))
    )
    return problems
