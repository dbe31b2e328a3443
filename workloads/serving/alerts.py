"""Alerts on one model inference service against its objectives, from the metrics the server exports.

Load the server sheds (503 when its queue is full or it is shutting down, 504 when a deadline passed
before the answer) is counted apart, in `modelplane_inference_requests_shed_total`: it is not an error of
the service, so the error-budget alerts never see it, and `InferenceRequestsShed` watches it instead.

The server exports exactly the metrics in `INFERENCE_METRICS`. It does not set `service`: the
scrape does (a ServiceMonitor labels every series with the Kubernetes Service's name, which is the
inference service's name); a `service` label set by the server would arrive as `exported_service`.
The Deployment is named after the service too.

A canary (a second Deployment, `<service>-canary`, behind the same Service) gets rules of its own
(`track="canary"`): its pods carry the label `modelplane.io/track: canary`, which the ServiceMonitor
copies onto every series as `modelplane_io_track` (podTargetLabels), so those rules read only the
canary's traffic and their alerts carry `track: canary`. The service-wide rules keep reading all
traffic: the objectives are the service's promise to its clients, and clients get the canary's answers too.
"""

from __future__ import annotations

from dataclasses import dataclass

from modelplane.components.alerting.rules import (
    AlertRule,
    RecordingRule,
    RuleGroup,
    Severity,
    promql_number,
    runbook_url,
)
from modelplane.terms.names import check_kubernetes_name

ERROR_RATIO_RECORD = "service:modelplane_inference_errors:ratio_rate{window}"
TRACK_ERROR_RATIO_RECORD = "service_track:modelplane_inference_errors:ratio_rate{window}"
"""Per-track recordings are named apart, so the service-wide selector `{service="x"}` never matches them."""
TRACK_LABEL = "modelplane_io_track"
"""The pod label `modelplane.io/track` as the ServiceMonitor's podTargetLabels writes it onto each series."""


@dataclass(frozen=True)
class BurnRateWindow:
    """Fire when the error budget burns `factor` times too fast over both windows (SRE workbook, ch. 5)."""

    long: str
    short: str
    factor: float


# Page when 2% of a 30-day budget goes in 1h or 5% in 6h; ticket when 10% goes in 3 days.
FAST_BURN = (BurnRateWindow("1h", "5m", 14.4), BurnRateWindow("6h", "30m", 6))
SLOW_BURN = (BurnRateWindow("1d", "2h", 3), BurnRateWindow("3d", "6h", 1))


@dataclass(frozen=True)
class InferenceObjectives:
    p99_latency_seconds: float
    """99% of requests answered within this."""
    max_queue_size: int
    """The server's queue capacity in texts; requests beyond it are turned away (shed)."""
    availability: float = 0.999
    """Share of requests answered without a 5xx over 30 days."""
    queue_saturation_fraction: float = 0.8
    """Alert when the queue is fuller than this share of `max_queue_size`."""
    model_error_ratio: float = 0.05
    """Alert when one model's 5xx share exceeds this over 5 minutes; a rarely used model can fail
    completely without burning the service's budget."""
    shed_ratio: float = 0.01
    """Alert when more than this share of a model's requests is turned away (shed) for 10 minutes."""

    def __post_init__(self) -> None:
        if self.p99_latency_seconds <= 0:
            raise ValueError(f"p99_latency_seconds={self.p99_latency_seconds}: must be above 0, e.g. 0.5")
        if self.max_queue_size < 1:
            raise ValueError(f"max_queue_size={self.max_queue_size}: must be at least 1")
        if not 0 < self.availability < 1:
            raise ValueError(f"availability={self.availability}: must be between 0 and 1, e.g. 0.999")
        if not 0 < self.queue_saturation_fraction <= 1:
            raise ValueError(f"queue_saturation_fraction={self.queue_saturation_fraction}: must be in (0, 1]")
        if not 0 < self.model_error_ratio < 1:
            raise ValueError(f"model_error_ratio={self.model_error_ratio}: must be between 0 and 1, e.g. 0.05")
        if not 0 < self.shed_ratio < 1:
            raise ValueError(f"shed_ratio={self.shed_ratio}: must be between 0 and 1, e.g. 0.01")


@dataclass(frozen=True)
class _Scope:
    """The traffic one set of rules reads: the whole service, or one track of it."""

    service: str
    track: str | None

    @property
    def selector(self) -> str:
        """Label matchers without braces: `service="chat"` or `service="chat",modelplane_io_track="canary"`."""
        track = f',{TRACK_LABEL}="{self.track}"' if self.track else ""
        return f'service="{self.service}"{track}'

    @property
    def by(self) -> str:
        return f"service, {TRACK_LABEL}" if self.track else "service"

    @property
    def record(self) -> str:
        return TRACK_ERROR_RATIO_RECORD if self.track else ERROR_RATIO_RECORD

    @property
    def name(self) -> str:
        return f"{self.service}-{self.track}" if self.track else self.service

    @property
    def deployment(self) -> str:
        """The stable Deployment is named after the service; any other track's is `<service>-<track>`."""
        return self.service if self.track in (None, "stable") else f"{self.service}-{self.track}"

    @property
    def labels(self) -> dict[str, str]:
        return {"track": self.track} if self.track else {}


def inference_rules(
    service: str, objectives: InferenceObjectives, *, track: str | None = None
) -> tuple[RuleGroup, RuleGroup]:
    """The service's error ratio recording rules, then its alerts (which read those recordings).

    `track` (e.g. "canary") narrows both to that track's pods, in groups of their own.
    """
    check_kubernetes_name("service", service)
    if track is not None:
        check_kubernetes_name("track", track)
    scope = _Scope(service, track)
    return _error_ratio_recordings(scope), _inference_alerts(scope, objectives)


def _error_ratio(scope: _Scope, window: str, by: str) -> str:
    requests = f"modelplane_inference_requests_total{{{scope.selector}"
    errors = f'sum by ({by}) (rate({requests},code=~"5.."}}[{window}]))'
    return f"{errors} / sum by ({by}) (rate({requests}}}[{window}]))"


def _error_ratio_recordings(scope: _Scope) -> RuleGroup:
    windows = sorted({w for burn in FAST_BURN + SLOW_BURN for w in (burn.long, burn.short)}, key=_seconds)
    recordings = tuple(
        RecordingRule(record=scope.record.format(window=window), expr=_error_ratio(scope, window, scope.by))
        for window in windows
    )
    return RuleGroup(name=f"modelplane-inference-{scope.name}-error-ratios", rules=recordings)


def _shed_ratio(scope: _Scope, window: str) -> str:
    """Shed requests over all requests, per model; a model that sheds everything has no `requests_total`
    series to add, hence the `or`."""
    by = f"{scope.by}, model"
    shed = f"sum by ({by}) (rate(modelplane_inference_requests_shed_total{{{scope.selector}}}[{window}]))"
    answered = f"sum by ({by}) (rate(modelplane_inference_requests_total{{{scope.selector}}}[{window}]))"
    return f"{shed} / ({shed} + ({answered} or {shed} * 0))"


def _seconds(duration: str) -> int:
    units = {"m": 60, "h": 3600, "d": 86400}
    return int(duration[:-1]) * units[duration[-1]]


def _burn_expr(scope: _Scope, windows: tuple[BurnRateWindow, ...], error_budget: str) -> str:
    def over(window: str, factor: float) -> str:
        record = scope.record.format(window=window)
        return f"{record}{{{scope.selector}}} > ({promql_number(factor)} * {error_budget})"

    return " or ".join(f"({over(w.long, w.factor)} and {over(w.short, w.factor)})" for w in windows)


def _inference_alerts(scope: _Scope, objectives: InferenceObjectives) -> RuleGroup:
    service = scope.service
    shown = f"{service} ({scope.track})" if scope.track else service
    labels = scope.labels
    error_budget = promql_number(1 - objectives.availability)
    objective_text = f"{promql_number(objectives.availability * 100)}% availability objective"
    durations = f"modelplane_inference_request_duration_seconds_bucket{{{scope.selector}}}"
    deployment = f'{{deployment="{scope.deployment}"}}'
    queue_limit = promql_number(objectives.queue_saturation_fraction)
    rules = (
        AlertRule(
            alert="InferenceLatencyHigh",
            expr=(
                f"histogram_quantile(0.99, sum by (service, model, le) (rate({durations}[5m])))"
                f" > {promql_number(objectives.p99_latency_seconds)}"
            ),
            for_="10m",
            severity=Severity.WARNING,
            summary=(
                "{{ $labels.service }}/{{ $labels.model }} p99 latency is {{ $value | humanizeDuration }}, "
                f"objective {promql_number(objectives.p99_latency_seconds)}s"
            ),
            description=(
                "Requests wait longer than promised. Check queue depth and GPU utilization: a saturated "
                "service needs more replicas; an idle one with slow answers points at the model or its batching."
            ),
            runbook_url=runbook_url("InferenceLatencyHigh"),
            labels=labels,
        ),
        AlertRule(
            alert="InferenceErrorBudgetFastBurn",
            expr=_burn_expr(scope, FAST_BURN, error_budget),
            for_="0s",
            severity=Severity.CRITICAL,
            summary=f"{shown} burns its error budget fast: the {objective_text} is at risk within hours",
            description=(
                "5xx responses (shed load aside) run at over 6 times the rate the objective allows, over both a "
                "long and a short window. Roll back the last change or shed load; the server's logs name the "
                "failing model."
            ),
            runbook_url=runbook_url("InferenceErrorBudgetFastBurn"),
            labels=labels,
        ),
        AlertRule(
            alert="InferenceErrorBudgetSlowBurn",
            expr=_burn_expr(scope, SLOW_BURN, error_budget),
            for_="0s",
            severity=Severity.WARNING,
            summary=f"{shown} burns its error budget steadily: the {objective_text} is at risk within days",
            description=(
                "5xx responses (shed load aside) run above the rate the objective allows for a day or more. "
                "Find the failing requests in the server's logs and fix them before the budget is spent."
            ),
            runbook_url=runbook_url("InferenceErrorBudgetSlowBurn"),
            labels=labels,
        ),
        AlertRule(
            alert="InferenceModelErrorRatioHigh",
            expr=f"{_error_ratio(scope, '5m', f'{scope.by}, model')} > {promql_number(objectives.model_error_ratio)}",
            for_="5m",
            severity=Severity.WARNING,
            summary="{{ $labels.service }}/{{ $labels.model }} answers {{ $value | humanizePercentage }} with 5xx",
            description=(
                "One model fails far more often than the service as a whole: a bad model artifact, "
                "an out-of-memory worker, or a request shape it cannot handle. Check the model's load logs."
            ),
            runbook_url=runbook_url("InferenceModelErrorRatioHigh"),
            labels=labels,
        ),
        AlertRule(
            alert="InferenceModelNotLoaded",
            expr=f"max by ({scope.by}, model) (modelplane_inference_model_loaded{{{scope.selector}}}) == 0",
            for_="15m",
            severity=Severity.WARNING,
            summary="{{ $labels.service }} waits for its model {{ $labels.model }}: no replica has loaded it",
            description=(
                "The servers run but none has a model to serve: nothing is exported at the service's model path "
                "yet (a new environment whose training job has not finished), or what is there does not load. "
                "Run the training job that writes it or seed it (`modelplane seed ENV`); the servers' logs say "
                "which, and they load it as soon as it is there."
            ),
            runbook_url=runbook_url("InferenceModelNotLoaded"),
            labels=labels,
        ),
        AlertRule(
            alert="InferenceNoReadyReplicas",
            # A Deployment scaled to zero on purpose has no replicas to miss.
            expr=(
                f"kube_deployment_status_replicas_available{deployment} == 0"
                f" and on(namespace, deployment) kube_deployment_spec_replicas{deployment} > 0"
            ),
            for_="5m",
            severity=Severity.CRITICAL,
            summary=f"{shown} has no ready replicas",
            description=(
                "Every request to the service fails. Look at the pods' events: Pending means no GPU node "
                "could be had, CrashLoopBackOff means the server or its model fails to start."
            ),
            runbook_url=runbook_url("InferenceNoReadyReplicas"),
            labels={"service": service, **labels},
        ),
        AlertRule(
            alert="InferenceQueueSaturated",
            expr=(
                f"modelplane_inference_queue_depth{{{scope.selector}}} / {objectives.max_queue_size} > {queue_limit}"
            ),
            for_="5m",
            severity=Severity.WARNING,
            summary="{{ $labels.service }}/{{ $labels.model }} queue is {{ $value | humanizePercentage }} full",
            description=(
                f"The request queue stayed above {promql_number(objectives.queue_saturation_fraction * 100)}% of "
                f"its {objectives.max_queue_size} texts; once full, requests are turned away. Add replicas or "
                "raise the HorizontalPodAutoscaler's maximum (replicas.max)."
            ),
            runbook_url=runbook_url("InferenceQueueSaturated"),
            labels=labels,
        ),
        AlertRule(
            alert="InferenceRequestsShed",
            expr=f"{_shed_ratio(scope, '5m')} > {promql_number(objectives.shed_ratio)}",
            for_="10m",
            severity=Severity.WARNING,
            summary=(
                "{{ $labels.service }}/{{ $labels.model }} turns away {{ $value | humanizePercentage }} of requests"
            ),
            description=(
                "Replicas turn requests away uncomputed: 503 with Retry-After when the queue is full or they "
                "shut down, 504 when a deadline passed in the queue; the error-budget alerts leave this load "
                "shedding out, so this alert is the one that sees it. Add replicas or raise replicas.max, and "
                "check that the autoscaler's metric follows the load; `modelplane_inference_requests_shed_total` "
                "by reason says which."
            ),
            runbook_url=runbook_url("InferenceRequestsShed"),
            labels=labels,
        ),
    )
    return RuleGroup(name=f"modelplane-inference-{scope.name}", rules=rules)
