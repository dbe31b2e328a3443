"""S3 rules. In pulumi-aws 7 encryption, versioning, the public access block and the bucket policy are
resources of their own (a bucket's own `versioning`, `serverSideEncryptionConfiguration` and `policy` inputs are
deprecated but still valid, and count), so these are stack rules: each bucket needs a companion resource that says so.

A companion names its bucket in its `bucket` input, which during preview is often not yet known (the bucket's
name is an output). It is matched to its bucket by a known name the bucket also has, else by the buckets it
depends on (the engine's property dependency on `bucket`, else its dependencies; a component's buckets count).
A companion with a known name and no bucket of the stack among its dependencies configures a bucket outside
the stack and is left alone. One that could be several buckets holds only those back, one whose bucket is not yet
known and depends on no bucket holds every bucket back; both say so, as advice.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from modelplane.policies.rules.policy_documents import Statement, names_anyone, positive_conditions, statements, strings
from modelplane.policies.rules.props import dig, is_true, is_unknown
from modelplane.policies.rules.rule import Finding, Rule, StackResource, StackRule, Undecided, children_of

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

Verdict = Callable[[Any], str | None]
"""A companion's props (or a bucket's own setting) -> why it falls short (an `Undecided` one when it cannot tell),
None when it satisfies the rule or its content is not yet known."""


@dataclass(frozen=True)
class Companion:
    """What one rule asks of every bucket: a companion resource of `types`, or the bucket's own `inline` input."""

    types: frozenset[str]
    missing: str
    verdict: Verdict
    inline: tuple[str, Verdict] | None = None
    """The bucket's own input that says the same (deprecated in pulumi-aws 7), and how to judge its value."""


def _buckets_behind(
    urns: tuple[str, ...], buckets: dict[str, StackResource], resources: list[StackResource]
) -> set[str]:
    """The buckets among `urns`, and the buckets inside the components among them."""
    found = set()
    for urn in urns:
        if urn in buckets:
            found.add(urn)
        else:
            found |= {child.urn for child in children_of(urn, resources) if child.urn in buckets}
    return found


def _bucket_of(
    companion: StackResource, buckets: dict[str, StackResource], resources: list[StackResource]
) -> str | set[str] | None:
    """The companion's bucket; the buckets it may be (an empty set: any) when it cannot tell; None: not the stack's."""
    name = companion.props.get("bucket")
    if isinstance(name, str):
        named = [urn for urn, bucket in buckets.items() if name in (bucket.props.get("bucket"), bucket.props.get("id"))]
        if len(named) == 1:
            return named[0]
    depended = companion.property_dependencies.get("bucket") or companion.dependencies
    candidates = _buckets_behind(tuple(depended), buckets, resources)
    if len(candidates) > 1 and isinstance(name, str):
        # A generated name starts with its bucket's prefix.
        candidates = {
            urn
            for urn in candidates
            if isinstance(prefix := buckets[urn].props.get("bucketPrefix"), str) and name.startswith(prefix)
        } or candidates
    if len(candidates) == 1:
        return candidates.pop()
    if not candidates and isinstance(name, str):
        return None
    return candidates


def _about(bucket: str, problem: str) -> str:
    message = f"bucket {bucket!r}: {problem}"
    return Undecided(message) if isinstance(problem, Undecided) else message


def _unmatched(companion: StackResource, candidates: set[str], buckets: dict[str, StackResource]) -> Finding:
    kind = companion.type.rsplit(":", 1)[-1]
    if candidates:
        names = sorted(buckets[urn].name for urn in candidates)
        detail = f"it depends on buckets {names}, which are not checked for it"
    else:
        detail = "its bucket is not yet known and it depends on no bucket of the stack; no bucket is checked for it"
    return Finding(
        Undecided(f"{kind} {companion.name!r}: cannot tell which bucket it configures ({detail})"), companion.urn
    )


def _companion_findings(resources: list[StackResource], rule: Companion) -> list[Finding]:
    buckets = {r.urn: r for r in resources if r.type in BUCKET_TYPES}
    covered: set[str] = set()
    findings: list[Finding] = []
    if rule.inline is not None:
        field, inline_verdict = rule.inline
        for urn, bucket in buckets.items():
            if bucket.props.get(field) is None:
                continue
            covered.add(urn)
            problem = inline_verdict(bucket.props[field])
            if problem is not None:
                findings.append(Finding(_about(bucket.name, f"{field}: {problem}"), urn))
    for companion in (r for r in resources if r.type in rule.types):
        match = _bucket_of(companion, buckets, resources)
        if match is None:
            continue
        if isinstance(match, set):
            # A bucket it may configure is not reported missing the companion; an unknown one may be any bucket.
            covered |= match or set(buckets)
            findings.append(_unmatched(companion, match, buckets))
            continue
        covered.add(match)
        problem = rule.verdict(companion.props)
        if problem is not None:
            findings.append(Finding(_about(buckets[match].name, problem), companion.urn))
    findings += [
        Finding(f"bucket {bucket.name!r}: {rule.missing}", urn) for urn, bucket in buckets.items() if urn not in covered
    ]
    return findings


def _encryption_verdict(props: dict[str, Any]) -> str | None:
    rules = props.get("rules")
    if is_unknown(rules):
        return None
    for rule in rules if isinstance(rules, list) else [rules]:
        algorithm = dig(rule, "applyServerSideEncryptionByDefault", "sseAlgorithm")
        if is_unknown(algorithm) or algorithm in KMS_ALGORITHMS:
            return None
    return f"default encryption is not SSE-KMS ({', '.join(KMS_ALGORITHMS)}); set sseAlgorithm 'aws:kms' with a KMS key"


def _inline_encryption_verdict(setting: Any) -> str | None:
    return _encryption_verdict({"rules": dig(setting, "rule")})


def _versioning_verdict(props: dict[str, Any]) -> str | None:
    status = dig(props, "versioningConfiguration", "status")
    if is_unknown(status) or status == "Enabled":
        return None
    return f"versioning status is {status!r}; set versioningConfiguration.status 'Enabled'"


def _inline_versioning_verdict(setting: Any) -> str | None:
    enabled = dig(setting, "enabled")
    if is_unknown(enabled) or is_true(enabled):
        return None
    return f"enabled is {enabled!r}; set it true (or use a BucketVersioning with status 'Enabled')"


def _public_access_verdict(props: dict[str, Any]) -> str | None:
    open_flags = [
        flag for flag in PUBLIC_ACCESS_FLAGS if not is_unknown(props.get(flag)) and not is_true(props.get(flag))
    ]
    if not open_flags:
        return None
    return f"public access block leaves {', '.join(open_flags)} off; set all four to true"


def _denies_insecure_transport(statement: Statement) -> bool:
    """Deny of s3:* (or *) to every principal whenever aws:SecureTransport is false, and on no other condition."""
    conditions = positive_conditions(statement)
    actions = [action.lower() for action in strings(statement.body.get("Action"))]
    secure_transport = [value.lower() for value in conditions.get("aws:securetransport", [])]
    return (
        statement.denies
        and names_anyone(statement.body.get("Principal"))
        and any(action in ("*", "s3:*") for action in actions)
        and set(conditions) == {"aws:securetransport"}
        and set(secure_transport) == {"false"}
    )


def _tls_verdict(props: dict[str, Any]) -> str | None:
    found = statements(props.get("policy"))
    if found is None:
        return None
    if isinstance(found, Undecided):
        return found
    if any(_denies_insecure_transport(statement) for statement in found):
        return None
    return "bucket policy does not deny s3:* to every principal when aws:SecureTransport is false"


def _inline_tls_verdict(policy: Any) -> str | None:
    return _tls_verdict({"policy": policy})


def _stack_rule(rule: Companion) -> Callable[..., list[Finding]]:
    def check(resources: list[StackResource], _config: Mapping[str, Any]) -> list[Finding]:
        return _companion_findings(resources, rule)

    return check


S3_ENCRYPTED = StackRule(
    name="aws-s3-bucket-disallow-unencrypted",
    description="Every S3 bucket has default encryption with a KMS key (SSE-KMS).",
    why="Checkpoints, datasets and models are the platform's most valuable data; KMS keys add key policies and "
    "CloudTrail records of every decrypt.",
    check=_stack_rule(
        Companion(
            ENCRYPTION_TYPES,
            "no BucketServerSideEncryptionConfiguration; add one with SSE-KMS",
            _encryption_verdict,
            ("serverSideEncryptionConfiguration", _inline_encryption_verdict),
        )
    ),
)
S3_VERSIONED = StackRule(
    name="aws-s3-bucket-enable-versioning",
    description="Every S3 bucket has versioning enabled.",
    why="An overwritten or deleted checkpoint can be recovered; lifecycle rules expire old versions.",
    check=_stack_rule(
        Companion(
            VERSIONING_TYPES,
            "no BucketVersioning; add one with status 'Enabled'",
            _versioning_verdict,
            ("versioning", _inline_versioning_verdict),
        )
    ),
)
S3_PUBLIC_ACCESS_BLOCKED = StackRule(
    name="aws-s3-bucket-disallow-public-access",
    description="Every S3 bucket has a public access block with all four settings on.",
    why="One mistaken ACL or policy must not publish training data or model weights.",
    check=_stack_rule(
        Companion(
            PUBLIC_ACCESS_BLOCK_TYPES,
            "no BucketPublicAccessBlock; add one with all four settings true",
            _public_access_verdict,
        )
    ),
)
S3_TLS_ONLY = StackRule(
    name="aws-s3-bucket-require-tls",
    description="Every S3 bucket's policy denies requests not made over TLS.",
    why="Credentials and data must not cross the network in clear text, even inside the VPC.",
    check=_stack_rule(
        Companion(
            POLICY_TYPES,
            "no BucketPolicy; add one denying s3:* when aws:SecureTransport is false",
            _tls_verdict,
            ("policy", _inline_tls_verdict),
        )
    ),
)

RULES: list[Rule] = [S3_ENCRYPTED, S3_VERSIONED, S3_PUBLIC_ACCESS_BLOCKED, S3_TLS_ONLY]
