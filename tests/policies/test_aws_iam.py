"""IAM rules over documents written every way the engine sends them: inline, attached, trust and resource policies."""

from __future__ import annotations

import json
from typing import Any

import pytest

from modelplane.components.karpenter import controller_policy, interruption_queue_policy
from modelplane.policies.rules import iam
from modelplane.policies.rules.iam_actions import expand, only_unscopable
from tests.policies.harness import resource, violations

ACCOUNT = "123456789012"
ROLE = "aws:iam/role:Role"
ROLE_POLICY = "aws:iam/rolePolicy:RolePolicy"
SERVICE_TRUST = {"Effect": "Allow", "Principal": {"Service": "pods.eks.amazonaws.com"}, "Action": "sts:AssumeRole"}
SCOPED = {
    "Sid": "WriteOutputs",
    "Effect": "Allow",
    "Action": ["s3:PutObject"],
    "Resource": ["arn:aws:s3:::bucket/checkpoints/job/*"],
}


def document(*statements: dict[str, Any]) -> str:
    return json.dumps({"Version": "2012-10-17", "Statement": list(statements)})


def decided(rule: iam.ResourceRule, type_: str, inputs: dict[str, Any]) -> list[str]:
    reports = violations(rule, [resource(type_, "subject", inputs)])
    assert not [r for r in reports if r.advice], reports
    return [r.message for r in reports]


def undecided(rule: iam.ResourceRule, type_: str, inputs: dict[str, Any]) -> str:
    (report,) = violations(rule, [resource(type_, "subject", inputs)])
    assert report.advice
    return report.message


def test_action_patterns_expand_against_the_real_action_list() -> None:
    assert {p.action for p in expand("s3:*Object")} >= {"s3:GetObject", "s3:PutObject", "s3:DeleteObject"}
    assert [p.action for p in expand("iam:Pass*")] == ["iam:PassRole"]
    assert {p.access_level for p in expand("ec2:Describe*")} <= {"List", "Read"}
    assert expand("s3:NoSuchAction*") == []
    assert only_unscopable(["ec2:DescribeInstances", "pricing:GetProducts"])
    assert not only_unscopable(["ec2:DescribeInstances", "s3:GetObject"])


@pytest.mark.parametrize(
    "statement",
    [
        SCOPED,
        {"Effect": "Allow", "Action": ["ec2:DescribeInstances", "ec2:DescribeSubnets"], "Resource": "*"},
        {"Effect": "Allow", "Action": ["s3:Get*", "s3:List*"], "Resource": "arn:aws:s3:::bucket/datasets/team/*"},
        {"Effect": "Deny", "Action": "*", "Resource": "*"},
        {
            "Effect": "Allow",
            "Action": "iam:PassRole",
            "Resource": f"arn:aws:iam::{ACCOUNT}:role/*",
            "Condition": {"StringEquals": {"aws:ResourceTag/team": "ml"}},
        },
        {"Effect": "Allow", "Action": "iam:GetRole", "Resource": f"arn:aws:iam::{ACCOUNT}:role/*"},
        {"Effect": "Allow", "Action": "iam:PassRole", "Resource": f"arn:aws:iam::{ACCOUNT}:role/modelplane-*"},
    ],
    ids=["scoped", "describe", "read-patterns", "deny", "tagged-roles", "read-every-role", "role-prefix"],
)
def test_scoped_identity_policy_passes(statement: dict[str, Any]) -> None:
    assert decided(iam.IAM_NO_WILDCARDS, ROLE_POLICY, {"policy": document(statement)}) == []


@pytest.mark.parametrize(
    ("statement", "named"),
    [
        ({**SCOPED, "Action": "s3:*Object"}, "s3:DeleteObject"),
        ({**SCOPED, "Action": ["iam:Pass*"], "Resource": f"arn:aws:iam::{ACCOUNT}:role/node"}, "iam:PassRole"),
        ({**SCOPED, "Action": "iam:*"}, "Permissions management"),
        ({**SCOPED, "Action": "*"}, "every action"),
        (
            {"Effect": "Allow", "Action": "iam:PassRole", "Resource": f"arn:aws:iam::{ACCOUNT}:role/*"},
            f"arn:aws:iam::{ACCOUNT}:role/*",
        ),
        (
            {
                "Effect": "Allow",
                "Action": "iam:PassRole",
                "Resource": f"arn:aws:iam::{ACCOUNT}:role/*",
                "Condition": {"StringEquals": {"iam:PassedToService": "ec2.amazonaws.com"}},
            },
            "iam:PassRole",
        ),
        ({"Effect": "Allow", "Action": "iam:AttachRolePolicy", "Resource": f"arn:aws:iam::{ACCOUNT}:*"}, "every"),
        ({**SCOPED, "Resource": "*"}, "wildcard resources"),
        ({**SCOPED, "Resource": "arn:aws:s3:::bucket/*"}, "wildcard resources"),
        ({"Effect": "Allow", "NotAction": "iam:*", "Resource": "arn:aws:s3:::bucket/x/*"}, "NotAction"),
        ({"Effect": "Allow", "Action": "s3:GetObject", "NotResource": "arn:aws:s3:::secret/*"}, "NotResource"),
    ],
    ids=[
        "object-pattern",
        "pass-pattern",
        "iam-service",
        "everything",
        "every-role",
        "every-role-to-ec2",
        "every-iam-entity",
        "star",
        "whole-bucket",
        "not-action",
        "not-resource",
    ],
)
def test_wildcard_grants_fire(statement: dict[str, Any], named: str) -> None:
    messages = decided(iam.IAM_NO_WILDCARDS, ROLE_POLICY, {"policy": document(SCOPED, statement)})
    assert messages
    assert all(m.startswith("Statement[1]") for m in messages)
    assert any(named in m for m in messages), messages


def test_a_roles_inline_policies_are_read() -> None:
    admin = {"Effect": "Allow", "Action": "*", "Resource": "*"}
    inputs = {
        "assumeRolePolicy": document(SERVICE_TRUST),
        "inlinePolicies": [
            {"name": "scoped", "policy": document(SCOPED)},
            {"name": "admin", "policy": document(admin)},
        ],
    }
    messages = decided(iam.IAM_NO_WILDCARDS, ROLE, inputs)
    assert len(messages) == 2
    assert all(m.startswith("inlinePolicies[1] (admin) Statement[0]") for m in messages)


@pytest.mark.parametrize(
    "policy",
    [
        {"Version": "2012-10-17", "Statement": {"Effect": "Allow", "Action": "*", "Resource": "*"}},
        json.dumps({"Version": "2012-10-17", "Statement": {"Effect": "Allow", "Action": "s3:*", "Resource": ["*"]}}),
    ],
    ids=["object-with-one-statement", "json-with-one-statement"],
)
def test_documents_arrive_as_objects_or_strings_with_one_statement(policy: Any) -> None:
    assert len(decided(iam.IAM_NO_WILDCARDS, "aws:iam/policy:Policy", {"policy": policy})) == 2


@pytest.mark.parametrize(
    ("policy", "reason"),
    [
        ("{not json", "not valid JSON"),
        (json.dumps(["Statement"]), "not an object"),
        (json.dumps({"Version": "2012-10-17"}), "no Statement"),
        (json.dumps({"Statement": ["Allow everything"]}), "Statement[0] is not an object"),
        (document({"Effect": "Allow", "Action": 5, "Resource": "*"}), "Action is neither"),
        (document({"Effect": "Allow", "Action": "s3:Frobnicate*", "Resource": "arn:aws:s3:::b/x"}), "no action"),
    ],
    ids=["json", "array", "no-statement", "string-statement", "number-action", "unknown-pattern"],
)
def test_a_document_that_cannot_be_read_is_undecided(policy: str, reason: str) -> None:
    assert reason in undecided(iam.IAM_NO_WILDCARDS, "aws:iam/userPolicy:UserPolicy", {"policy": policy})


def test_policy_document_not_yet_known_is_skipped() -> None:
    assert decided(iam.IAM_NO_WILDCARDS, "aws:iam/policy:Policy", {"policy": "[unknown]"}) == []
    assert decided(iam.IAM_NO_WILDCARDS, ROLE, {"inlinePolicies": [{"name": "p", "policy": "[unknown]"}]}) == []


def test_the_platforms_karpenter_policies_pass() -> None:
    controller = controller_policy(
        "aws", "us-east-1", ACCOUNT, "modelplane-prod", f"arn:aws:iam::{ACCOUNT}:role/node", "arn:aws:sqs:q"
    )
    assert decided(iam.IAM_NO_WILDCARDS, ROLE_POLICY, {"policy": json.dumps(controller)}) == []
    queue = {"policy": json.dumps(interruption_queue_policy("arn:aws:sqs:us-east-1:1:q"))}
    assert decided(iam.RESOURCE_POLICY_NAMES_PRINCIPALS, "aws:sqs/queuePolicy:QueuePolicy", queue) == []


@pytest.mark.parametrize(
    ("type_", "inputs"),
    [
        (
            "aws:iam/rolePolicyAttachment:RolePolicyAttachment",
            {"policyArn": "arn:aws:iam::aws:policy/AdministratorAccess"},
        ),
        ("aws:iam/userPolicyAttachment:UserPolicyAttachment", {"policyArn": "arn:aws:iam::aws:policy/PowerUserAccess"}),
        ("aws:iam/groupPolicyAttachment:GroupPolicyAttachment", {"policyArn": "arn:aws:iam::aws:policy/IAMFullAccess"}),
        (
            "aws:iam/policyAttachment:PolicyAttachment",
            {"policyArn": "arn:aws-us-gov:iam::aws:policy/AdministratorAccess"},
        ),
        (ROLE, {"managedPolicyArns": ["arn:aws:iam::aws:policy/AmazonS3FullAccess"]}),
        (
            "aws:iam/rolePolicyAttachmentsExclusive:RolePolicyAttachmentsExclusive",
            {
                "policyArns": [
                    "arn:aws:iam::aws:policy/AmazonEKSWorkerNodePolicy",
                    "arn:aws:iam::aws:policy/AdministratorAccess",
                ]
            },
        ),
    ],
    ids=["role", "user", "group", "policy-attachment-govcloud", "role-managed-arns", "exclusive"],
)
def test_attached_administrator_policies_fire(type_: str, inputs: dict[str, Any]) -> None:
    (message,) = decided(iam.IAM_NO_ADMIN_POLICIES, type_, inputs)
    assert "attach a policy granting only what the principal does" in message


@pytest.mark.parametrize(
    "arn",
    [
        "arn:aws:iam::aws:policy/AmazonEKSWorkerNodePolicy",
        "arn:aws:iam::aws:policy/service-role/AmazonEBSCSIDriverPolicy",
        f"arn:aws:iam::{ACCOUNT}:policy/AdministratorAccess",
        "[unknown]",
    ],
    ids=["worker-node", "ebs-csi", "customer-policy-of-that-name", "unknown"],
)
def test_scoped_or_own_policies_pass(arn: str) -> None:
    inputs = {"policyArn": arn, "role": "r"}
    assert decided(iam.IAM_NO_ADMIN_POLICIES, "aws:iam/rolePolicyAttachment:RolePolicyAttachment", inputs) == []


EKS_OIDC = "oidc.eks.us-east-1.amazonaws.com/id/ABC123"
GITHUB = "token.actions.githubusercontent.com"


def web_identity(issuer: str, condition: dict[str, Any] | None = None) -> dict[str, Any]:
    statement: dict[str, Any] = {
        "Effect": "Allow",
        "Principal": {"Federated": f"arn:aws:iam::{ACCOUNT}:oidc-provider/{issuer}"},
        "Action": "sts:AssumeRoleWithWebIdentity",
    }
    return {**statement, "Condition": condition} if condition else statement


@pytest.mark.parametrize(
    "statement",
    [
        {"Effect": "Allow", "Principal": "*", "Action": "sts:AssumeRole"},
        {"Effect": "Allow", "Principal": {"AWS": "*"}, "Action": "sts:AssumeRole"},
        {"Effect": "Allow", "Principal": {"AWS": ["*"]}, "Action": ["sts:AssumeRole", "sts:TagSession"]},
        {
            "Effect": "Allow",
            "Principal": {"AWS": "*"},
            "Action": "sts:AssumeRole",
            "Condition": {"StringNotEquals": {"aws:PrincipalOrgID": "o-abc"}},
        },
        {
            "Effect": "Allow",
            "Principal": {"AWS": "*"},
            "Action": "sts:AssumeRole",
            "Condition": {"StringEqualsIfExists": {"aws:PrincipalAccount": ACCOUNT}},
        },
        {"Effect": "Allow", "NotPrincipal": {"AWS": f"arn:aws:iam::{ACCOUNT}:root"}, "Action": "sts:AssumeRole"},
        web_identity(EKS_OIDC),
        web_identity(EKS_OIDC, {"StringEquals": {f"{EKS_OIDC}:aud": "sts.amazonaws.com"}}),
        web_identity(GITHUB, {"StringLike": {f"{GITHUB}:sub": "*"}}),
    ],
    ids=[
        "star",
        "aws-star",
        "aws-star-list",
        "negated-condition",
        "if-exists-condition",
        "not-principal",
        "oidc-unconditioned",
        "oidc-audience-only",
        "github-any-subject",
    ],
)
def test_trust_open_to_anyone_fires(statement: dict[str, Any]) -> None:
    inputs = {"assumeRolePolicy": document(SERVICE_TRUST, statement)}
    (message,) = decided(iam.IAM_TRUST_NAMES_PRINCIPALS, ROLE, inputs)
    assert message.startswith("Statement[1]")


@pytest.mark.parametrize(
    "statement",
    [
        SERVICE_TRUST,
        {"Effect": "Allow", "Principal": {"AWS": f"arn:aws:iam::{ACCOUNT}:root"}, "Action": "sts:AssumeRole"},
        {
            "Effect": "Allow",
            "Principal": {"AWS": "*"},
            "Action": "sts:AssumeRole",
            "Condition": {"StringEquals": {"aws:PrincipalOrgID": ["o-abc"]}},
        },
        web_identity(EKS_OIDC, {"StringEquals": {f"{EKS_OIDC}:sub": "system:serviceaccount:ml:trainer"}}),
        web_identity(GITHUB, {"StringLike": {f"{GITHUB}:sub": "repo:acme/modelplane:ref:refs/heads/main"}}),
        {
            "Effect": "Allow",
            "Principal": {"Federated": "cognito-identity.amazonaws.com"},
            "Action": "sts:AssumeRoleWithWebIdentity",
            "Condition": {"StringEquals": {"cognito-identity.amazonaws.com:aud": "us-east-1:pool"}},
        },
        {"Effect": "Deny", "Principal": "*", "Action": "sts:AssumeRole"},
    ],
    ids=["service", "own-account", "organisation", "eks-subject", "github-subject", "cognito-pool", "deny"],
)
def test_trust_naming_its_principals_passes(statement: dict[str, Any]) -> None:
    assert decided(iam.IAM_TRUST_NAMES_PRINCIPALS, ROLE, {"assumeRolePolicy": document(statement)}) == []


def test_unreadable_trust_policy_is_undecided() -> None:
    assert "assumeRolePolicy is not valid JSON" in undecided(
        iam.IAM_TRUST_NAMES_PRINCIPALS, ROLE, {"assumeRolePolicy": "{"}
    )


PUBLIC_READ = {"Effect": "Allow", "Principal": "*", "Action": "s3:GetObject", "Resource": "arn:aws:s3:::b/*"}


@pytest.mark.parametrize(
    ("type_", "statement"),
    [
        ("aws:s3/bucketPolicy:BucketPolicy", PUBLIC_READ),
        ("aws:s3/bucket:Bucket", {**PUBLIC_READ, "Principal": {"AWS": ["*"]}}),
        ("aws:kms/key:Key", {"Effect": "Allow", "Principal": {"AWS": "*"}, "Action": "kms:Decrypt", "Resource": "*"}),
        ("aws:sqs/queuePolicy:QueuePolicy", {"Effect": "Allow", "Principal": "*", "Action": "sqs:SendMessage"}),
        ("aws:sns/topicPolicy:TopicPolicy", {"Effect": "Allow", "Principal": {"AWS": "*"}, "Action": "sns:Publish"}),
        ("aws:ecr/repositoryPolicy:RepositoryPolicy", {"Effect": "Allow", "Principal": "*", "Action": "ecr:*"}),
    ],
    ids=["bucket-policy", "bucket-inline", "key", "queue", "topic", "repository"],
)
def test_resource_policy_open_to_anyone_fires(type_: str, statement: dict[str, Any]) -> None:
    (message,) = decided(iam.RESOURCE_POLICY_NAMES_PRINCIPALS, type_, {"policy": document(statement)})
    assert "any principal" in message


@pytest.mark.parametrize(
    "statement",
    [
        {**PUBLIC_READ, "Condition": {"StringEquals": {"aws:SourceVpce": "vpce-1"}}},
        {**PUBLIC_READ, "Principal": {"AWS": f"arn:aws:iam::{ACCOUNT}:root"}},
        {
            "Effect": "Allow",
            "Principal": {"AWS": "*"},
            "Action": "kms:Decrypt",
            "Resource": "*",
            "Condition": {
                "StringEquals": {"kms:CallerAccount": ACCOUNT, "kms:ViaService": "s3.us-east-1.amazonaws.com"}
            },
        },
        {**PUBLIC_READ, "Effect": "Deny"},
    ],
    ids=["vpc-endpoint", "own-account", "caller-account", "deny"],
)
def test_resource_policy_naming_its_principals_passes(statement: dict[str, Any]) -> None:
    inputs = {"policy": document(statement)}
    assert decided(iam.RESOURCE_POLICY_NAMES_PRINCIPALS, "aws:s3/bucketPolicy:BucketPolicy", inputs) == []
