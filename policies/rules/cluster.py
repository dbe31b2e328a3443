"""EKS control-plane rules: Kubernetes secrets encrypted with KMS, every log type on, no public endpoint."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from modelplane.policies.rules.props import as_list, dig, is_true, is_unknown
from modelplane.policies.rules.rule import ResourceRule, Rule

CLUSTER_TYPES = frozenset({"aws:eks/cluster:Cluster"})
CONTROL_PLANE_LOG_TYPES = ("api", "audit", "authenticator", "controllerManager", "scheduler")


def _secrets_encryption(_type: str, props: dict[str, Any], _config: Mapping[str, Any]) -> list[str]:
    config = props.get("encryptionConfig")
    if is_unknown(config):
        return []
    resources = dig(config, "resources")
    key = dig(config, "provider", "keyArn")
    # An empty keyArn ("") is a string but names no key.
    if not (is_unknown(key) or (isinstance(key, str) and key.strip())):
        return [f"encryptionConfig.provider.keyArn is {key!r}; encrypt 'secrets' with a KMS key (its ARN)"]
    if not (is_unknown(resources) or "secrets" in as_list(resources)):
        return [f"encryptionConfig.resources is {resources!r}; include 'secrets'"]
    return []


def _control_plane_logging(_type: str, props: dict[str, Any], _config: Mapping[str, Any]) -> list[str]:
    enabled = props.get("enabledClusterLogTypes")
    if is_unknown(enabled):
        return []
    missing = [t for t in CONTROL_PLANE_LOG_TYPES if t not in as_list(enabled)]
    return [f"enabledClusterLogTypes lacks {', '.join(missing)}; enable all five"] if missing else []


def _private_endpoint(_type: str, props: dict[str, Any], _config: Mapping[str, Any]) -> list[str]:
    public = dig(props, "vpcConfig", "endpointPublicAccess")
    if is_unknown(public) or public is False or (isinstance(public, str) and not is_true(public)):
        return []
    # Left unset, EKS opens the public endpoint.
    return [
        "vpcConfig.endpointPublicAccess is not false; reach the API server through the VPC (endpoint_access: private)"
    ]


EKS_SECRETS_ENCRYPTION = ResourceRule(
    name="aws-eks-cluster-enable-secrets-encryption",
    description="EKS clusters encrypt Kubernetes secrets with a KMS key (envelope encryption).",
    why="Secrets (Grafana's password, Alertmanager's receiver keys) stay encrypted in etcd under a key the "
    "platform controls.",
    resource_types=CLUSTER_TYPES,
    check=_secrets_encryption,
)
EKS_CONTROL_PLANE_LOGGING = ResourceRule(
    name="aws-eks-cluster-enable-control-plane-logging",
    description="EKS clusters send all five control-plane log types to CloudWatch.",
    why="The audit and authenticator logs are the only record of who did what to the cluster.",
    resource_types=CLUSTER_TYPES,
    check=_control_plane_logging,
)
EKS_PRIVATE_ENDPOINT = ResourceRule(
    name="aws-eks-cluster-disallow-public-endpoint",
    description="The EKS API server has no public endpoint (endpointPublicAccess false).",
    why="In production the API server is reachable only from the VPC: a leaked credential alone is not enough.",
    resource_types=CLUSTER_TYPES,
    check=_private_endpoint,
)

RULES: list[Rule] = [EKS_SECRETS_ENCRYPTION, EKS_CONTROL_PLANE_LOGGING, EKS_PRIVATE_ENDPOINT]
