"""ECR rules: images are scanned when pushed, and a tag, once pushed, always names the same image."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from modelplane.policies.rules.props import dig, is_true, is_unknown
from modelplane.policies.rules.rule import ResourceRule, Rule

REPOSITORY_TYPES = frozenset({"aws:ecr/repository:Repository"})


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

RULES: list[Rule] = [ECR_SCAN_ON_PUSH, ECR_IMMUTABLE_TAGS]
