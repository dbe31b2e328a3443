"""S3 rules. In pulumi-aws 7 encryption, versioning, the public access block and the bucket policy are
resources of their own, so these are stack rules: each bucket needs a companion resource that says so.

A companion names its bucket in its `bucket` input, which during preview is often not yet known
(the bucket's name is an output). It is matched to its bucket by the engine's property dependency
on `bucket`, else by a known name, else by its one Bucket dependency. A companion that cannot be
matched makes the rule hold back: a bucket is not reported while an unmatched companion may be its.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from typing import Any

from modelplane.policies.rules.props import as_dict, as_list, dig, is_true, is_unknown
from modelplane.policies.rules.rule import Finding, Rule, StackResource, StackRule

BUCKET_TYPES = frozenset({"aws:s3/bucket:Bucket", "aws:s3/bucketV2:BucketV2"})
ENCRYPTION_TYPES = frozenset(
    {
        "aws:s3/bucketServerSideEncryptionConfiguration:BucketServerSideEncryptionConfiguration",
        "aws:s3/bucketServerSideEncryptionConfigurationV2:BucketServerSideEncryptionConfigurationV2",
    }
)
VERSIONING_TYPES = frozenset(
    {"aws:s3/bucketVersioning:BucketVersioning", "aws:s3/bucketVersioningV2:BucketVersioningV2"}
)
PUBLIC_ACCESS_BLOCK_TYPES = frozenset({"aws:s3/bucketPublicAccessBlock:BucketPublicAccessBlock"})
POLICY_TYPES = frozenset({"aws:s3/bucketPolicy:BucketPolicy"})
KMS_ALGORITHMS = ("aws:kms", "aws:kms:dsse")
PUBLIC_ACCESS_FLAGS = ("blockPublicAcls", "blockPublicPolicy", "ignorePublicAcls", "restrictPublicBuckets")

Verdict = Callable[[dict[str, Any]], str | None]
"""A companion's props -> why it falls short, None when it satisfies the rule (or its content is not yet known)."""


def _bucket_of(companion: StackResource, buckets: dict[str, StackResource]) -> str | None:
    for urn in companion.property_dependencies.get("bucket", ()):
        if urn in buckets:
            return urn
    name = companion.props.get("bucket")
    if isinstance(name, str):
        for urn, bucket in buckets.items():
            if name in (bucket.props.get("bucket"), bucket.props.get("id")):
                return urn
    depended = [urn for urn in companion.dependencies if urn in buckets]
    return depended[0] if len(depended) == 1 else None


def _companion_findings(
    resources: list[StackResource], companion_types: frozenset[str], missing: str, verdict: Verdict
) -> list[Finding]:
    buckets = {r.urn: r for r in resources if r.type in BUCKET_TYPES}
    satisfied: set[str] = set()
    findings: list[Finding] = []
    unmatched = False
    for companion in (r for r in resources if r.type in companion_types):
        bucket = _bucket_of(companion, buckets)
        if bucket is None:
            unmatched = True
            continue
        problem = verdict(companion.props)
        if problem is None:
            satisfied.add(bucket)
        else:
            findings.append(Finding(f"bucket {buckets[bucket].name!r}: {problem}", companion.urn))
            satisfied.add(bucket)
    if not unmatched:
        findings += [
            Finding(f"bucket {bucket.name!r}: {missing}", urn)
            for urn, bucket in buckets.items()
            if urn not in satisfied
        ]
    return findings


def _encryption_verdict(props: dict[str, Any]) -> str | None:
    rules = props.get("rules")
    if is_unknown(rules):
        return None
    for rule in as_list(rules):
        algorithm = dig(rule, "applyServerSideEncryptionByDefault", "sseAlgorithm")
        if is_unknown(algorithm) or algorithm in KMS_ALGORITHMS:
            return None
    return f"default encryption is not SSE-KMS ({', '.join(KMS_ALGORITHMS)}); set sseAlgorithm 'aws:kms' with a KMS key"


def _versioning_verdict(props: dict[str, Any]) -> str | None:
    status = dig(props, "versioningConfiguration", "status")
    if is_unknown(status) or status == "Enabled":
        return None
    return f"versioning status is {status!r}; set versioningConfiguration.status 'Enabled'"


def _public_access_verdict(props: dict[str, Any]) -> str | None:
    open_flags = [
        flag for flag in PUBLIC_ACCESS_FLAGS if not is_unknown(props.get(flag)) and not is_true(props.get(flag))
    ]
    if not open_flags:
        return None
    return f"public access block leaves {', '.join(open_flags)} off; set all four to true"


def _denies_insecure_transport(statement: dict[str, Any]) -> bool:
    actions = statement.get("Action")
    actions = actions if isinstance(actions, list) else [actions]
    principal = statement.get("Principal")
    condition = dig(statement, "Condition", "Bool", "aws:SecureTransport")
    return (
        statement.get("Effect") == "Deny"
        and (principal == "*" or as_dict(principal).get("AWS") == "*")
        and any(action in ("*", "s3:*") for action in actions)
        and str(condition).lower() == "false"
    )


def _tls_verdict(props: dict[str, Any]) -> str | None:
    document = props.get("policy")
    if is_unknown(document):
        return None
    try:
        policy = json.loads(document) if isinstance(document, str) else as_dict(document)
    except json.JSONDecodeError:
        return "bucket policy is not valid JSON"
    statements = policy.get("Statement")
    statements = statements if isinstance(statements, list) else [statements]
    if any(_denies_insecure_transport(as_dict(s)) for s in statements):
        return None
    return "bucket policy does not deny s3:* to every principal when aws:SecureTransport is false"


def _stack_rule(companion_types: frozenset[str], missing: str, verdict: Verdict) -> Callable[..., list[Finding]]:
    def check(resources: list[StackResource], _config: Mapping[str, Any]) -> list[Finding]:
        return _companion_findings(resources, companion_types, missing, verdict)

    return check


S3_ENCRYPTED = StackRule(
    name="aws-s3-bucket-disallow-unencrypted",
    description="Every S3 bucket has default encryption with a KMS key (SSE-KMS).",
    why="Checkpoints, datasets and models are the platform's most valuable data; KMS keys add key policies and "
    "CloudTrail records of every decrypt.",
    check=_stack_rule(
        ENCRYPTION_TYPES, "no BucketServerSideEncryptionConfiguration; add one with SSE-KMS", _encryption_verdict
    ),
)
S3_VERSIONED = StackRule(
    name="aws-s3-bucket-enable-versioning",
    description="Every S3 bucket has versioning enabled.",
    why="An overwritten or deleted checkpoint can be recovered; lifecycle rules expire old versions.",
    check=_stack_rule(VERSIONING_TYPES, "no BucketVersioning; add one with status 'Enabled'", _versioning_verdict),
)
S3_PUBLIC_ACCESS_BLOCKED = StackRule(
    name="aws-s3-bucket-disallow-public-access",
    description="Every S3 bucket has a public access block with all four settings on.",
    why="One mistaken ACL or policy must not publish training data or model weights.",
    check=_stack_rule(
        PUBLIC_ACCESS_BLOCK_TYPES,
        "no BucketPublicAccessBlock; add one with all four settings true",
        _public_access_verdict,
    ),
)
S3_TLS_ONLY = StackRule(
    name="aws-s3-bucket-require-tls",
    description="Every S3 bucket's policy denies requests not made over TLS.",
    why="Credentials and data must not cross the network in clear text, even inside the VPC.",
    check=_stack_rule(
        POLICY_TYPES, "no BucketPolicy; add one denying s3:* when aws:SecureTransport is false", _tls_verdict
    ),
)

RULES: list[Rule] = [S3_ENCRYPTED, S3_VERSIONED, S3_PUBLIC_ACCESS_BLOCKED, S3_TLS_ONLY]
