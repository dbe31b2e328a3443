"""The Grafana dashboard of inference services, from the metrics the server exports."""

from __future__ import annotations

from typing import Any

from modelplane.components.grafana_dashboards import dashboard, label_variable, target, timeseries


def inference_service_dashboard() -> dict[str, Any]:
    """One inference service's traffic, errors, shed load, latency quantiles and queue, chosen by `service`."""
    service = '{service="$service"}'
    errors = '{service="$service",code=~"5.."}'
    requests = "modelplane_inference_requests_total"
    shed = "modelplane_inference_requests_shed_total"
    buckets = f"modelplane_inference_request_duration_seconds_bucket{service}"
    error_ratio = f"sum(rate({requests}{errors}[$__rate_interval])) / sum(rate({requests}{service}[$__rate_interval]))"

    def latency(quantile: str, legend: str, ref_id: str) -> dict[str, Any]:
        expr = f"histogram_quantile({quantile}, sum by (le) (rate({buckets}[$__rate_interval])))"
        return target(expr, legend, ref_id)

    panels = [
        timeseries(
            "Request rate by model",
            [target(f"sum by (model) (rate({requests}{service}[$__rate_interval]))", "{{model}}")],
            unit="reqps",
        ),
        timeseries("5xx error ratio", [target(error_ratio, "errors")], unit="percentunit"),
        timeseries(
            "Shed requests by reason (not errors: 503 overload or shutdown, 504 deadline)",
            [target(f"sum by (reason) (rate({shed}{service}[$__rate_interval]))", "{{reason}}")],
            unit="reqps",
        ),
        timeseries(
            "Latency", [latency("0.5", "p50", "A"), latency("0.95", "p95", "B"), latency("0.99", "p99", "C")], unit="s"
        ),
        timeseries(
            "Queue depth by model",
            [target(f"sum by (model) (modelplane_inference_queue_depth{service})", "{{model}}")],
        ),
        timeseries(
            "Average batch size by model",
            [
                target(
                    f"sum by (model) (rate(modelplane_inference_batch_size_sum{service}[$__rate_interval]))"
                    f" / sum by (model) (rate(modelplane_inference_batch_size_count{service}[$__rate_interval]))",
                    "{{model}}",
                )
            ],
        ),
        timeseries(
            "Requests in flight by model",
            [target(f"sum by (model) (modelplane_inference_requests_in_flight{service})", "{{model}}")],
        ),
    ]
    service_variable = label_variable("service", requests, "service")
    return dashboard("modelplane-inference-service", "Inference service", panels, [service_variable])
