"""What the server exports to Prometheus: the alerts' metrics (`INFERENCE_METRICS`) and the ones below.

Every series carries `model`; the scrape adds `service` (see `modelplane.workloads.serving.alerts`).
Requests to a model this server does not serve are not counted: their names are client input, and a
label per typo would grow without bound.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from enum import StrEnum

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from modelplane.terms.metrics import MetricKind, MetricSpec
from modelplane.workloads.serving.server.metric_catalogue import (
    BATCH_SIZE,
    HEADER_TIMEOUTS,
    INFERENCE_METRICS,
    MODEL_LOAD_SECONDS,
    MODEL_LOADED,
    REQUESTS_IN_FLIGHT,
    SERVING_METRICS,
)

REQUESTS_TOTAL = "modelplane_inference_requests_total"
REQUESTS_SHED = "modelplane_inference_requests_shed_total"
REQUEST_DURATION_SECONDS = "modelplane_inference_request_duration_seconds"
QUEUE_DEPTH = "modelplane_inference_queue_depth"


ALL_METRICS = {**INFERENCE_METRICS, **SERVING_METRICS}


class ShedReason(StrEnum):
    """Why a request was turned away without computing it: load shedding, which the error budget leaves out."""

    QUEUE_FULL = "queue_full"
    """No room in the queue, or more than a shutdown could finish (503)."""
    DRAINING = "draining"
    """The server is shutting down (503: retry on another replica)."""
    DEADLINE = "deadline"
    """The request's deadline passed before its answer (504)."""


# From 1 ms (a small model on a GPU) to 10 s (a request that queued behind a saturated model).
DURATION_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


def batch_size_buckets(max_batch_size: int) -> tuple[float, ...]:
    """Powers of two up to the largest batch, which closes the last bucket."""
    sizes = [1]
    while sizes[-1] * 2 < max_batch_size:
        sizes.append(sizes[-1] * 2)
    return (*sorted({*sizes, max_batch_size}),)


def _spec(name: str, kind: MetricKind) -> MetricSpec:
    spec = ALL_METRICS[name]
    if spec.kind is not kind:
        raise TypeError(f"{name} is declared a {spec.kind}, but the server records it as a {kind}")
    return spec


def _counter(registry: CollectorRegistry, name: str) -> Counter:
    spec = _spec(name, MetricKind.COUNTER)
    return Counter(name, spec.help, spec.labels, registry=registry)


def _gauge(registry: CollectorRegistry, name: str) -> Gauge:
    spec = _spec(name, MetricKind.GAUGE)
    return Gauge(name, spec.help, spec.labels, registry=registry)


def _histogram(registry: CollectorRegistry, name: str, buckets: Sequence[float]) -> Histogram:
    spec = _spec(name, MetricKind.HISTOGRAM)
    return Histogram(name, spec.help, spec.labels, registry=registry, buckets=buckets)


class ServingMetrics:
    """The server's metrics for one model, registered in `registry` (one registry per server)."""

    def __init__(self, registry: CollectorRegistry, model_name: str, max_batch_size: int):
        self.registry = registry
        self.model_name = model_name
        self._requests = _counter(registry, REQUESTS_TOTAL)
        self._requests_by_status: dict[int, Counter] = {}
        shed = _counter(registry, REQUESTS_SHED)
        # Every reason exported from the start at 0: a rate over it exists before the first shed request.
        self._shed = {reason: shed.labels(model=model_name, reason=reason.value) for reason in ShedReason}
        self.header_timeouts = _counter(registry, HEADER_TIMEOUTS).labels(model_name)
        self.request_duration = _histogram(registry, REQUEST_DURATION_SECONDS, DURATION_BUCKETS).labels(model_name)
        self.queue_depth = _gauge(registry, QUEUE_DEPTH).labels(model_name)
        self.batch_size = _histogram(registry, BATCH_SIZE, batch_size_buckets(max_batch_size)).labels(model_name)
        self.in_flight = _gauge(registry, REQUESTS_IN_FLIGHT).labels(model_name)
        self.model_load_seconds = _gauge(registry, MODEL_LOAD_SECONDS).labels(model_name)
        self.model_loaded = _gauge(registry, MODEL_LOADED).labels(model_name)

    def record_request(self, status: int, seconds: float) -> None:
        counter = self._requests_by_status.get(status)
        if counter is None:  # a handful of statuses ever: looked up once each, not on every request
            counter = self._requests_by_status[status] = self._requests.labels(model=self.model_name, code=str(status))
        counter.inc()
        self.request_duration.observe(seconds)

    def record_shed(self, reason: ShedReason) -> None:
        self._shed[reason].inc()

    def watch_queue(self, depth: Callable[[], int]) -> None:
        """Read the queue depth (texts) at each scrape, so the gauge is never stale."""
        self.queue_depth.set_function(depth)
