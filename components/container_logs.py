"""Container logs shipped to CloudWatch Logs, so a pod's output outlives the pod.

Fluent Bit (the `aws-for-fluent-bit` chart) runs on every node, GPU nodes included, tails the containers' log
files, adds each line's Kubernetes metadata, merges JSON lines into fields, and writes one log stream per
container (`<namespace>.<pod>.<container>`) into a log group the stack owns: KMS-encrypted with a key of its
own, with a retention from config. Fluent Bit may only write into that group (EKS Pod Identity).
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from typing import Any, NotRequired, TypedDict

import pulumi
import pulumi_aws as aws
import pulumi_kubernetes as k8s

from modelplane.components.cloudwatch_logs import log_key_policy as cloudwatch_log_key_policy
from modelplane.components.cloudwatch_logs import retention_problems
from modelplane.components.iam import InlinePolicy, pod_identity
from modelplane.components.prometheus_rule import MODELPLANE_LABELS
from modelplane.terms.names import check_kubernetes_name

COMPONENT_TYPE = "modelplane:logging:ContainerLogs"
CHART = "aws-for-fluent-bit"
CHART_REPOSITORY = "https://aws.github.io/eks-charts"
CHART_VERSION = "0.2.0"
"""Pinned so a chart release never changes the cluster without a reviewed commit: AWS for Fluent Bit 3.2.1
(Fluent Bit 4.2), whose AWS credential chain reads EKS Pod Identity (fluent-bit#10115). The values keys below
are this version's (stable/aws-for-fluent-bit/values.yaml and templates/configmap.yaml)."""
RELEASE_NAME = "aws-for-fluent-bit"
SERVICE_ACCOUNT = "aws-for-fluent-bit"
"""Created by the chart; the pod identity association names it."""
DEFAULT_NAMESPACE = "logging"
"""A namespace of its own: Fluent Bit mounts the nodes' /var/log, which restricted namespaces forbid."""

DEFAULT_RETENTION_DAYS = 30
LOG_GROUP_ROOT = "/modelplane"
APPLICATION_LOGS = "application"
"""The containers' logs; the only group shipped (node and control-plane logs are not)."""
_CLUSTER_NAME = re.compile(r"^[0-9A-Za-z][A-Za-z0-9_-]{0,99}$")
"""EKS's rule for cluster names, which also keeps the log group names valid."""

STREAM_FIELDS = ("namespace_name", "pod_name", "container_name")
"""The Kubernetes filter's fields a stream is named by, in order."""
STREAM_SEPARATOR = "."
"""Fluent Bit's record accessor ends a template variable only at '.' or ','; namespaces and container names
hold no '.', so `<namespace>.<pod>.<container>` splits back unambiguously."""
FALLBACK_STREAM_PREFIX = "unresolved."
"""A record without Kubernetes metadata (the template fails) goes to `unresolved.<tag>`; the plugin needs a
prefix or a fixed name even with a template."""
MERGED_LOG_KEY = "data"
"""Where the Kubernetes filter puts a JSON line's fields: apart from the record's own `time`, `stream`, `log`."""
SHIPPER_ACTIONS = ("logs:CreateLogStream", "logs:DescribeLogStreams", "logs:PutLogEvents")
"""What Fluent Bit does in the group; no CreateLogGroup or PutRetentionPolicy: the stack owns the group."""
PRIVILEGED = {"pod-security.kubernetes.io/enforce": "privileged"}
TOLERATE_EVERYTHING = {"operator": "Exists"}
"""A toleration matching every taint: the GPU taint, and whatever a pool adds later."""


class ContainerLogsArgs(TypedDict):
    cluster_name: str
    """The EKS cluster's name; plain, as the log group names, the key policy and the association name it."""
    retention_days: NotRequired[int]
    """How long CloudWatch keeps the lines, one of RETENTION_DAYS; default 30."""
    namespace: NotRequired[str]
    """Namespace created for Fluent Bit; default "logging"."""
    tags: NotRequired[Mapping[str, str]]
    """Tags for every AWS resource."""


def log_group_name(cluster_name: str, kind: str = APPLICATION_LOGS) -> str:
    """`/modelplane/<cluster>/<kind>`: the stack's log groups, apart from EKS's own `/aws/eks/...`."""
    return f"{LOG_GROUP_ROOT}/{cluster_name}/{kind}"


def log_group_pattern(cluster_name: str) -> str:
    """Every log group of the cluster, as the tail of a log-group ARN (the key's policy grants these)."""
    return f"{LOG_GROUP_ROOT}/{cluster_name}/*"


def log_stream_template() -> str:
    """Fluent Bit's `log_stream_template`: one stream per container, `<namespace>.<pod>.<container>`."""
    return STREAM_SEPARATOR.join(f"$kubernetes['{field}']" for field in STREAM_FIELDS)


def log_stream_name(namespace: str, pod: str, container: str) -> str:
    """The stream a container's lines land in (what `log_stream_template` renders to)."""
    return STREAM_SEPARATOR.join((namespace, pod, container))


def log_stream_prefix(namespace: str, pod_prefix: str) -> str:
    """The prefix of the streams of every pod whose name starts with `pod_prefix`, for `logStreamNamePrefix`."""
    return f"{namespace}{STREAM_SEPARATOR}{pod_prefix}"


def split_log_stream_name(stream: str) -> tuple[str, str, str] | None:
    """(namespace, pod, container) of a container's stream; None for a stream of another shape."""
    namespace, dot, rest = stream.partition(STREAM_SEPARATOR)
    pod, dot_too, container = rest.rpartition(STREAM_SEPARATOR)
    if not (dot and dot_too and namespace and pod and container):
        return None
    return namespace, pod, container


def log_key_policy(partition: str, dns_suffix: str, region: str, account_id: str, cluster_name: str) -> dict[str, Any]:
    """The log key's policy: CloudWatch Logs in this region may use it only for this cluster's log groups."""
    return cloudwatch_log_key_policy(
        partition, dns_suffix, region, account_id, log_group_pattern(cluster_name), "TheClustersLogGroups"
    )


def shipper_policy(log_group_arns: Sequence[str]) -> dict[str, Any]:
    """Fluent Bit's IAM policy: create streams in, describe and write to exactly these log groups.

    A log group's ARN names the group; `<arn>:*` its streams, which PutLogEvents acts on."""
    resources = [resource for arn in log_group_arns for resource in (arn, f"{arn}:*")]
    return {
        "Version": "2012-10-17",
        "Statement": [
            {"Sid": "ShipContainerLogs", "Effect": "Allow", "Action": list(SHIPPER_ACTIONS), "Resource": resources}
        ],
    }


def fluent_bit_values(region: pulumi.Input[str], application_log_group: pulumi.Input[str]) -> dict[str, Any]:
    """Helm values: tail every container's log file, add its Kubernetes metadata and merge JSON lines, write one
    stream per container into the application log group; a pod on every node, whatever its taints."""
    return {
        "serviceAccount": {"create": True, "name": SERVICE_ACCOUNT},
        "input": {
            "enabled": True,
            "tag": "kube.*",
            "path": "/var/log/containers/*.log",
            # containerd writes CRI lines; the parser joins the partial lines of a long one.
            "multilineParser": "docker, cri",
        },
        "filter": {
            "enabled": True,
            "match": "kube.*",
            "mergeLog": "On",
            "mergeLogKey": MERGED_LOG_KEY,
            # The merged fields replace the raw line, instead of every byte being shipped (and paid for) twice.
            "keepLog": "Off",
            # Annotations are long and rarely read; labels stay (they name the workload).
            "extraFilters": "Annotations         Off",
        },
        "cloudWatch": {"enabled": False},
        "cloudWatchLogs": {
            "enabled": True,
            "match": "kube.*",
            "region": region,
            "logGroupName": application_log_group,
            "logStreamPrefix": FALLBACK_STREAM_PREFIX,
            "logStreamTemplate": log_stream_template(),
            # The stack owns the group (retention, key); the chart's template writes the option only when true,
            # so false leaves the plugin's default, which is off.
            "autoCreateGroup": False,
        },
        "tolerations": [TOLERATE_EVERYTHING],
        # Evicted last and scheduled first: a node's logs matter most when it is under pressure.
        "priorityClassName": "system-node-critical",
    }


def _check_args(at: str, args: ContainerLogsArgs) -> tuple[str, int, str]:
    cluster_name = args.get("cluster_name")
    if not isinstance(cluster_name, str) or not _CLUSTER_NAME.match(cluster_name):
        raise ValueError(
            f"{at}.cluster_name={cluster_name!r}: give the EKS cluster's name as a plain string "
            "(letters, digits, '-' and '_', at most 100), e.g. 'modelplane-dev'"
        )
    retention_days = args.get("retention_days", DEFAULT_RETENTION_DAYS)
    problems = retention_problems(f"{at}.retention_days", retention_days)
    if problems:
        raise ValueError("; ".join(problems))
    namespace = args.get("namespace", DEFAULT_NAMESPACE)
    check_kubernetes_name(f"{at}.namespace", namespace)
    return cluster_name, int(retention_days), namespace


class ContainerLogs(pulumi.ComponentResource):
    """Fluent Bit on every node, shipping every container's output to a KMS-encrypted log group the stack owns.

    Pass the cluster's Kubernetes provider through opts, and depend on the system node pool (the release waits
    for Fluent Bit's pods). The cluster needs the EKS Pod Identity Agent add-on.
    """

    application_log_group_name: pulumi.Output[str]
    application_log_group_arn: pulumi.Output[str]
    kms_key_arn: pulumi.Output[str]
    log_stream_scheme: str
    """How streams are named: `<namespace>.<pod>.<container>`."""

    def __init__(self, name: str, args: ContainerLogsArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__(COMPONENT_TYPE, name, {}, opts)
        cluster_name, retention_days, namespace = _check_args(f"ContainerLogs {name!r}", args)
        tags = dict(args.get("tags", {}))
        child = pulumi.ResourceOptions(parent=self)
        invoke = pulumi.InvokeOutputOptions(parent=self)
        partition = aws.get_partition_output(opts=invoke)
        region = aws.get_region_output(opts=invoke).region
        account_id = aws.get_caller_identity_output(opts=invoke).account_id

        key_policy = pulumi.Output.all(
            partition=partition.partition, dns_suffix=partition.dns_suffix, region=region, account_id=account_id
        ).apply(lambda values: json.dumps(log_key_policy(cluster_name=cluster_name, **values)))
        key = aws.kms.Key(
            f"{name}-key",
            description=f"Encrypts the container logs of {cluster_name}",
            enable_key_rotation=True,
            deletion_window_in_days=30,
            policy=key_policy,
            tags=tags,
            opts=child,
        )
        aws.kms.Alias(
            f"{name}-key-alias", name=f"alias{LOG_GROUP_ROOT}/{cluster_name}/logs", target_key_id=key.id, opts=child
        )
        application = aws.cloudwatch.LogGroup(
            f"{name}-{APPLICATION_LOGS}",
            name=log_group_name(cluster_name),
            retention_in_days=retention_days,
            kms_key_id=key.arn,
            tags=tags,
            opts=child,
        )

        shipper = pod_identity(
            f"{name}-shipper",
            parent=self,
            cluster_name=cluster_name,
            namespace=namespace,
            service_account=SERVICE_ACCOUNT,
            policy=InlinePolicy("policy", application.arn.apply(lambda arn: json.dumps(shipper_policy([arn])))),
            tags=tags,
        )
        namespace_resource = k8s.core.v1.Namespace(
            f"{name}-namespace",
            # Said outright: Fluent Bit reads the nodes' log files through hostPath volumes.
            metadata=k8s.meta.v1.ObjectMetaArgs(name=namespace, labels={**MODELPLANE_LABELS, **PRIVILEGED}),
            opts=child,
        )
        k8s.helm.v3.Release(
            f"{name}-fluent-bit",
            name=RELEASE_NAME,
            chart=CHART,
            version=CHART_VERSION,
            repository_opts=k8s.helm.v3.RepositoryOptsArgs(repo=CHART_REPOSITORY),
            namespace=namespace_resource.metadata.apply(lambda meta: meta.name or namespace),
            values=fluent_bit_values(region, application.name),
            # A failed upgrade rolls back instead of leaving nodes without a shipper.
            atomic=True,
            # Pods started before the association would run without credentials until restarted.
            opts=pulumi.ResourceOptions(parent=self, depends_on=[shipper.policy, *shipper.pod_dependencies]),
        )

        self.application_log_group_name = application.name
        self.application_log_group_arn = application.arn
        self.kms_key_arn = key.arn
        self.log_stream_scheme = log_stream_name("<namespace>", "<pod>", "<container>")
        self.register_outputs(
            {
                "application_log_group_name": self.application_log_group_name,
                "application_log_group_arn": self.application_log_group_arn,
                "kms_key_arn": self.kms_key_arn,
                "log_stream_scheme": self.log_stream_scheme,
            }
        )
