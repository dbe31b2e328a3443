from __future__ import annotations

import json
from typing import Any

import pytest

from modelplane.policies.rules import storage
from tests.policies.harness import resource, violations

BUCKET = "modelplane-test-artifacts-1"
COMPANION_TYPES = {
    "encryption": "aws:s3/bucketServerSideEncryptionConfiguration:BucketServerSideEncryptionConfiguration",
    "versioning": "aws:s3/bucketVersioning:BucketVersioning",
    "public": "aws:s3/bucketPublicAccessBlock:BucketPublicAccessBlock",
    "policy": "aws:s3/bucketPolicy:BucketPolicy",
}
TLS_ONLY = {
    "Version": "2012-10-17",
    "Statement": [
        {
            "Sid": "DenyInsecureTransport",
            "Effect": "Deny",
            "Principal": "*",
            "Action": "s3:*",
            "Resource": [f"arn:aws:s3:::{BUCKET}", f"arn:aws:s3:::{BUCKET}/*"],
            "Condition": {"Bool": {"aws:SecureTransport": "false"}},
        }
    ],
}
GOOD_INPUTS: dict[str, dict[str, Any]] = {
    "encryption": {
        "rules": [{"applyServerSideEncryptionByDefault": {"sseAlgorithm": "aws:kms", "kmsMasterKeyId": "arn:k"}}]
    },
    "versioning": {"versioningConfiguration": {"status": "Enabled"}},
    "public": {flag: True for flag in storage.PUBLIC_ACCESS_FLAGS},
    "policy": {"policy": json.dumps(TLS_ONLY)},
}
BAD_INPUTS: dict[str, dict[str, Any]] = {
    "encryption": {"rules": [{"applyServerSideEncryptionByDefault": {"sseAlgorithm": "AES256"}}]},
    "versioning": {"versioningConfiguration": {"status": "Suspended"}},
    "public": {**{flag: True for flag in storage.PUBLIC_ACCESS_FLAGS}, "blockPublicPolicy": False},
    "policy": {"policy": json.dumps({"Version": "2012-10-17", "Statement": []})},
}
RULES = {
    "encryption": storage.S3_ENCRYPTED,
    "versioning": storage.S3_VERSIONED,
    "public": storage.S3_PUBLIC_ACCESS_BLOCKED,
    "policy": storage.S3_TLS_ONLY,
}


def bucket_with(**companions: dict[str, Any] | None) -> list[dict[str, Any]]:
    bucket = resource("aws:s3/bucket:Bucket", "artifacts-bucket", {"bucketPrefix": "modelplane-test-artifacts-"})
    resources = [bucket]
    for kind, inputs in companions.items():
        if inputs is not None:
            resources.append(
                resource(
                    COMPANION_TYPES[kind], f"artifacts-{kind}", {**inputs, "bucket": BUCKET}, dependencies=[bucket]
                )
            )
    return resources


@pytest.mark.parametrize("kind", RULES)
def test_bucket_with_a_sound_companion_passes(kind: str) -> None:
    assert violations(RULES[kind], bucket_with(**GOOD_INPUTS)) == []


@pytest.mark.parametrize("kind", RULES)
def test_bucket_without_its_companion_fires_on_the_bucket(kind: str) -> None:
    resources = bucket_with(**{**GOOD_INPUTS, kind: None})
    (report,) = violations(RULES[kind], resources)
    assert report.urn == resources[0]["urn"]
    assert "artifacts-bucket" in report.message


@pytest.mark.parametrize("kind", RULES)
def test_bucket_with_a_weak_companion_fires_on_the_companion(kind: str) -> None:
    resources = bucket_with(**{**GOOD_INPUTS, kind: BAD_INPUTS[kind]})
    (report,) = violations(RULES[kind], resources)
    assert report.urn.endswith(f"::artifacts-{kind}")


def test_companion_whose_bucket_is_not_yet_known_holds_the_rule_back() -> None:
    bucket = resource("aws:s3/bucket:Bucket", "artifacts-bucket")
    orphan = resource(COMPANION_TYPES["versioning"], "versioning", {"bucket": "[unknown]", **GOOD_INPUTS["versioning"]})
    assert violations(storage.S3_VERSIONED, [bucket, orphan]) == []


def test_companion_content_not_yet_known_is_not_reported() -> None:
    resources = bucket_with(**{**GOOD_INPUTS, "policy": {"policy": "[unknown]"}})
    assert violations(storage.S3_TLS_ONLY, resources) == []


def test_companion_is_matched_by_its_known_bucket_name() -> None:
    bucket = resource("aws:s3/bucket:Bucket", "artifacts-bucket", {"bucket": BUCKET})
    versioning = resource(COMPANION_TYPES["versioning"], "versioning", {"bucket": BUCKET, **GOOD_INPUTS["versioning"]})
    other = resource("aws:s3/bucket:Bucket", "logs-bucket", {"bucket": "logs"})
    reports = violations(storage.S3_VERSIONED, [bucket, versioning, other])
    assert [r.urn for r in reports] == [other["urn"]]
