import json

import pulumi
import pulumi_kubernetes as k8s
import pytest

from modelplane.components.alerting.gpu_rules import gpu_rules
from modelplane.components.alerting.platform_rules import platform_rules
from modelplane.components.alerting.rules import prometheus_rule_manifest
from modelplane.components.alertmanager_config import ReceiverKind
from modelplane.components.monitoring_stack import (
    COMPONENT_TYPE,
    DCGM_CHART,
    DCGM_CHART_REPOSITORY,
    DCGM_CHART_VERSION,
    EKS_HIDDEN_COMPONENTS,
    STACK_CHART,
    STACK_CHART_REPOSITORY,
    STACK_CHART_VERSION,
    MonitoringStack,
    MonitoringStackArgs,
    dcgm_exporter_values,
    in_cluster_urls,
    kube_prometheus_stack_values,
)
from modelplane.platform import workload_dashboards
from tests.resources import assert_rejected_before_children, dig

RELEASE = "kubernetes:helm.sh/v3:Release"
SECRET = "kubernetes:core/v1:Secret"
CONFIG_MAP = "kubernetes:core/v1:ConfigMap"
NAMESPACE = "kubernetes:core/v1:Namespace"
PROMETHEUS_RULE = "kubernetes:monitoring.coreos.com/v1:PrometheusRule"
PASSWORD = "grafana-pw-7f3a"
RECEIVER_SECRET = "https://hooks.slack.com/services/T0/B0/secret-part"
RETENTION, STORAGE_GIB = "30d", 100
RULE_GROUPS = (gpu_rules(), platform_rules({"a100": 4}))
GPU_TOLERATION = {"key": "nvidia.com/gpu", "operator": "Equal", "value": "true", "effect": "NoSchedule"}


def stack_args(**overrides) -> MonitoringStackArgs:
    args: MonitoringStackArgs = {
        "environment": "staging",
        "routing": {
            "receivers": [{"name": "ml-alerts", "kind": ReceiverKind.SLACK, "secret": "slack_url", "channel": "#ml"}]
        },
        "prometheus_retention": RETENTION,
        "prometheus_storage_gib": STORAGE_GIB,
        "dashboards": workload_dashboards(),
        "grafana_admin_password": pulumi.Output.secret(PASSWORD),
        "receiver_secrets": {"slack_url": pulumi.Output.secret(RECEIVER_SECRET)},
        "rule_groups": RULE_GROUPS,
    }
    args.update(overrides)  # type: ignore[typeddict-item]
    return args


def walk(value, path=()):
    """Every (path, leaf) in nested dicts and lists."""
    if isinstance(value, dict):
        for key, item in value.items():
            yield from walk(item, (*path, key))
    elif isinstance(value, list):
        for index, item in enumerate(value):
            yield from walk(item, (*path, index))
    else:
        yield path, value


def test_charts_are_pinned():
    assert (STACK_CHART, STACK_CHART_VERSION, STACK_CHART_REPOSITORY) == (
        "kube-prometheus-stack",
        "75.15.1",
        "https://prometheus-community.github.io/helm-charts",
    )
    assert (DCGM_CHART, DCGM_CHART_VERSION, DCGM_CHART_REPOSITORY) == (
        "dcgm-exporter",
        "4.1.1",
        "https://nvidia.github.io/dcgm-exporter/helm-charts",
    )


def test_prometheus_selects_every_rule_and_monitor_not_only_the_releases():
    spec = kube_prometheus_stack_values(RETENTION, STORAGE_GIB, "dev", "gp2")["prometheus"]["prometheusSpec"]
    for flag in (
        "ruleSelectorNilUsesHelmValues",
        "serviceMonitorSelectorNilUsesHelmValues",
        "podMonitorSelectorNilUsesHelmValues",
        "probeSelectorNilUsesHelmValues",
    ):
        assert spec[flag] is False, flag


def test_prometheus_storage_and_retention_come_from_config():
    spec = kube_prometheus_stack_values(RETENTION, STORAGE_GIB, "dev", "gp3")["prometheus"]["prometheusSpec"]
    assert spec["retention"] == "30d"
    assert spec["retentionSize"] == "85GB"
    assert spec["externalLabels"] == {"environment": "dev"}
    assert spec["storageSpec"]["volumeClaimTemplate"]["spec"] == {
        "storageClassName": "gp3",
        "accessModes": ["ReadWriteOnce"],
        "resources": {"requests": {"storage": "100Gi"}},
    }


def test_stack_runs_on_system_nodes_without_gpu_toleration():
    values = kube_prometheus_stack_values(RETENTION, STORAGE_GIB, "dev", "gp2")
    system = {"modelplane.io/pool": "system"}
    for path in (
        ("prometheusOperator", "nodeSelector"),
        ("prometheusOperator", "admissionWebhooks", "patch", "nodeSelector"),
        ("prometheus", "prometheusSpec", "nodeSelector"),
        ("alertmanager", "alertmanagerSpec", "nodeSelector"),
        ("grafana", "nodeSelector"),
        ("kube-state-metrics", "nodeSelector"),
    ):
        assert dig(values, *path) == system, path
    assert not [path for path, _ in walk(values) if "tolerations" in path]


def test_grafana_and_alertmanager_read_their_secrets_by_name():
    values = kube_prometheus_stack_values(RETENTION, STORAGE_GIB, "dev", "gp2")
    assert values["grafana"]["admin"] == {
        "existingSecret": "grafana-admin",
        "userKey": "admin-user",
        "passwordKey": "admin-password",
    }
    assert "adminPassword" not in values["grafana"]
    spec = values["alertmanager"]["alertmanagerSpec"]
    assert (spec["useExistingSecret"], spec["configSecret"]) == (True, "alertmanager-modelplane")


def test_grafana_loads_labelled_dashboards():
    sidecar = kube_prometheus_stack_values(RETENTION, STORAGE_GIB, "dev", "gp2")["grafana"]["sidecar"]
    assert sidecar["dashboards"] == {"enabled": True, "label": "grafana_dashboard", "labelValue": "1"}


def test_kube_state_metrics_exposes_the_pool_label_the_pool_alerts_need():
    values = kube_prometheus_stack_values(RETENTION, STORAGE_GIB, "dev", "gp2")
    assert values["kube-state-metrics"]["metricLabelsAllowlist"] == ["nodes=[modelplane.io/pool]"]


def test_dcgm_exporter_runs_on_gpu_nodes_only():
    values = dcgm_exporter_values()
    assert values["nodeSelector"] == {"nvidia.com/gpu.present": "true"}
    assert values["tolerations"] == [GPU_TOLERATION]
    assert values["serviceMonitor"]["enabled"] is True


def test_in_cluster_urls():
    urls = in_cluster_urls("monitoring")
    assert urls.prometheus == "http://kube-prometheus-stack-prometheus.monitoring.svc:9090"
    assert urls.alertmanager == "http://kube-prometheus-stack-alertmanager.monitoring.svc:9093"
    assert urls.grafana == "http://kube-prometheus-stack-grafana.monitoring.svc:80"


@pytest.fixture
def stack(run_program):
    outputs: dict[str, str] = {}

    def program() -> None:
        provider = k8s.Provider("cluster", kubeconfig="{}")
        monitoring = MonitoringStack("mon", stack_args(), pulumi.ResourceOptions(provider=provider))
        for key in ("namespace", "prometheus_url", "alertmanager_url", "grafana_url"):
            getattr(monitoring, key).apply(lambda value, key=key: outputs.__setitem__(key, value))

    registered = run_program(program)
    registered.outputs = outputs
    return registered


def test_children_are_named_by_role_under_the_component(stack):
    component = stack.one(COMPONENT_TYPE, "mon")
    children = {(r.type, r.name) for r in stack.children_of(component)}
    assert children == {
        (NAMESPACE, "mon-namespace"),
        (SECRET, "mon-grafana-admin"),
        (SECRET, "mon-alertmanager-config"),
        (RELEASE, "mon-kube-prometheus-stack"),
        (RELEASE, "mon-dcgm-exporter"),
        (CONFIG_MAP, "mon-dashboard-modelplane-gpu-fleet"),
        (CONFIG_MAP, "mon-dashboard-modelplane-training-run"),
        (CONFIG_MAP, "mon-dashboard-modelplane-inference-service"),
        (PROMETHEUS_RULE, "mon-rules"),
    }


def test_every_child_uses_the_callers_provider(stack):
    provider = stack.one("pulumi:providers:kubernetes", "cluster")
    for child in stack.children_of(stack.one(COMPONENT_TYPE)):
        assert child.provider.startswith(provider.urn + "::"), child.name


def test_releases_are_the_pinned_charts_in_the_namespace(stack):
    for name, chart, version, repo in (
        ("mon-kube-prometheus-stack", STACK_CHART, STACK_CHART_VERSION, STACK_CHART_REPOSITORY),
        ("mon-dcgm-exporter", DCGM_CHART, DCGM_CHART_VERSION, DCGM_CHART_REPOSITORY),
    ):
        release = stack.one(RELEASE, name)
        assert (release.inputs["chart"], release.inputs["version"]) == (chart, version)
        assert release.inputs["repositoryOpts"] == {"repo": repo}
        assert release.inputs["namespace"] == "monitoring"
        assert release.inputs["atomic"] is True


def test_dcgm_release_tolerates_the_gpu_taint_and_selects_gpu_nodes(stack):
    values = stack.one(RELEASE, "mon-dcgm-exporter").inputs["values"]
    assert values["tolerations"] == [GPU_TOLERATION]
    assert values["nodeSelector"] == {"nvidia.com/gpu.present": "true"}


def test_grafana_password_is_a_secret_and_never_in_helm_values(stack):
    secret = stack.one(SECRET, "mon-grafana-admin")
    assert secret.inputs["metadata"]["name"] == "grafana-admin"
    assert secret.inputs["stringData"] == "[secret]"
    for release in stack.of_type(RELEASE):
        assert PASSWORD not in json.dumps(release.inputs)
    assert all(PASSWORD not in json.dumps(r.inputs) for r in stack)


def test_alertmanager_config_is_a_secret_the_stack_reads_by_name(stack):
    secret = stack.one(SECRET, "mon-alertmanager-config")
    assert secret.inputs["metadata"]["name"] == "alertmanager-modelplane"
    assert secret.inputs["stringData"] == "[secret]"
    assert all(RECEIVER_SECRET not in json.dumps(r.inputs) for r in stack)


def test_stack_release_waits_for_the_secrets_it_references(stack):
    release = stack.one(RELEASE, "mon-kube-prometheus-stack")
    for name in ("mon-grafana-admin", "mon-alertmanager-config"):
        assert stack.named(name).urn in release.dependencies


def test_prometheus_rule_and_dcgm_wait_for_the_crds(stack):
    crds = stack.one(RELEASE, "mon-kube-prometheus-stack").urn
    assert crds in stack.one(PROMETHEUS_RULE, "mon-rules").dependencies
    assert crds in stack.one(RELEASE, "mon-dcgm-exporter").dependencies


def test_prometheus_rule_holds_the_given_groups(stack):
    rule = stack.one(PROMETHEUS_RULE, "mon-rules")
    expected = prometheus_rule_manifest(
        "modelplane-platform", "monitoring", RULE_GROUPS, {"app.kubernetes.io/part-of": "modelplane"}
    )
    assert rule.inputs["spec"] == expected["spec"]
    assert rule.inputs["metadata"]["namespace"] == "monitoring"


def test_dashboard_configmaps_carry_the_sidecar_label(stack):
    maps = stack.of_type(CONFIG_MAP)
    assert len(maps) == 3
    for config_map in maps:
        assert config_map.inputs["metadata"]["labels"]["grafana_dashboard"] == "1"
        assert config_map.inputs["metadata"]["namespace"] == "monitoring"
        (document,) = config_map.inputs["data"].values()
        assert json.loads(document)["uid"] in config_map.name


def test_outputs(stack):
    assert stack.outputs == {
        "namespace": "monitoring",
        "prometheus_url": "http://kube-prometheus-stack-prometheus.monitoring.svc:9090",
        "alertmanager_url": "http://kube-prometheus-stack-alertmanager.monitoring.svc:9093",
        "grafana_url": "http://kube-prometheus-stack-grafana.monitoring.svc:80",
    }


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"receiver_secrets": {}}, r"^receiver_secrets: no value for secret 'slack_url' of receiver 'ml-alerts'"),
        ({"namespace": "Monitoring"}, r"^namespace='Monitoring'"),
        ({"storage_class": ""}, r"^storage_class=''"),
        ({"environment": "Prod"}, r"^environment='Prod'"),
        ({"prometheus_retention": "a month"}, r"prometheus_retention='a month': not a Prometheus duration"),
        ({"prometheus_storage_gib": 5}, r"prometheus_storage_gib=5: must be a whole number from 10"),
        ({"routing": {"receivers": [{"name": "x", "kind": "fax", "secret": "s"}]}}, r"kind='fax'"),
        ({"dashboards": [*workload_dashboards(), *workload_dashboards()]}, r"dashboard uids .* repeat"),
        ({"grafana_admin_password": None}, r"^grafana_admin_password=None"),
        ({"rule_groups": ()}, r"^rule_groups=\(\)"),
        ({"rule_groups": (gpu_rules(), gpu_rules())}, r"^rule_groups: rule group names \['modelplane-gpu'\]"),
    ],
)
def test_bad_inputs_fail_before_any_resource(run_program, overrides, message):
    assert_rejected_before_children(
        run_program, lambda: MonitoringStack("mon", stack_args(**overrides)), message, [COMPONENT_TYPE]
    )


def test_no_scrape_job_or_alert_for_what_eks_hides() -> None:
    values = kube_prometheus_stack_values(RETENTION, STORAGE_GIB, "prod", "gp2")
    for component in ("kubeControllerManager", "kubeScheduler", "kubeEtcd", "kubeProxy"):
        assert values[component] == {"enabled": False}, component
    assert set(EKS_HIDDEN_COMPONENTS) == {"kubeControllerManager", "kubeScheduler", "kubeEtcd", "kubeProxy"}


def test_no_shipped_alert_watches_a_hidden_control_plane_part() -> None:
    """modelplane's own rules never select the jobs EKS hides, so none of them can fire for that reason."""
    from modelplane.alert_catalogue import alert_catalogue

    hidden_jobs = ("kube-controller-manager", "kube-scheduler", "kube-etcd", "kube-proxy", "etcd")
    hidden_alerts = {alert for alerts in EKS_HIDDEN_COMPONENTS.values() for alert in alerts}
    rules = [rule for group in (gpu_rules(), platform_rules({"pool": 2})) for rule in group.rules]
    assert rules
    for rule in rules:
        assert not any(f'job="{job}"' in rule.expr or f'job=~"{job}' in rule.expr for job in hidden_jobs), rule
    assert not hidden_alerts & {entry.alert for entry in alert_catalogue()}
