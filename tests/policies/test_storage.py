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
TLS_ONLY: dict[str, Any] = {
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


def test_companion_whose_bucket_is_not_yet_known_holds_the_rule_back_and_says_so() -> None:
    bucket = resource("aws:s3/bucket:Bucket", "artifacts-bucket")
    orphan = resource(COMPANION_TYPES["versioning"], "versioning", {"bucket": "[unknown]", **GOOD_INPUTS["versioning"]})
    (report,) = violations(storage.S3_VERSIONED, [bucket, orphan])
    assert report.advice
    assert "cannot tell which bucket" in report.message


def test_companion_content_not_yet_known_is_not_reported() -> None:
    resources = bucket_with(**{**GOOD_INPUTS, "policy": {"policy": "[unknown]"}})
    assert violations(storage.S3_TLS_ONLY, resources) == []


def test_companion_is_matched_by_its_known_bucket_name() -> None:
    bucket = resource("aws:s3/bucket:Bucket", "artifacts-bucket", {"bucket": BUCKET})
    versioning = resource(COMPANION_TYPES["versioning"], "versioning", {"bucket": BUCKET, **GOOD_INPUTS["versioning"]})
    other = resource("aws:s3/bucket:Bucket", "logs-bucket", {"bucket": "logs"})
    reports = violations(storage.S3_VERSIONED, [bucket, versioning, other])
    assert [r.urn for r in reports] == [other["urn"]]


def test_companion_of_a_bucket_outside_the_stack_does_not_silence_the_rule() -> None:
    bucket = resource("aws:s3/bucket:Bucket", "artifacts-bucket", {"bucketPrefix": "artifacts-"})
    elsewhere = resource(
        COMPANION_TYPES["versioning"], "legacy-versioning", {"bucket": "legacy-logs", **GOOD_INPUTS["versioning"]}
    )
    (report,) = violations(storage.S3_VERSIONED, [bucket, elsewhere])
    assert (report.urn, report.advice) == (bucket["urn"], False)


def test_companion_is_matched_to_its_own_bucket_among_several() -> None:
    artifacts = resource("aws:s3/bucket:Bucket", "artifacts-bucket", {"bucketPrefix": "artifacts-"})
    logs = resource("aws:s3/bucket:Bucket", "logs-bucket", {"bucketPrefix": "logs-"})
    versioning = resource(
        COMPANION_TYPES["versioning"],
        "artifacts-versioning",
        {"bucket": "artifacts-0a1b2c", **GOOD_INPUTS["versioning"]},
        dependencies=[artifacts],
    )
    reports = violations(storage.S3_VERSIONED, [artifacts, logs, versioning])
    assert [(r.urn, r.advice) for r in reports] == [(logs["urn"], False)]


def test_companion_depending_on_several_buckets_holds_back_only_those() -> None:
    first, second, third = (
        resource("aws:s3/bucket:Bucket", name, {"bucketPrefix": f"{name}-"}) for name in ("a", "b", "c")
    )
    versioning = resource(
        COMPANION_TYPES["versioning"],
        "shared-versioning",
        {"bucket": "[unknown]", **GOOD_INPUTS["versioning"]},
        dependencies=[first, second],
    )
    reports = violations(storage.S3_VERSIONED, [first, second, third, versioning])
    decided = [r.urn for r in reports if not r.advice]
    (advice,) = [r.message for r in reports if r.advice]
    assert decided == [third["urn"]]
    assert "['a', 'b']" in advice


@pytest.mark.parametrize(
    "statement_changes",
    [
        {},
        {"Condition": {"Bool": {"aws:SecureTransport": ["false"]}}},
        {"Condition": {"Bool": {"aws:SecureTransport": False}}},
        {"Principal": {"AWS": ["*"]}},
        {"Principal": {"AWS": "*"}, "Action": ["s3:*"]},
    ],
    ids=["string", "list-value", "bool-value", "aws-list-principal", "aws-principal"],
)
def test_tls_only_policy_in_any_spelling_passes(statement_changes: dict[str, Any]) -> None:
    policy = {**TLS_ONLY, "Statement": {**TLS_ONLY["Statement"][0], **statement_changes}}
    resources = bucket_with(**{**GOOD_INPUTS, "policy": {"policy": json.dumps(policy)}})
    assert violations(storage.S3_TLS_ONLY, resources) == []


@pytest.mark.parametrize(
    "statement_changes",
    [
        {"Principal": {"AWS": "arn:aws:iam::123456789012:root"}},
        {"Action": "s3:GetObject"},
        {"Effect": "Allow"},
        {"Condition": {"Bool": {"aws:SecureTransport": "false"}, "StringEquals": {"aws:SourceVpce": "vpce-1"}}},
    ],
    ids=["one-account", "one-action", "allow", "narrowed-deny"],
)
def test_policy_that_lets_some_plain_http_through_fires(statement_changes: dict[str, Any]) -> None:
    policy = {**TLS_ONLY, "Statement": [{**TLS_ONLY["Statement"][0], **statement_changes}]}
    resources = bucket_with(**{**GOOD_INPUTS, "policy": {"policy": json.dumps(policy)}})
    (report,) = violations(storage.S3_TLS_ONLY, resources)
    assert not report.advice


def test_unreadable_bucket_policy_is_undecided_not_a_violation() -> None:
    resources = bucket_with(**{**GOOD_INPUTS, "policy": {"policy": "{not json"}})
    (report,) = violations(storage.S3_TLS_ONLY, resources)
    assert report.advice
    assert "not valid JSON" in report.message


INLINE_GOOD = {
    "versioning": {"enabled": True},
    "serverSideEncryptionConfiguration": {
        "rule": {"applyServerSideEncryptionByDefault": {"sseAlgorithm": "aws:kms", "kmsMasterKeyId": "arn:k"}}
    },
    "policy": json.dumps(TLS_ONLY),
}


@pytest.mark.parametrize("kind", ["encryption", "versioning", "policy"])
def test_a_buckets_own_settings_count(kind: str) -> None:
    bucket = resource("aws:s3/bucket:Bucket", "artifacts-bucket", {"bucket": BUCKET, **INLINE_GOOD})
    assert violations(RULES[kind], [bucket]) == []


@pytest.mark.parametrize(
    ("kind", "field", "value"),
    [
        ("versioning", "versioning", {"enabled": False}),
        (
            "encryption",
            "serverSideEncryptionConfiguration",
            {"rule": {"applyServerSideEncryptionByDefault": {"sseAlgorithm": "AES256"}}},
        ),
        ("policy", "policy", json.dumps({"Version": "2012-10-17", "Statement": []})),
    ],
)
def test_a_buckets_own_weak_setting_fires_on_the_bucket(kind: str, field: str, value: Any) -> None:
    bucket = resource("aws:s3/bucket:Bucket", "artifacts-bucket", {"bucket": BUCKET, **INLINE_GOOD, field: value})
    (report,) = violations(RULES[kind], [bucket])
    assert (report.urn, report.advice) == (bucket["urn"], False)
    assert field in report.message
