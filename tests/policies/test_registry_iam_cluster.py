from __future__ import annotations

import json
from typing import Any

import pytest

from modelplane.policies.rules import cluster, iam, registry
from modelplane.policies.rules.rule import ResourceRule
from tests.policies.harness import messages, resource

REPOSITORY = "aws:ecr/repository:Repository"
CLUSTER = "aws:eks/cluster:Cluster"
GOOD_REPOSITORY = {
    "imageScanningConfiguration": {"scanOnPush": True},
    "imageTagMutability": "IMMUTABLE",
    "encryptionConfigurations": [{"encryptionType": "KMS", "kmsKey": "arn:aws:kms:us-east-1:1:key/k"}],
}
GOOD_CLUSTER = {
    "encryptionConfig": {"resources": ["secrets"], "provider": {"keyArn": "arn:aws:kms:us-east-1:1:key/k"}},
    "enabledClusterLogTypes": list(cluster.CONTROL_PLANE_LOG_TYPES),
    "vpcConfig": {"endpointPublicAccess": False, "endpointPrivateAccess": True},
}

CASES: list[tuple[ResourceRule, str, dict[str, Any], dict[str, Any]]] = [
    (registry.ECR_SCAN_ON_PUSH, REPOSITORY, GOOD_REPOSITORY, {**GOOD_REPOSITORY, "imageScanningConfiguration": {}}),
    (registry.ECR_IMMUTABLE_TAGS, REPOSITORY, GOOD_REPOSITORY, {**GOOD_REPOSITORY, "imageTagMutability": "MUTABLE"}),
    (registry.ECR_KMS_ENCRYPTION, REPOSITORY, GOOD_REPOSITORY, {**GOOD_REPOSITORY, "encryptionConfigurations": None}),
    (
        registry.ECR_KMS_ENCRYPTION,
        REPOSITORY,
        GOOD_REPOSITORY,
        {**GOOD_REPOSITORY, "encryptionConfigurations": [{"encryptionType": "AES256"}]},
    ),
    (cluster.EKS_SECRETS_ENCRYPTION, CLUSTER, GOOD_CLUSTER, {**GOOD_CLUSTER, "encryptionConfig": None}),
    (
        cluster.EKS_SECRETS_ENCRYPTION,
        CLUSTER,
        GOOD_CLUSTER,
        {**GOOD_CLUSTER, "encryptionConfig": {"resources": ["secrets"], "provider": {"keyArn": ""}}},
    ),
    (
        cluster.EKS_SECRETS_ENCRYPTION,
        CLUSTER,
        GOOD_CLUSTER,
        {
            **GOOD_CLUSTER,
            "encryptionConfig": {"resources": [], "provider": {"keyArn": "arn:aws:kms:us-east-1:1:key/k"}},
        },
    ),
    (cluster.EKS_CONTROL_PLANE_LOGGING, CLUSTER, GOOD_CLUSTER, {**GOOD_CLUSTER, "enabledClusterLogTypes": ["api"]}),
    (
        cluster.EKS_PRIVATE_ENDPOINT,
        CLUSTER,
        GOOD_CLUSTER,
        {**GOOD_CLUSTER, "vpcConfig": {"endpointPrivateAccess": True}},
    ),
]


@pytest.mark.parametrize(("rule", "type_", "good", "bad"), CASES, ids=[f"{c[0].name}-{i}" for i, c in enumerate(CASES)])
def test_rule_passes_the_good_resource_and_fires_on_the_bad(
    rule: ResourceRule, type_: str, good: dict[str, Any], bad: dict[str, Any]
) -> None:
    assert messages(rule, [resource(type_, "good", good)]) == []
    assert len(messages(rule, [resource(type_, "bad", bad)])) == 1


def test_rules_ignore_other_resource_types() -> None:
    assert messages(registry.ECR_SCAN_ON_PUSH, [resource(CLUSTER, "c", {})]) == []


def test_unknown_values_are_not_reported() -> None:
    unknown = {
        **GOOD_CLUSTER,
        "enabledClusterLogTypes": "[unknown]",
        "vpcConfig": {"endpointPublicAccess": "[unknown]"},
    }
    assert messages(cluster.EKS_CONTROL_PLANE_LOGGING, [resource(CLUSTER, "c", unknown)]) == []
    assert messages(cluster.EKS_PRIVATE_ENDPOINT, [resource(CLUSTER, "c", unknown)]) == []


def role_policy(*statements: dict[str, Any]) -> dict[str, Any]:
    document = json.dumps({"Version": "2012-10-17", "Statement": list(statements)})
    return resource("aws:iam/rolePolicy:RolePolicy", "job-artifacts", {"policy": document, "role": "job-role"})


SCOPED = {
    "Sid": "WriteOutputs",
    "Effect": "Allow",
    "Action": ["s3:PutObject"],
    "Resource": ["arn:aws:s3:::bucket/checkpoints/job/*"],
}


def test_scoped_policy_passes() -> None:
    deny_all = {"Effect": "Deny", "Action": "*", "Resource": "*"}
    assert messages(iam.IAM_NO_WILDCARDS, [role_policy(SCOPED, deny_all)]) == []


@pytest.mark.parametrize(
    "statement",
    [
        {**SCOPED, "Action": "*"},
        {**SCOPED, "Action": ["s3:*"]},
        {**SCOPED, "Resource": "*"},
        {**SCOPED, "Resource": ["arn:aws:s3:::bucket/*"]},
        {"Effect": "Allow", "NotAction": "iam:*", "Resource": "arn:aws:s3:::bucket/x/*"},
    ],
    ids=["all-actions", "service-wildcard", "all-resources", "whole-bucket", "not-action"],
)
def test_wildcard_grants_fire(statement: dict[str, Any]) -> None:
    (message,) = messages(iam.IAM_NO_WILDCARDS, [role_policy(SCOPED, statement)])
    assert message.startswith("Statement[1]")


def test_policy_document_not_yet_known_is_skipped() -> None:
    policy = resource("aws:iam/policy:Policy", "p", {"policy": "[unknown]"})
    assert messages(iam.IAM_NO_WILDCARDS, [policy]) == []
