import json
import re

import pytest

from modelplane.components.grafana_dashboards import (
    DCGM_METRICS,
    dashboard,
    dashboard_configmap_data,
    gpu_fleet_dashboard,
    metric_series,
    stat,
    target,
    timeseries,
    unique_dashboards,
)
from modelplane.platform import workload_dashboards
from modelplane.workloads.serving.dashboard import inference_service_dashboard
from modelplane.workloads.serving.server.metric_catalogue import INFERENCE_METRICS, SERVING_METRICS
from modelplane.workloads.training.dashboard import training_run_dashboard
from modelplane.workloads.training.trainer.metric_catalogue import TRAINING_METRICS


def platform_dashboards():
    return unique_dashboards([gpu_fleet_dashboard(), *workload_dashboards()])


def dashboard_metric_sources():
    """Per dashboard uid, the metric names its queries may use: those the exporter or workload defines."""
    return {
        "modelplane-gpu-fleet": frozenset(DCGM_METRICS),
        "modelplane-training-run": metric_series(TRAINING_METRICS),
        "modelplane-inference-service": metric_series({**INFERENCE_METRICS, **SERVING_METRICS}),
    }


# PromQL words that look like metric names but are not.
PROMQL_WORDS = {"by", "without", "on", "ignoring", "group_left", "group_right", "and", "or", "unless", "offset", "bool"}


def metric_names(expr: str) -> set[str]:
    """Metric names in a PromQL expression: identifiers outside strings, label matchers, ranges and groupings."""
    expr = re.sub(r'"[^"]*"', "", expr)
    expr = re.sub(r"\{[^}]*\}", "", expr)
    expr = re.sub(r"\[[^\]]*\]", "", expr)
    expr = re.sub(r"\b(by|without|on|ignoring)\s*\([^)]*\)", "", expr)
    names = set()
    for match in re.finditer(r"(?<![\w$.])([a-zA-Z_:][a-zA-Z0-9_:]*)\s*(\()?", expr):
        if not match.group(2) and match.group(1) not in PROMQL_WORDS:
            names.add(match.group(1))
    return names


def panel_exprs(board):
    return [t["expr"] for panel in board["panels"] for t in panel["targets"]]


def exprs(board):
    variables = [v["query"]["query"] for v in board["templating"]["list"] if v["type"] == "query"]
    return panel_exprs(board) + variables


def test_metric_names_reads_promql():
    expr = 'histogram_quantile(0.99, sum by (le) (rate(x_bucket{service="$service",code=~"5.."}[5m]))) / y offset 5m'
    assert metric_names(expr) == {"x_bucket", "y"}
    assert metric_names("count(DCGM_FI_DEV_XID_ERRORS > 0) or vector(0)") == {"DCGM_FI_DEV_XID_ERRORS"}


@pytest.mark.parametrize("board", platform_dashboards(), ids=lambda b: b["uid"])
def test_every_metric_is_one_the_exporter_or_rules_module_defines(board):
    allowed = dashboard_metric_sources()[board["uid"]]
    used = set().union(*(metric_names(e) for e in exprs(board)))
    # label_values(metric, label) names a label as its second argument.
    labels = {v["label"] for v in board["templating"]["list"]}
    assert used - labels <= allowed, sorted(used - labels - allowed)
    assert used - labels, "a dashboard without metrics"


def test_training_dashboard_reads_every_training_metric():
    used = set().union(*(metric_names(e) for e in exprs(training_run_dashboard())))
    assert dashboard_metric_sources()["modelplane-training-run"] <= used


def test_gpu_fleet_shows_the_five_dcgm_signals_per_node_and_gpu():
    board = gpu_fleet_dashboard()
    titles = {p["title"]: p for p in board["panels"] if p["type"] == "timeseries"}
    for title, metric in [
        ("Utilisation", "DCGM_FI_DEV_GPU_UTIL"),
        ("Framebuffer memory used", "DCGM_FI_DEV_FB_USED"),
        ("Temperature", "DCGM_FI_DEV_GPU_TEMP"),
        ("Power", "DCGM_FI_DEV_POWER_USAGE"),
        ("Last XID error code (0: none)", "DCGM_FI_DEV_XID_ERRORS"),
    ]:
        expr = titles[title]["targets"][0]["expr"]
        assert metric in expr and "by (Hostname, gpu)" in expr, expr
        assert metric in DCGM_METRICS


def test_template_variables():
    def variable_names(board):
        return [v["name"] for v in board["templating"]["list"]]

    assert variable_names(gpu_fleet_dashboard()) == ["datasource", "node"]
    assert variable_names(training_run_dashboard()) == ["datasource", "job_name"]
    assert variable_names(inference_service_dashboard()) == ["datasource", "service"]
    assert all('job_name="$job_name"' in e for e in panel_exprs(training_run_dashboard()))
    assert all('service="$service"' in e for e in panel_exprs(inference_service_dashboard()))


def test_inference_latency_quantiles_come_from_the_histogram():
    latency = next(p for p in inference_service_dashboard()["panels"] if p["title"] == "Latency")
    assert [t["legendFormat"] for t in latency["targets"]] == ["p50", "p95", "p99"]
    assert all("modelplane_inference_request_duration_seconds_bucket" in t["expr"] for t in latency["targets"])


def test_every_panel_queries_prometheus_through_the_datasource_variable():
    for board in platform_dashboards():
        for panel in board["panels"]:
            assert panel["datasource"] == {"type": "prometheus", "uid": "${datasource}"}


def test_uids_unique_and_panels_laid_out_without_overlap():
    boards = platform_dashboards()
    assert len({b["uid"] for b in boards}) == len(boards)
    for board in boards:
        cells: set[tuple[int, int]] = set()
        for panel in board["panels"]:
            grid = panel["gridPos"]
            assert grid["x"] + grid["w"] <= 24
            area = {
                (x, y) for x in range(grid["x"], grid["x"] + grid["w"]) for y in range(grid["y"], grid["y"] + grid["h"])
            }
            assert not cells & area, panel["title"]
            cells |= area
        assert [p["id"] for p in board["panels"]] == list(range(1, len(board["panels"]) + 1))


def test_configmap_data_is_the_dashboard_as_json():
    board = gpu_fleet_dashboard()
    data = dashboard_configmap_data(board)
    assert list(data) == ["modelplane-gpu-fleet.json"]
    assert json.loads(data["modelplane-gpu-fleet.json"]) == board


def test_repeated_ref_ids_and_long_uids_are_refused():
    with pytest.raises(ValueError, match="repeat refIds"):
        timeseries("t", [target("up"), target("up")])
    with pytest.raises(ValueError, match=r"^uid='x{41}'"):
        dashboard("x" * 41, "t", [stat("s", "up")])


def test_inference_dashboard_shows_batch_size_and_requests_in_flight() -> None:

    titles = {panel["title"] for panel in inference_service_dashboard()["panels"]}
    assert {"Average batch size by model", "Requests in flight by model", "Queue depth by model"} <= titles
