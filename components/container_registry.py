"""ECR repositories for the platform's images: immutable tags, scanned on push, KMS-encrypted."""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import NotRequired, TypedDict

import pulumi
import pulumi_aws as aws

from modelplane.components.bucket_policies import ecr_lifecycle_policy_json

COMPONENT_TYPE = "modelplane:registry:ContainerRegistry"
DEFAULT_REPOSITORIES = ("trainer", "server")
DEFAULT_UNTAGGED_EXPIRY_DAYS = 7
_REPOSITORY_NAME = re.compile(r"^[a-z0-9]+(?:[._-][a-z0-9]+)*$")
_NAME_PREFIX = re.compile(r"^[a-z0-9]+(?:[._-][a-z0-9]+)*(?:/[a-z0-9]+(?:[._-][a-z0-9]+)*)*$")


class ContainerRegistryArgs(TypedDict):
    repositories: NotRequired[Sequence[str]]
    """Repository names, unique; default ["trainer", "server"]. One repository each."""
    untagged_expiry_days: NotRequired[int]
    """Days after push before an untagged image expires; default 7."""
    name_prefix: NotRequired[str]
    """Namespace of the repositories, e.g. "modelplane-dev" gives "modelplane-dev/trainer"; default the name."""
    tags: NotRequired[pulumi.Input[Mapping[str, pulumi.Input[str]]]]
    """Tags for the key and every repository."""


def repository_problems(at: str, repositories: Sequence[str]) -> list[str]:
    """Every problem of the repositories' short names, each naming `at` (the config path)."""
    if isinstance(repositories, str) or not repositories:
        return [f"{at}={repositories!r}: must be a non-empty list of names, e.g. ['trainer']"]
    problems = [
        f"{at}[{index}]={repository!r}: not a valid ECR repository name "
        "(lowercase letters and digits separated by '.', '_' or '-')"
        for index, repository in enumerate(repositories)
        if not isinstance(repository, str) or not _REPOSITORY_NAME.match(repository)
    ]
    duplicates = sorted({r for r in repositories if list(repositories).count(r) > 1})
    if duplicates:
        problems.append(f"{at}={list(repositories)!r}: {', '.join(duplicates)} listed twice; names must be unique")
    return problems


def repository_names(name_prefix: str, repositories: Sequence[str]) -> dict[str, str]:
    """Short name -> full ECR repository name; ValueError naming the bad input."""
    if not _NAME_PREFIX.match(name_prefix):
        raise ValueError(
            f"name_prefix={name_prefix!r}: must be lowercase letters and digits separated by '.', '_', '-' or '/'"
        )
    problems = repository_problems("repositories", repositories)
    if problems:
        raise ValueError("; ".join(problems))
    return {repository: f"{name_prefix}/{repository}" for repository in repositories}


class ContainerRegistry(pulumi.ComponentResource):
    """One ECR repository per image, sharing a KMS key, with untagged images expiring."""

    repository_urls: pulumi.Output[dict[str, str]]
    """Short repository name -> repository URL (ACCOUNT.dkr.ecr.REGION.amazonaws.com/PREFIX/NAME)."""
    repository_arns: pulumi.Output[dict[str, str]]
    """Short repository name -> repository ARN."""

    def __init__(self, name: str, args: ContainerRegistryArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__(COMPONENT_TYPE, name, {}, opts)
        names = repository_names(args.get("name_prefix", name), args.get("repositories", DEFAULT_REPOSITORIES))
        lifecycle_policy = ecr_lifecycle_policy_json(args.get("untagged_expiry_days", DEFAULT_UNTAGGED_EXPIRY_DAYS))
        tags = args.get("tags")
        child = pulumi.ResourceOptions(parent=self)

        key = aws.kms.Key(
            f"{name}-key",
            description=f"Encrypts the {name} container images",
            enable_key_rotation=True,
            deletion_window_in_days=30,
            tags=tags,
            opts=child,
        )
        repositories: dict[str, aws.ecr.Repository] = {}
        for short_name, full_name in names.items():
            repository = aws.ecr.Repository(
                f"{name}-{short_name}",
                name=full_name,
                # A tag then always names the same image, so a rollback really rolls back.
                image_tag_mutability="IMMUTABLE",
                image_scanning_configuration=aws.ecr.RepositoryImageScanningConfigurationArgs(scan_on_push=True),
                encryption_configurations=[
                    aws.ecr.RepositoryEncryptionConfigurationArgs(encryption_type="KMS", kms_key=key.arn)
                ],
                force_delete=False,
                tags=tags,
                opts=child,
            )
            aws.ecr.LifecyclePolicy(
                f"{name}-{short_name}-lifecycle",
                repository=repository.name,
                policy=lifecycle_policy,
                opts=child,
            )
            repositories[short_name] = repository

        self.repository_urls = pulumi.Output.all(**{n: r.repository_url for n, r in repositories.items()})
        self.repository_arns = pulumi.Output.all(**{n: r.arn for n, r in repositories.items()})
        self.register_outputs({"repository_urls": self.repository_urls, "repository_arns": self.repository_arns})
