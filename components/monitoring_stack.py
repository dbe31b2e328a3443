"""The cluster's monitoring: Prometheus, Alertmanager and Grafana (kube-prometheus-stack), GPU metrics
(dcgm-exporter), modelplane's alert rules and dashboards.

Secrets never reach Helm values: Grafana's admin password and Alertmanager's configuration (which
holds receiver webhooks and keys) live in Secrets the charts reference by name.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, NotRequired, TypedDict

import pulumi
import pulumi_kubernetes as k8s

from components.alerting.platform_rules import POOL_NODE_LABEL
from components.alerting.rules import RuleGroup, render_rules_file
from components.alertmanager_config import alertmanager_yaml, check_receiver_secrets
from components.gpu_nodes import GPU_PRESENT_LABEL, POOL_LABEL, SYSTEM_POOL_NAME, gpu_toleration
from components.grafana_dashboards import (
    DASHBOARD_LABEL,
    DASHBOARD_LABEL_VALUE,
    PROMETHEUS_DATASOURCE_UID,
    dashboard_configmap_data,
    platform_dashboards,
)
from components.prometheus_rule import MODELPLANE_LABELS, prometheus_rule
from modelplane.config import MonitoringConfig

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
_DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$")
_DNS_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?$")


class MonitoringStackArgs(TypedDict):
    monitoring: MonitoringConfig
    """The environment's `monitoring` config section: retention, storage, receivers, grouping."""
    environment: str
    """The environment's name (dev, staging, prod); every alert carries it as the `environment` label."""
    grafana_admin_password: pulumi.Input[str]
    """Grafana's admin password, a secret Output (`pulumi.Config("modelplane").require_secret(...)`)."""
    rule_groups: Sequence[RuleGroup]
    """The platform's alert rules (GPU, platform, ...), loaded as one PrometheusRule."""
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


def kube_prometheus_stack_values(monitoring: MonitoringConfig, environment: str, storage_class: str) -> dict[str, Any]:
    """Helm values: Prometheus sized from config and selecting every rule and monitor; no secret in here."""
    retention_size_gib = int(monitoring.prometheus_storage_gib * PROMETHEUS_RETENTION_SHARE)
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
        "prometheusOperator": {
            "nodeSelector": SYSTEM_NODE_SELECTOR,
            "admissionWebhooks": {"patch": {"nodeSelector": SYSTEM_NODE_SELECTOR}},
        },
        "prometheus": {
            "prometheusSpec": {
                **select_everything,
                "retention": monitoring.prometheus_retention,
                # Prometheus reads GB as GiB.
                "retentionSize": f"{retention_size_gib}GB",
                "externalLabels": {"environment": environment},
                "nodeSelector": SYSTEM_NODE_SELECTOR,
                "storageSpec": {
                    "volumeClaimTemplate": {
                        "spec": {
                            "storageClassName": storage_class,
                            "accessModes": ["ReadWriteOnce"],
                            "resources": {"requests": {"storage": f"{monitoring.prometheus_storage_gib}Gi"}},
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
            "metricLabelsAllowlist": [f"nodes=[{POOL_NODE_LABEL}]"],
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
    monitoring = args.get("monitoring")
    if not isinstance(monitoring, MonitoringConfig):
        raise ValueError(f"monitoring={monitoring!r}: must be the environment's MonitoringConfig")
    environment = args.get("environment")
    if not isinstance(environment, str) or not _DNS_LABEL.match(environment):
        raise ValueError(f"environment={environment!r}: must be the environment's name, e.g. 'dev'")
    if args.get("grafana_admin_password") is None:
        raise ValueError(
            "grafana_admin_password=None: pass the secret, "
            f"pulumi.Config('modelplane').require_secret({monitoring.grafana_admin_password_secret!r})"
        )
    namespace = args.get("namespace", DEFAULT_NAMESPACE)
    if not isinstance(namespace, str) or not _DNS_LABEL.match(namespace):
        raise ValueError(f"namespace={namespace!r}: must be a DNS label (lowercase, digits, -), e.g. 'monitoring'")
    storage_class = args.get("storage_class", DEFAULT_STORAGE_CLASS)
    if not isinstance(storage_class, str) or not _DNS_SUBDOMAIN.match(storage_class):
        raise ValueError(f"storage_class={storage_class!r}: must name an existing StorageClass, e.g. 'gp2'")
    rule_groups = args.get("rule_groups")
    if not rule_groups or not all(isinstance(g, RuleGroup) for g in rule_groups):
        raise ValueError(f"rule_groups={rule_groups!r}: must be one or more RuleGroups, e.g. (gpu_rules(),)")
    try:
        render_rules_file(rule_groups)
    except ValueError as error:
        raise ValueError(f"rule_groups: {error}") from None
    check_receiver_secrets(monitoring, set(args.get("receiver_secrets", {})))


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
        monitoring = args["monitoring"]
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
            pulumi.Output.all(**receiver_secrets).apply(lambda resolved: alertmanager_yaml(monitoring, resolved))
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
                monitoring, args["environment"], args.get("storage_class", DEFAULT_STORAGE_CLASS)
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
        for board in platform_dashboards():
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
