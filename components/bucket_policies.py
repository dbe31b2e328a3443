"""Policy documents and lifecycle rules for the artifact bucket and the image registry.

Plain functions over plain data, so the security-relevant choices (TLS only, what
expires and when) are unit-tested without a Pulumi runtime. Components wire the
results into resources.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

CHECKPOINT_PREFIX = "checkpoints/"
ABORT_INCOMPLETE_UPLOAD_DAYS = 7
POLICY_VERSION = "2012-10-17"
# FSx creates one service-linked role per linked file system, named after the file system.
FSX_S3_ACCESS_ROLE_PATTERN = (
    "role/aws-service-role/s3.data-source.lustre.fsx.amazonaws.com/AWSServiceRoleForFSxS3Access_*"
)


def _require_days(input_name: str, days: int) -> None:
    if isinstance(days, bool) or not isinstance(days, int) or days < 1:
        raise ValueError(f"{input_name}={days!r}: must be a whole number of days, at least 1")


def tls_only_bucket_policy(bucket_arn: str) -> dict[str, Any]:
    """Bucket policy denying every S3 action on the bucket and its objects over plain HTTP."""
    return {
        "Version": POLICY_VERSION,
        "Statement": [
            {
                "Sid": "DenyInsecureTransport",
                "Effect": "Deny",
                "Principal": "*",
                "Action": "s3:*",
                "Resource": [bucket_arn, f"{bucket_arn}/*"],
                "Condition": {"Bool": {"aws:SecureTransport": "false"}},
            }
        ],
    }


def tls_only_bucket_policy_json(bucket_arn: str) -> str:
    return json.dumps(tls_only_bucket_policy(bucket_arn), sort_keys=True)


@dataclass(frozen=True)
class LifecycleRule:
    """One S3 lifecycle rule, independent of how a provider spells it."""

    id: str
    prefix: str
    """Key prefix the rule applies to; "" is the whole bucket."""
    noncurrent_version_expiration_days: int | None = None
    abort_incomplete_multipart_upload_days: int | None = None


def artifact_lifecycle_rules(checkpoint_version_days: int) -> list[LifecycleRule]:
    """Expire overwritten checkpoints after `checkpoint_version_days`; drop abandoned uploads bucket-wide.

    Only noncurrent versions expire: the latest checkpoint is never deleted by the lifecycle.
    """
    _require_days("checkpoint_version_days", checkpoint_version_days)
    return [
        LifecycleRule(
            id="expire-noncurrent-checkpoints",
            prefix=CHECKPOINT_PREFIX,
            noncurrent_version_expiration_days=checkpoint_version_days,
        ),
        LifecycleRule(
            id="abort-incomplete-multipart-uploads",
            prefix="",
            abort_incomplete_multipart_upload_days=ABORT_INCOMPLETE_UPLOAD_DAYS,
        ),
    ]


def ecr_lifecycle_policy(untagged_expiry_days: int) -> dict[str, Any]:
    """ECR lifecycle policy expiring untagged images `untagged_expiry_days` after they were pushed."""
    _require_days("untagged_expiry_days", untagged_expiry_days)
    return {
        "rules": [
            {
                "rulePriority": 1,
                "description": f"Expire untagged images after {untagged_expiry_days} days",
                "selection": {
                    "tagStatus": "untagged",
                    "countType": "sinceImagePushed",
                    "countUnit": "days",
                    "countNumber": untagged_expiry_days,
                },
                "action": {"type": "expire"},
            }
        ]
    }


def ecr_lifecycle_policy_json(untagged_expiry_days: int) -> str:
    return json.dumps(ecr_lifecycle_policy(untagged_expiry_days), sort_keys=True)


def _kms_key_arn_parts(key_arn: str) -> tuple[str, str, str]:
    """(partition, region, account id) of a KMS key ARN."""
    parts = key_arn.split(":")
    if len(parts) < 6 or parts[0] != "arn" or parts[2] != "kms" or not parts[4].isdigit():
        raise ValueError(f"key_arn={key_arn!r}: not a KMS key ARN; expected arn:aws:kms:REGION:ACCOUNT:key/ID")
    return parts[1], parts[3], parts[4]


def fsx_linked_key_policy(key_arn: str) -> dict[str, Any]:
    """KMS key policy letting FSx file systems linked to the SSE-KMS bucket use the key through S3.

    Without it a linked file system can neither import nor export a single object. The account keeps
    administering the key through IAM (the default policy's statement). FSx's S3 access roles are
    matched by ARN pattern because their names contain the file system id, which only exists after
    the key. Partition, region and account come from the key's own ARN, so no lookup is needed.
    """
    partition, region, account_id = _kms_key_arn_parts(key_arn)
    dns_suffix = "amazonaws.com.cn" if partition == "aws-cn" else "amazonaws.com"
    return {
        "Version": POLICY_VERSION,
        "Statement": [
            {
                "Sid": "AccountAdministersKeyThroughIam",
                "Effect": "Allow",
                "Principal": {"AWS": f"arn:{partition}:iam::{account_id}:root"},
                "Action": "kms:*",
                "Resource": "*",
            },
            {
                "Sid": "FsxLinkedFileSystemsUseKeyThroughS3",
                "Effect": "Allow",
                "Principal": {"AWS": "*"},
                "Action": ["kms:Encrypt", "kms:Decrypt", "kms:ReEncrypt*", "kms:GenerateDataKey*", "kms:DescribeKey"],
                "Resource": "*",
                "Condition": {
                    "StringEquals": {"kms:CallerAccount": account_id, "kms:ViaService": f"s3.{region}.{dns_suffix}"},
                    "ArnLike": {"aws:PrincipalArn": f"arn:{partition}:iam::{account_id}:{FSX_S3_ACCESS_ROLE_PATTERN}"},
                },
            },
        ],
    }


def fsx_linked_key_policy_json(key_arn: str) -> str:
    return json.dumps(fsx_linked_key_policy(key_arn), sort_keys=True)
