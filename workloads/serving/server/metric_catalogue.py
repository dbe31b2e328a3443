"""The metrics the inference server exports: the contract its alert rules and dashboards read.

Every series carries `model`; the scrape adds `service`.
"""

from __future__ import annotations

from modelplane.terms.metrics import MetricKind, MetricSpec

MODEL_LOADED = "modelplane_inference_model_loaded"
INFERENCE_METRICS: dict[str, MetricSpec] = {
    MODEL_LOADED: MetricSpec(
        MetricKind.GAUGE,
        "1 once the model is loaded and served; 0 while the server waits for it (not trained or seeded yet).",
        ("model",),
    ),
    "modelplane_inference_requests_total": MetricSpec(
        MetricKind.COUNTER,
        "Inference requests answered, by model and HTTP status code; shed ones are counted apart.",
        ("model", "code"),
    ),
    "modelplane_inference_requests_shed_total": MetricSpec(
        MetricKind.COUNTER,
        "Inference requests turned away uncomputed, by reason: queue_full and draining (503), deadline (504).",
        ("model", "reason"),
    ),
    "modelplane_inference_request_duration_seconds": MetricSpec(
        MetricKind.HISTOGRAM,
        "Time from receiving an inference request to sending its response.",
        ("model",),
    ),
    "modelplane_inference_queue_depth": MetricSpec(
        MetricKind.GAUGE,
        "Texts waiting for the model (the queue's bound, max_queue_size, is in texts too).",
        ("model",),
    ),
}

BATCH_SIZE = "modelplane_inference_batch_size"
REQUESTS_IN_FLIGHT = "modelplane_inference_requests_in_flight"
MODEL_LOAD_SECONDS = "modelplane_inference_model_load_seconds"
HEADER_TIMEOUTS = "modelplane_inference_header_timeouts_total"
SERVING_METRICS: dict[str, MetricSpec] = {
    BATCH_SIZE: MetricSpec(MetricKind.HISTOGRAM, "Texts run through the model together, per batch.", ("model",)),
    REQUESTS_IN_FLIGHT: MetricSpec(
        MetricKind.GAUGE, "Inference requests received and not yet answered, queued or running.", ("model",)
    ),
    MODEL_LOAD_SECONDS: MetricSpec(
        MetricKind.GAUGE, "Time the server took to fetch, load and warm up its model at start.", ("model",)
    ),
    HEADER_TIMEOUTS: MetricSpec(
        MetricKind.COUNTER,
        "Connections closed with 408 because a request's headers did not arrive within header_timeout_seconds.",
        ("model",),
    ),
}
"""Metrics for dashboards and capacity planning that no alert reads yet."""
