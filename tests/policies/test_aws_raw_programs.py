"""Programs written by hand with raw `pulumi_aws` resources, planned under the mocks and checked by the AWS rules.

Each bad resource trips exactly its rule; the same resources written soundly trip none, advice included.
"""

from __future__ import annotations

import json
from dataclasses import asdict
from typing import Any

import pulumi
import pulumi_aws as aws

from modelplane.policies.rules import cluster, compute, iam, kms, network, registry, storage
from modelplane.policies.rules.rule import Rule
from tests.conftest import ProgramRunner
from tests.policies.harness import violations

ACCOUNT = "123456789012"
RULES: list[Rule] = [
    *iam.RULES,
    *storage.RULES,
    *registry.RULES,
    *cluster.RULES,
    *kms.RULES,
    *network.RULES,
    *compute.RULES,
]
SERVICE_TRUST = json.dumps(
    {
        "Version": "2012-10-17",
        "Statement": [{"Effect": "Allow", "Principal": {"Service": "ec2.amazonaws.com"}, "Action": "sts:AssumeRole"}],
    }
)
OIDC = "token.actions.githubusercontent.com"


def findings(run_program: ProgramRunner, program: Any) -> set[tuple[str, str, bool]]:
    """(rule, resource name or '' for the stack, advice) for everything the AWS rules report on the program."""
    resources = [asdict(r) for r in run_program(program)]
    names = {r["urn"]: r["name"] for r in resources}
    return {
        (rule.name, names.get(report.urn, ""), report.advice)
        for rule in RULES
        for report in violations(rule, resources)
    }


def document(*statements: dict[str, Any]) -> str:
    return json.dumps({"Version": "2012-10-17", "Statement": list(statements)})


def tls_only(bucket_arn: pulumi.Output[str]) -> pulumi.Output[str]:
    """The TLS-only policy as people write it: the condition value in a list, the principal as {'AWS': ['*']}."""
    return bucket_arn.apply(
        lambda arn: document(
            {
                "Effect": "Deny",
                "Principal": {"AWS": ["*"]},
                "Action": ["s3:*"],
                "Resource": [arn, f"{arn}/*"],
                "Condition": {"Bool": {"aws:SecureTransport": ["false"]}},
            }
        )
    )


def sound_bucket(name: str) -> aws.s3.Bucket:
    bucket = aws.s3.Bucket(name, bucket_prefix=f"{name}-")
    aws.s3.BucketServerSideEncryptionConfiguration(
        f"{name}-encryption",
        bucket=bucket.id,
        rules=[{"apply_server_side_encryption_by_default": {"sse_algorithm": "aws:kms", "kms_master_key_id": "k"}}],
    )
    aws.s3.BucketVersioning(f"{name}-versioning", bucket=bucket.id, versioning_configuration={"status": "Enabled"})
    aws.s3.BucketPublicAccessBlock(
        f"{name}-public-access",
        bucket=bucket.id,
        block_public_acls=True,
        block_public_policy=True,
        ignore_public_acls=True,
        restrict_public_buckets=True,
    )
    aws.s3.BucketPolicy(f"{name}-policy", bucket=bucket.id, policy=tls_only(bucket.arn))
    return bucket


def test_hand_written_unsafe_resources_trip_their_rules(run_program: ProgramRunner) -> None:
    def program() -> None:
        everything = {"Effect": "Allow", "Action": "*", "Resource": "*"}
        aws.iam.Role(
            "ci-role",
            assume_role_policy=document({"Effect": "Allow", "Principal": {"AWS": "*"}, "Action": "sts:AssumeRole"}),
            inline_policies=[{"name": "everything", "policy": document(everything)}],
        )
        deployer = aws.iam.Role(
            "github-deployer",
            assume_role_policy=document(
                {
                    "Effect": "Allow",
                    "Principal": {"Federated": f"arn:aws:iam::{ACCOUNT}:oidc-provider/{OIDC}"},
                    "Action": "sts:AssumeRoleWithWebIdentity",
                    "Condition": {"StringEquals": {f"{OIDC}:aud": "sts.amazonaws.com"}},
                }
            ),
        )
        aws.iam.RolePolicyAttachment(
            "deployer-admin", role=deployer.name, policy_arn=aws.iam.ManagedPolicy.ADMINISTRATOR_ACCESS
        )
        aws.iam.RolePolicy(
            "deployer-objects",
            role=deployer.id,
            policy=document(
                {"Effect": "Allow", "Action": "s3:*Object", "Resource": "arn:aws:s3:::artifacts/models/*"},
                {"Effect": "Allow", "Action": "iam:PassRole", "Resource": f"arn:aws:iam::{ACCOUNT}:role/*"},
            ),
        )
        aws.kms.Key("data-key", description="data")
        bastion = aws.ec2.SecurityGroup(
            "bastion",
            vpc_id="vpc-1",
            ingress=[{"protocol": "tcp", "from_port": 22, "to_port": 22, "cidr_blocks": ["0.0.0.0/0"]}],
        )
        aws.vpc.SecurityGroupIngressRule(
            "bastion-everything", security_group_id=bastion.id, ip_protocol="-1", cidr_ipv6="::/0"
        )
        aws.ebs.Volume("scratch", availability_zone="us-east-1a", size=500)
        aws.ec2.Instance("debug-box", ami="ami-0abc", instance_type="g6.xlarge")
        aws.ecr.Repository(
            "images", image_tag_mutability="IMMUTABLE", image_scanning_configuration={"scan_on_push": True}
        )
        aws.eks.Cluster(
            "cluster",
            role_arn=f"arn:aws:iam::{ACCOUNT}:role/cluster",
            vpc_config={"subnet_ids": ["subnet-1"], "endpoint_public_access": False},
            enabled_cluster_log_types=list(cluster.CONTROL_PLANE_LOG_TYPES),
            encryption_config={"provider": {"key_arn": ""}, "resources": ["secrets"]},
        )
        sound_bucket("artifacts")
        aws.s3.Bucket("logs", bucket_prefix="logs-")
        aws.s3.BucketVersioning(
            "legacy-versioning", bucket="legacy-logs-bucket", versioning_configuration={"status": "Enabled"}
        )

    found = findings(run_program, program)
    assert {f for f in found if f[2]} == set(), "nothing is undecided"
    assert {(rule, name) for rule, name, _ in found} == {
        (iam.IAM_NO_WILDCARDS.name, "ci-role"),
        (iam.IAM_TRUST_NAMES_PRINCIPALS.name, "ci-role"),
        (iam.IAM_TRUST_NAMES_PRINCIPALS.name, "github-deployer"),
        (iam.IAM_NO_ADMIN_POLICIES.name, "deployer-admin"),
        (iam.IAM_NO_WILDCARDS.name, "deployer-objects"),
        (kms.KMS_KEY_ROTATION.name, "data-key"),
        (network.SECURITY_GROUP_NO_OPEN_INGRESS.name, "bastion"),
        (network.SECURITY_GROUP_NO_OPEN_INGRESS.name, "bastion-everything"),
        (compute.EBS_VOLUME_ENCRYPTED.name, "scratch"),
        (compute.INSTANCE_IMDSV2.name, "debug-box"),
        (compute.INSTANCE_ENCRYPTED_VOLUMES.name, "debug-box"),
        (registry.ECR_KMS_ENCRYPTION.name, "images"),
        (cluster.EKS_SECRETS_ENCRYPTION.name, "cluster"),
        # The bucket outside the stack's versioning does not count for 'logs', which has none of its companions.
        (storage.S3_ENCRYPTED.name, "logs"),
        (storage.S3_VERSIONED.name, "logs"),
        (storage.S3_PUBLIC_ACCESS_BLOCKED.name, "logs"),
        (storage.S3_TLS_ONLY.name, "logs"),
    }


def test_the_same_resources_written_soundly_trip_nothing(run_program: ProgramRunner) -> None:
    def program() -> None:
        key = aws.kms.Key("data-key", description="data", enable_key_rotation=True)
        role = aws.iam.Role(
            "node-role",
            assume_role_policy=SERVICE_TRUST,
            managed_policy_arns=[aws.iam.ManagedPolicy.AMAZON_EKS_WORKER_NODE_POLICY],
            inline_policies=[
                {
                    "name": "read-models",
                    "policy": document(
                        {"Effect": "Allow", "Action": "s3:GetObject", "Resource": "arn:aws:s3:::artifacts/models/*"}
                    ),
                }
            ],
        )
        aws.iam.RolePolicy(
            "node-describe",
            role=role.id,
            policy=document({"Effect": "Allow", "Action": ["ec2:DescribeInstances"], "Resource": "*"}),
        )
        aws.iam.Role(
            "github-deployer",
            assume_role_policy=document(
                {
                    "Effect": "Allow",
                    "Principal": {"Federated": f"arn:aws:iam::{ACCOUNT}:oidc-provider/{OIDC}"},
                    "Action": "sts:AssumeRoleWithWebIdentity",
                    "Condition": {
                        "StringEquals": {f"{OIDC}:aud": "sts.amazonaws.com"},
                        "StringLike": {f"{OIDC}:sub": "repo:acme/modelplane:ref:refs/heads/main"},
                    },
                }
            ),
        )
        group = aws.ec2.SecurityGroup(
            "nodes",
            vpc_id="vpc-1",
            ingress=[{"protocol": "tcp", "from_port": 22, "to_port": 22, "cidr_blocks": ["10.0.0.0/16"]}],
        )
        aws.vpc.SecurityGroupIngressRule(
            "nodes-https",
            security_group_id=group.id,
            ip_protocol="tcp",
            from_port=443,
            to_port=443,
            cidr_ipv4="0.0.0.0/0",
        )
        aws.ebs.Volume("scratch", availability_zone="us-east-1a", size=500, encrypted=True, kms_key_id=key.arn)
        aws.ec2.Instance(
            "debug-box",
            ami="ami-0abc",
            instance_type="g6.xlarge",
            metadata_options={"http_tokens": "required"},
            root_block_device={"encrypted": True},
        )
        aws.ecr.Repository(
            "images",
            image_tag_mutability="IMMUTABLE",
            image_scanning_configuration={"scan_on_push": True},
            encryption_configurations=[{"encryption_type": "KMS", "kms_key": key.arn}],
        )
        aws.eks.Cluster(
            "cluster",
            role_arn=f"arn:aws:iam::{ACCOUNT}:role/cluster",
            vpc_config={"subnet_ids": ["subnet-1"], "endpoint_public_access": False},
            enabled_cluster_log_types=list(cluster.CONTROL_PLANE_LOG_TYPES),
            encryption_config={"provider": {"key_arn": key.arn}, "resources": ["secrets"]},
        )
        sound_bucket("artifacts")
        sound_bucket("checkpoints")
        # The deprecated inline settings count; the public access block has no inline form.
        inline = aws.s3.Bucket(
            "inline",
            bucket="inline-settings-bucket",
            versioning={"enabled": True},
            server_side_encryption_configuration={
                "rule": {"apply_server_side_encryption_by_default": {"sse_algorithm": "aws:kms"}}
            },
            policy=tls_only(pulumi.Output.from_input("arn:aws:s3:::inline-settings-bucket")),
        )
        aws.s3.BucketPublicAccessBlock(
            "inline-public-access",
            bucket=inline.id,
            block_public_acls=True,
            block_public_policy=True,
            ignore_public_acls=True,
            restrict_public_buckets=True,
        )

    assert findings(run_program, program) == set()
