import pulumi
import pulumi_kubernetes as k8s
import pytest

from modelplane.components.alerting.gpu_rules import gpu_rules
from modelplane.components.alerting.rules import prometheus_rule_manifest
from modelplane.components.prometheus_rule import (
    ScrapeEndpoint,
    monitor,
    pod_monitor,
    pod_monitor_spec,
    prometheus_rule,
    service_monitor_spec,
)
from tests.resources import assert_rejected_before_children

PROMETHEUS_RULE = "kubernetes:monitoring.coreos.com/v1:PrometheusRule"
SERVICE_MONITOR = "kubernetes:monitoring.coreos.com/v1:ServiceMonitor"
POD_MONITOR = "kubernetes:monitoring.coreos.com/v1:PodMonitor"
METRICS = ScrapeEndpoint(port="metrics")


def test_endpoint_defaults_to_metrics_path_every_30s():
    assert METRICS.as_spec() == {"port": "metrics", "path": "/metrics", "interval": "30s"}


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"port": "Metrics"}, r"^port='Metrics'"),
        ({"port": "metrics", "path": "metrics"}, r"^path='metrics'"),
        ({"port": "metrics", "interval": "30 seconds"}, r"^interval='30 seconds'"),
    ],
)
def test_bad_endpoint_is_refused_naming_the_field(fields, message):
    with pytest.raises(ValueError, match=message):
        ScrapeEndpoint(**fields)


def test_service_monitor_spec_selects_by_labels_in_its_own_namespace():
    spec = service_monitor_spec({"app": "chat"}, [METRICS])
    assert spec == {
        "selector": {"matchLabels": {"app": "chat"}},
        "endpoints": [{"port": "metrics", "path": "/metrics", "interval": "30s"}],
    }


def test_service_monitor_spec_with_namespaces_and_target_labels():
    spec = service_monitor_spec({"app": "chat"}, [METRICS], namespaces=["serving"], target_labels=["team"])
    assert spec["namespaceSelector"] == {"matchNames": ["serving"]}
    assert spec["targetLabels"] == ["team"]


def test_pod_monitor_spec_uses_pod_metrics_endpoints():
    spec = pod_monitor_spec({"job-name": "llama-ft"}, [METRICS], pod_target_labels=["job-name"])
    assert spec == {
        "selector": {"matchLabels": {"job-name": "llama-ft"}},
        "podMetricsEndpoints": [{"port": "metrics", "path": "/metrics", "interval": "30s"}],
        "podTargetLabels": ["job-name"],
    }


def test_empty_selector_is_refused_since_it_would_scrape_everything():
    with pytest.raises(ValueError, match=r"^ServiceMonitor: match_labels is empty"):
        service_monitor_spec({}, [METRICS])


def test_no_endpoint_is_refused():
    with pytest.raises(ValueError, match=r"^PodMonitor: endpoints is empty"):
        pod_monitor_spec({"app": "x"}, [])


def test_bad_namespace_is_refused():
    with pytest.raises(ValueError, match=r"namespaces\[\]='Serving'"):
        service_monitor_spec({"app": "x"}, [METRICS], namespaces=["Serving"])


@pytest.fixture
def monitoring_objects(run_program):
    def program() -> None:
        provider = k8s.Provider("cluster", kubeconfig="{}")
        opts = pulumi.ResourceOptions(provider=provider)
        prometheus_rule("gpu-rules", name="gpu", namespace="monitoring", groups=[gpu_rules()], opts=opts)
        monitor(
            "chat-monitor",
            kind="ServiceMonitor",
            name="chat",
            namespace="serving",
            spec=service_monitor_spec({"app": "chat"}, [METRICS]),
            opts=opts,
        )
        pod_monitor(
            "trainer-monitor",
            name="llama-ft",
            namespace="training",
            match_labels={"job-name": "llama-ft"},
            endpoints=[METRICS],
            labels={"team": "research"},
            opts=opts,
        )

    return run_program(program)


def test_prometheus_rule_holds_the_rendered_groups_unchanged(monitoring_objects):
    rule = monitoring_objects.one(PROMETHEUS_RULE, "gpu-rules")
    expected = prometheus_rule_manifest("gpu", "monitoring", [gpu_rules()], {"app.kubernetes.io/part-of": "modelplane"})
    assert rule.inputs["apiVersion"] == "monitoring.coreos.com/v1"
    assert rule.inputs["kind"] == "PrometheusRule"
    assert rule.inputs["metadata"] == expected["metadata"]
    assert rule.inputs["spec"] == expected["spec"]


def test_service_monitor_resource(monitoring_objects):
    monitor = monitoring_objects.one(SERVICE_MONITOR, "chat-monitor")
    assert monitor.inputs["metadata"] == {
        "name": "chat",
        "namespace": "serving",
        "labels": {"app.kubernetes.io/part-of": "modelplane"},
    }
    assert monitor.inputs["spec"] == service_monitor_spec({"app": "chat"}, [METRICS])


def test_pod_monitor_resource_merges_labels(monitoring_objects):
    monitor = monitoring_objects.one(POD_MONITOR, "trainer-monitor")
    assert monitor.inputs["metadata"]["labels"] == {"app.kubernetes.io/part-of": "modelplane", "team": "research"}
    assert monitor.inputs["spec"]["podMetricsEndpoints"] == [{"port": "metrics", "path": "/metrics", "interval": "30s"}]


def test_helpers_use_the_callers_provider(monitoring_objects):
    provider = monitoring_objects.one("pulumi:providers:kubernetes", "cluster")
    for type_ in (PROMETHEUS_RULE, SERVICE_MONITOR, POD_MONITOR):
        assert monitoring_objects.one(type_).provider.startswith(provider.urn + "::")


def test_bad_name_fails_before_the_resource(run_program):
    assert_rejected_before_children(
        run_program,
        lambda: monitor(
            "m",
            kind="ServiceMonitor",
            name="Chat",
            namespace="serving",
            spec=service_monitor_spec({"app": "chat"}, [METRICS]),
        ),
        r"^name='Chat'",
        [],
    )
