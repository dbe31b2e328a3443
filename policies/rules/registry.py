"""ECR rules: images are scanned when pushed, a tag, once pushed, always names the same image, and images are
encrypted with a KMS key."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from modelplane.policies.rules.props import as_list, dig, is_true, is_unknown
from modelplane.policies.rules.rule import ResourceRule, Rule, Undecided

REPOSITORY_TYPES = frozenset({"aws:ecr/repository:Repository"})
KMS_ENCRYPTION_TYPES = ("KMS", "KMS_DSSE")


def _scan_on_push(_type: str, props: dict[str, Any], _config: Mapping[str, Any]) -> list[str]:
    scan = dig(props, "imageScanningConfiguration", "scanOnPush")
    if is_unknown(scan) or is_true(scan):
        return []
    return ["imageScanningConfiguration.scanOnPush is not true; set it so every pushed image is scanned"]


def _immutable_tags(_type: str, props: dict[str, Any], _config: Mapping[str, Any]) -> list[str]:
    mutability = props.get("imageTagMutability")
    if is_unknown(mutability) or mutability == "IMMUTABLE":
        return []
    return [
        f"imageTagMutability={mutability or 'MUTABLE'!r}; set 'IMMUTABLE' so a tag cannot be moved to another image"
    ]


def _kms_encryption(_type: str, props: dict[str, Any], _config: Mapping[str, Any]) -> list[str]:
    configurations = props.get("encryptionConfigurations")
    if is_unknown(configurations):
        return []
    if configurations is not None and not isinstance(configurations, list):
        return [Undecided(f"encryptionConfigurations is {configurations!r}, not a list")]
    types = [dig(configuration, "encryptionType") for configuration in as_list(configurations)]
    if any(is_unknown(t) or t in KMS_ENCRYPTION_TYPES for t in types):
        return []
    shown = types[0] if types else "AES256 (the default)"
    return [f"encryptionConfigurations encryptionType is {shown}; set 'KMS' with a key the platform controls"]


ECR_SCAN_ON_PUSH = ResourceRule(
    name="aws-ecr-repository-enable-scan-on-push",
    description="ECR repositories scan every image when it is pushed.",
    why="Known CVEs in trainer and server images are found before the images run on GPU nodes.",
    resource_types=REPOSITORY_TYPES,
    check=_scan_on_push,
)
ECR_IMMUTABLE_TAGS = ResourceRule(
    name="aws-ecr-repository-require-immutable-tags",
    description="ECR repositories have immutable tags.",
    why="A tag workloads deploy by (trainer:0.1.0) must keep naming the image that was reviewed and scanned.",
    resource_types=REPOSITORY_TYPES,
    check=_immutable_tags,
)

ECR_KMS_ENCRYPTION = ResourceRule(
    name="aws-ecr-repository-require-kms-encryption",
    description="ECR repositories encrypt their images with a KMS key (encryptionType KMS).",
    why="Trainer and server images carry the platform's code and its dependencies; a KMS key adds a key policy and "
    "CloudTrail records of every pull's decrypt.",
    resource_types=REPOSITORY_TYPES,
    check=_kms_encryption,
)

RULES: list[Rule] = [ECR_SCAN_ON_PUSH, ECR_IMMUTABLE_TAGS, ECR_KMS_ENCRYPTION]
