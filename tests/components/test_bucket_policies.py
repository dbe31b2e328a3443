import json

import pytest

from modelplane.components.bucket_policies import (
    ABORT_INCOMPLETE_UPLOAD_DAYS,
    CHECKPOINT_PREFIX,
    artifact_lifecycle_rules,
    ecr_lifecycle_policy,
    ecr_lifecycle_policy_json,
    fsx_linked_key_policy,
    tls_only_bucket_policy,
    tls_only_bucket_policy_json,
)

BUCKET_ARN = "arn:aws:s3:::modelplane-dev-artifacts-1234"
KEY_ARN = "arn:aws:kms:eu-west-1:123456789012:key/1234abcd-12ab-34cd-56ef-1234567890ab"


def test_tls_only_policy_denies_every_action_without_tls_on_bucket_and_objects():
    (statement,) = tls_only_bucket_policy(BUCKET_ARN)["Statement"]
    assert statement["Effect"] == "Deny"
    assert statement["Principal"] == "*"
    assert statement["Action"] == "s3:*"
    assert statement["Resource"] == [BUCKET_ARN, f"{BUCKET_ARN}/*"]
    assert statement["Condition"] == {"Bool": {"aws:SecureTransport": "false"}}


def test_tls_only_policy_json_round_trips():
    assert json.loads(tls_only_bucket_policy_json(BUCKET_ARN)) == tls_only_bucket_policy(BUCKET_ARN)


def test_lifecycle_expires_only_noncurrent_checkpoint_versions():
    checkpoints, _ = artifact_lifecycle_rules(14)
    assert checkpoints.prefix == CHECKPOINT_PREFIX == "checkpoints/"
    assert checkpoints.noncurrent_version_expiration_days == 14
    assert checkpoints.abort_incomplete_multipart_upload_days is None


def test_lifecycle_aborts_incomplete_uploads_bucket_wide_after_seven_days():
    _, uploads = artifact_lifecycle_rules(30)
    assert uploads.prefix == ""
    assert uploads.abort_incomplete_multipart_upload_days == ABORT_INCOMPLETE_UPLOAD_DAYS == 7
    assert uploads.noncurrent_version_expiration_days is None


def test_lifecycle_rule_ids_are_unique():
    rules = artifact_lifecycle_rules(30)
    assert len({rule.id for rule in rules}) == len(rules)


@pytest.mark.parametrize("days", [0, -1, 1.5, True, "30"])
def test_lifecycle_rejects_days_that_are_not_positive_integers(days):
    with pytest.raises(ValueError, match=r"^checkpoint_version_days="):
        artifact_lifecycle_rules(days)


def test_ecr_policy_expires_untagged_images_after_the_given_days():
    (rule,) = ecr_lifecycle_policy(5)["rules"]
    assert rule["selection"] == {
        "tagStatus": "untagged",
        "countType": "sinceImagePushed",
        "countUnit": "days",
        "countNumber": 5,
    }
    assert rule["action"] == {"type": "expire"}
    assert rule["rulePriority"] == 1


def test_ecr_policy_json_round_trips():
    assert json.loads(ecr_lifecycle_policy_json(3)) == ecr_lifecycle_policy(3)


@pytest.mark.parametrize("days", [0, -7, 2.0])
def test_ecr_policy_rejects_bad_days(days):
    with pytest.raises(ValueError, match=r"^untagged_expiry_days="):
        ecr_lifecycle_policy(days)


def test_fsx_key_policy_keeps_account_administration():
    admin, _ = fsx_linked_key_policy(KEY_ARN)["Statement"]
    assert admin["Principal"] == {"AWS": "arn:aws:iam::123456789012:root"}
    assert admin["Action"] == "kms:*"


def test_fsx_key_policy_admits_only_fsx_s3_roles_of_the_account_through_s3_in_the_key_region():
    _, fsx = fsx_linked_key_policy(KEY_ARN)["Statement"]
    assert fsx["Effect"] == "Allow"
    assert "kms:Decrypt" in fsx["Action"]
    assert "kms:GenerateDataKey*" in fsx["Action"]
    assert fsx["Condition"]["StringEquals"] == {
        "kms:CallerAccount": "123456789012",
        "kms:ViaService": "s3.eu-west-1.amazonaws.com",
    }
    principal = fsx["Condition"]["ArnLike"]["aws:PrincipalArn"]
    assert principal.startswith("arn:aws:iam::123456789012:role/aws-service-role/s3.data-source.lustre.fsx")
    assert principal.endswith("AWSServiceRoleForFSxS3Access_*")


def test_fsx_key_policy_follows_the_partition():
    _, fsx = fsx_linked_key_policy("arn:aws-cn:kms:cn-north-1:123456789012:key/abc")["Statement"]
    assert fsx["Condition"]["StringEquals"]["kms:ViaService"] == "s3.cn-north-1.amazonaws.com.cn"
    assert fsx["Condition"]["ArnLike"]["aws:PrincipalArn"].startswith("arn:aws-cn:iam::123456789012:")


@pytest.mark.parametrize("arn", ["", "arn:aws:s3:::bucket", "arn:aws:kms:us-east-1:not-an-account:key/x"])
def test_fsx_key_policy_rejects_what_is_not_a_kms_key_arn(arn):
    with pytest.raises(ValueError, match=r"^key_arn="):
        fsx_linked_key_policy(arn)
