"""The cluster's monitoring: Prometheus, Alertmanager and Grafana (kube-prometheus-stack), GPU metrics
(dcgm-exporter), modelplane's alert rules and dashboards.

Secrets never reach Helm values: Grafana's admin password and Alertmanager's configuration (which
holds receiver webhooks and keys) live in Secrets the charts reference by name.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, NotRequired, TypedDict

import pulumi
import pulumi_kubernetes as k8s

from modelplane.components.alerting.rules import RuleGroup, render_rules_file
from modelplane.components.alertmanager_config import (
    PROMETHEUS_DURATION,
    AlertRouting,
    alertmanager_yaml,
    check_receiver_secrets,
    routing_problems,
)
from modelplane.components.grafana_dashboards import (
    DASHBOARD_LABEL,
    DASHBOARD_LABEL_VALUE,
    PROMETHEUS_DATASOURCE_UID,
    dashboard_configmap_data,
    gpu_fleet_dashboard,
    unique_dashboards,
)
from modelplane.components.prometheus_rule import MODELPLANE_LABELS, prometheus_rule
from modelplane.terms.names import check_dns_subdomain, check_kubernetes_name
from modelplane.terms.scheduling import GPU_PRESENT_LABEL, POOL_LABEL, SYSTEM_POOL_NAME, gpu_toleration

COMPONENT_TYPE = "modelplane:monitoring:MonitoringStack"
STACK_CHART = "kube-prometheus-stack"
STACK_CHART_REPOSITORY = "https://prometheus-community.github.io/helm-charts"
STACK_CHART_VERSION = "75.15.1"
"""Pinned so a chart release never changes the cluster without a reviewed commit. Helm installs the
operator's CRDs only on first install: apply the new version's CRDs before raising this."""
DCGM_CHART = "dcgm-exporter"
DCGM_CHART_REPOSITORY = "https://nvidia.github.io/dcgm-exporter/helm-charts"
DCGM_CHART_VERSION = "4.1.1"
"""Pinned like the stack chart."""
DEFAULT_NAMESPACE = "monitoring"
DEFAULT_STORAGE_CLASS = "gp2"
"""EKS creates the gp2 StorageClass in every cluster (served by the EBS CSI driver add-on); no gp3 class
exists unless someone creates one. Pass "gp3" once the platform has such a class: cheaper per IOPS."""
GRAFANA_ADMIN_SECRET = "grafana-admin"
GRAFANA_ADMIN_USER = "admin"
ALERTMANAGER_CONFIG_SECRET = "alertmanager-modelplane"
ALERTMANAGER_CONFIG_KEY = "alertmanager.yaml"
"""The key the Prometheus operator reads the configuration from."""
RULES_NAME = "modelplane-platform"
PROMETHEUS_RETENTION_SHARE = 0.85
"""Prometheus deletes old blocks past this share of its volume, before the disk fills and it stops."""
# System nodes carry this label; monitoring must keep running while GPU pools scale to zero.
SYSTEM_NODE_SELECTOR = {POOL_LABEL: SYSTEM_POOL_NAME}
EKS_HIDDEN_COMPONENTS: dict[str, tuple[str, ...]] = {
    "kubeControllerManager": ("KubeControllerManagerDown",),
    "kubeScheduler": ("KubeSchedulerDown",),
    "kubeEtcd": ("etcdMembersDown", "etcdInsufficientMembers", "etcdNoLeader"),
    "kubeProxy": ("KubeProxyDown",),
}
"""Control-plane parts EKS runs out of reach (and kube-proxy, whose metrics EKS binds to 127.0.0.1): the chart's
scrape job for each, and the alerts it gates on the same flag, which would page forever on a healthy cluster.
From kube-prometheus-stack-75.15.1, templates/prometheus/rules-1.14/kubernetes-system-{controller-manager,
scheduler,kube-proxy}.yaml and etcd.yaml: each rule file renders only when `<component>.enabled` is true."""
DEFAULT_RETENTION = "15d"
DEFAULT_STORAGE_GIB = 50
STORAGE_GIB_RANGE = (10, 16384)


class MonitoringStackArgs(TypedDict):
    environment: str
    """The environment's name (dev, staging, prod); every alert carries it as the `environment` label."""
    grafana_admin_password: pulumi.Input[str]
    """Grafana's admin password, a secret Output (`pulumi.Config("modelplane").require_secret(...)`)."""
    rule_groups: Sequence[RuleGroup]
    """The platform's alert rules (GPU, platform, ...), loaded as one PrometheusRule."""
    routing: NotRequired[AlertRouting]
    """Alertmanager's receivers and grouping; default no receivers (alerts show in Alertmanager only)."""
    prometheus_retention: NotRequired[str]
    """How long Prometheus keeps samples; default 15d."""
    prometheus_storage_gib: NotRequired[int]
    """Prometheus' persistent volume, 10 to 16384 GiB; default 50."""
    dashboards: NotRequired[Sequence[Mapping[str, Any]]]
    """Grafana dashboards besides the GPU fleet's (the workloads'), each with a unique uid."""
    receiver_secrets: NotRequired[Mapping[str, pulumi.Input[str]]]
    """Secret name -> secret value (Slack webhook URL, PagerDuty routing key, webhook URL) for every
    receiver's `secret`; default none, which suits an environment without receivers."""
    namespace: NotRequired[str]
    """Namespace created for the stack; default "monitoring"."""
    storage_class: NotRequired[str]
    """An existing StorageClass for Prometheus' volume; default "gp2" (see DEFAULT_STORAGE_CLASS)."""


@dataclass(frozen=True)
class MonitoringUrls:
    """In-cluster addresses of the stack's services (names fixed by the release name)."""

    prometheus: str
    alertmanager: str
    grafana: str


def in_cluster_urls(namespace: str) -> MonitoringUrls:
    service = f"{STACK_CHART}-{{}}.{namespace}.svc"
    return MonitoringUrls(
        prometheus=f"http://{service.format('prometheus')}:9090",
        alertmanager=f"http://{service.format('alertmanager')}:9093",
        grafana=f"http://{service.format('grafana')}:80",
    )


def prometheus_problems(at: str, retention: object, storage_gib: object) -> list[str]:
    """Every problem of Prometheus' retention and volume, each naming `at` (the config path)."""
    problems = []
    if not isinstance(retention, str) or not PROMETHEUS_DURATION.match(retention):
        problems.append(f"{at}.prometheus_retention={retention!r}: not a Prometheus duration; use e.g. '15d'")
    low, high = STORAGE_GIB_RANGE
    if isinstance(storage_gib, bool) or not isinstance(storage_gib, int) or not low <= storage_gib <= high:
        problems.append(f"{at}.prometheus_storage_gib={storage_gib!r}: must be a whole number from {low} to {high}")
    return problems


def kube_prometheus_stack_values(
    retention: str, storage_gib: int, environment: str, storage_class: str
) -> dict[str, Any]:
    """Helm values: Prometheus sized from config and selecting every rule and monitor; no secret in here."""
    retention_size_gib = int(storage_gib * PROMETHEUS_RETENTION_SHARE)
    # Without these four flags the chart selects only objects labelled with its release name, and
    # modelplane's (and workloads') PrometheusRules, ServiceMonitors and PodMonitors would be ignored.
    select_everything = {
        "ruleSelectorNilUsesHelmValues": False,
        "serviceMonitorSelectorNilUsesHelmValues": False,
        "podMonitorSelectorNilUsesHelmValues": False,
        "probeSelectorNilUsesHelmValues": False,
    }
    return {
        # Fixes the services' names, which `in_cluster_urls` and consumers rely on.
        "fullnameOverride": STACK_CHART,
        **{component: {"enabled": False} for component in EKS_HIDDEN_COMPONENTS},
        "prometheusOperator": {
            "nodeSelector": SYSTEM_NODE_SELECTOR,
            "admissionWebhooks": {"patch": {"nodeSelector": SYSTEM_NODE_SELECTOR}},
        },
        "prometheus": {
            "prometheusSpec": {
                **select_everything,
                "retention": retention,
                # Prometheus reads GB as GiB.
                "retentionSize": f"{retention_size_gib}GB",
                "externalLabels": {"environment": environment},
                "nodeSelector": SYSTEM_NODE_SELECTOR,
                "storageSpec": {
                    "volumeClaimTemplate": {
                        "spec": {
                            "storageClassName": storage_class,
                            "accessModes": ["ReadWriteOnce"],
                            "resources": {"requests": {"storage": f"{storage_gib}Gi"}},
                        }
                    }
                },
            }
        },
        "alertmanager": {
            "alertmanagerSpec": {
                # The chart would otherwise write its own config Secret; ours holds the receivers.
                "useExistingSecret": True,
                "configSecret": ALERTMANAGER_CONFIG_SECRET,
                "nodeSelector": SYSTEM_NODE_SELECTOR,
            }
        },
        "grafana": {
            "admin": {
                "existingSecret": GRAFANA_ADMIN_SECRET,
                "userKey": "admin-user",
                "passwordKey": "admin-password",
            },
            "nodeSelector": SYSTEM_NODE_SELECTOR,
            "sidecar": {
                "dashboards": {"enabled": True, "label": DASHBOARD_LABEL, "labelValue": DASHBOARD_LABEL_VALUE},
                "datasources": {"uid": PROMETHEUS_DATASOURCE_UID},
            },
        },
        "kube-state-metrics": {
            "nodeSelector": SYSTEM_NODE_SELECTOR,
            # The node pool alerts count nodes by this label, which kube-state-metrics drops unless allowed.
            "metricLabelsAllowlist": [f"nodes=[{POOL_LABEL}]"],
        },
        # node-exporter keeps its chart default: a DaemonSet tolerating every taint, GPU nodes included.
    }


def dcgm_exporter_values() -> dict[str, Any]:
    """Helm values: one exporter per GPU node and none elsewhere, scraped through its ServiceMonitor."""
    return {
        "nodeSelector": {GPU_PRESENT_LABEL: "true"},
        "tolerations": [gpu_toleration()],
        "serviceMonitor": {"enabled": True, "interval": "15s"},
    }


def grafana_admin_string_data(password: pulumi.Input[str]) -> dict[str, pulumi.Input[str]]:
    return {"admin-user": GRAFANA_ADMIN_USER, "admin-password": pulumi.Output.secret(password)}


def _check_args(args: MonitoringStackArgs) -> None:
    check_kubernetes_name("environment", args.get("environment", ""))
    if args.get("grafana_admin_password") is None:
        raise ValueError(
            "grafana_admin_password=None: pass the secret, e.g. "
            "pulumi.Config('modelplane').require_secret('grafana_admin_password')"
        )
    check_kubernetes_name("namespace", args.get("namespace", DEFAULT_NAMESPACE))
    check_dns_subdomain("storage_class", args.get("storage_class", DEFAULT_STORAGE_CLASS))
    routing = args.get("routing", {})
    problems = routing_problems("routing", routing) + prometheus_problems(
        "args",
        args.get("prometheus_retention", DEFAULT_RETENTION),
        args.get("prometheus_storage_gib", DEFAULT_STORAGE_GIB),
    )
    if problems:
        raise ValueError("; ".join(problems))
    rule_groups = args.get("rule_groups")
    if not rule_groups or not all(isinstance(g, RuleGroup) for g in rule_groups):
        raise ValueError(f"rule_groups={rule_groups!r}: must be one or more RuleGroups, e.g. (gpu_rules(),)")
    try:
        render_rules_file(rule_groups)
    except ValueError as error:
        raise ValueError(f"rule_groups: {error}") from None
    check_receiver_secrets(routing, set(args.get("receiver_secrets", {})))
    unique_dashboards([gpu_fleet_dashboard(), *args.get("dashboards", [])])


class MonitoringStack(pulumi.ComponentResource):
    """kube-prometheus-stack and dcgm-exporter, pinned, with modelplane's rules, dashboards and alert routing.

    Pass the cluster's Kubernetes provider through opts.
    """

    namespace: pulumi.Output[str]
    """The stack's namespace, once created."""
    prometheus_url: pulumi.Output[str]
    """Prometheus' in-cluster URL, once the release is deployed."""
    alertmanager_url: pulumi.Output[str]
    grafana_url: pulumi.Output[str]

    def __init__(self, name: str, args: MonitoringStackArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__(COMPONENT_TYPE, name, {}, opts)
        _check_args(args)
        routing = args.get("routing", {})
        namespace = args.get("namespace", DEFAULT_NAMESPACE)
        receiver_secrets = dict(args.get("receiver_secrets", {}))
        child = pulumi.ResourceOptions(parent=self)

        namespace_resource = k8s.core.v1.Namespace(
            f"{name}-namespace",
            metadata=k8s.meta.v1.ObjectMetaArgs(name=namespace, labels=dict(MODELPLANE_LABELS)),
            opts=child,
        )
        namespace_name = namespace_resource.metadata.apply(lambda meta: meta.name or namespace)

        def in_namespace(object_name: str, labels: Mapping[str, str] | None = None) -> k8s.meta.v1.ObjectMetaArgs:
            return k8s.meta.v1.ObjectMetaArgs(
                name=object_name, namespace=namespace_name, labels={**MODELPLANE_LABELS, **(labels or {})}
            )

        grafana_admin = k8s.core.v1.Secret(
            f"{name}-grafana-admin",
            metadata=in_namespace(GRAFANA_ADMIN_SECRET),
            type="Opaque",
            string_data=grafana_admin_string_data(args["grafana_admin_password"]),
            opts=child,
        )
        # Computes the YAML only; the Secret itself is created here, outside the apply.
        config_yaml: pulumi.Output[str] = pulumi.Output.secret(
            pulumi.Output.all(**receiver_secrets).apply(lambda resolved: alertmanager_yaml(routing, resolved))
        )
        alertmanager_config = k8s.core.v1.Secret(
            f"{name}-alertmanager-config",
            metadata=in_namespace(ALERTMANAGER_CONFIG_SECRET),
            type="Opaque",
            string_data={ALERTMANAGER_CONFIG_KEY: config_yaml},
            opts=child,
        )

        stack_release = k8s.helm.v3.Release(
            f"{name}-kube-prometheus-stack",
            name=STACK_CHART,
            chart=STACK_CHART,
            version=STACK_CHART_VERSION,
            repository_opts=k8s.helm.v3.RepositoryOptsArgs(repo=STACK_CHART_REPOSITORY),
            namespace=namespace_name,
            values=kube_prometheus_stack_values(
                args.get("prometheus_retention", DEFAULT_RETENTION),
                args.get("prometheus_storage_gib", DEFAULT_STORAGE_GIB),
                args["environment"],
                args.get("storage_class", DEFAULT_STORAGE_CLASS),
            ),
            # A failed upgrade rolls back instead of leaving the cluster unwatched.
            atomic=True,
            timeout=900,
            # The charts reference both Secrets by name: they must exist before the pods start.
            opts=pulumi.ResourceOptions(parent=self, depends_on=[grafana_admin, alertmanager_config]),
        )
        # Its ServiceMonitor needs the operator's CRDs, which come with the stack release.
        after_stack = pulumi.ResourceOptions(parent=self, depends_on=[stack_release])
        k8s.helm.v3.Release(
            f"{name}-dcgm-exporter",
            # Also the Service's name, hence the `job` label gpu_rules watches ("dcgm-exporter").
            name=DCGM_CHART,
            chart=DCGM_CHART,
            version=DCGM_CHART_VERSION,
            repository_opts=k8s.helm.v3.RepositoryOptsArgs(repo=DCGM_CHART_REPOSITORY),
            namespace=namespace_name,
            values=dcgm_exporter_values(),
            atomic=True,
            opts=after_stack,
        )
        for board in unique_dashboards([gpu_fleet_dashboard(), *args.get("dashboards", [])]):
            k8s.core.v1.ConfigMap(
                f"{name}-dashboard-{board['uid']}",
                metadata=in_namespace(f"dashboard-{board['uid']}", {DASHBOARD_LABEL: DASHBOARD_LABEL_VALUE}),
                data=dashboard_configmap_data(board),
                opts=child,
            )
        prometheus_rule(
            f"{name}-rules",
            name=RULES_NAME,
            namespace=namespace,
            groups=args["rule_groups"],
            opts=after_stack,
        )

        urls = in_cluster_urls(namespace)
        # Resolved through the release so consumers wait until the services exist.
        self.namespace = namespace_name
        self.prometheus_url = stack_release.id.apply(lambda _: urls.prometheus)
        self.alertmanager_url = stack_release.id.apply(lambda _: urls.alertmanager)
        self.grafana_url = stack_release.id.apply(lambda _: urls.grafana)
        self.register_outputs(
            {
                "namespace": self.namespace,
                "prometheus_url": self.prometheus_url,
                "alertmanager_url": self.alertmanager_url,
                "grafana_url": self.grafana_url,
            }
        )
