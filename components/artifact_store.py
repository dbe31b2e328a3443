"""The artifact store: a private, versioned, KMS-encrypted S3 bucket for datasets and checkpoints.

Optionally an FSx for Lustre file system (PERSISTENT_2) linked to a bucket prefix, so training
reads datasets at file-system speed and new files flow back to S3.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import NotRequired, TypedDict

import pulumi
import pulumi_aws as aws

from modelplane.components.bucket_policies import (
    LifecycleRule,
    artifact_lifecycle_rules,
    fsx_linked_key_policy_json,
    tls_only_bucket_policy_json,
)
from modelplane.terms.names import S3_BUCKET_PREFIX_MAX

COMPONENT_TYPE = "modelplane:storage:ArtifactStore"
DEFAULT_CHECKPOINT_VERSION_DAYS = 30
LUSTRE_CAPACITIES_GIB = "1200, 2400 or a multiple of 2400"
LUSTRE_THROUGHPUTS_PER_TIB = (125, 250, 500, 1000)
# Lustre clients reach the servers on 988 (LNet) and 1018-1023 (the servers' own connections).
LUSTRE_PORT_RANGES: tuple[tuple[int, int], ...] = ((988, 988), (1018, 1023))
S3_EVENTS = ["NEW", "CHANGED", "DELETED"]
_MAX_BUCKET_PREFIX = S3_BUCKET_PREFIX_MAX
_BUCKET_PREFIX = re.compile(r"^[a-z0-9][a-z0-9.-]*$")
_IMPORT_PREFIX = re.compile(r"^[A-Za-z0-9._-]+(/[A-Za-z0-9._-]+)*/?$")


class ArtifactFsxArgs(TypedDict):
    subnet_id: pulumi.Input[str]
    """Private subnet the file system lives in (PERSISTENT_2 is single-AZ)."""
    storage_capacity_gib: NotRequired[int]
    """1200, 2400 or a multiple of 2400; default 1200."""
    throughput_per_tib: NotRequired[int]
    """MB/s per TiB of storage: 125, 250, 500 or 1000; default 250."""
    import_prefix: NotRequired[str]
    """Bucket prefix linked to the file system, e.g. "datasets/"; mounted at "/datasets"."""
    security_group_ids: NotRequired[pulumi.Input[Sequence[pulumi.Input[str]]]]
    """Security groups for the file system; when absent, one is created from vpc_id and vpc_cidr."""
    vpc_id: NotRequired[pulumi.Input[str]]
    """VPC of the created security group; required without security_group_ids."""
    vpc_cidr: NotRequired[pulumi.Input[str]]
    """CIDR allowed to reach the Lustre ports; required without security_group_ids."""


class ArtifactStoreArgs(TypedDict):
    bucket_prefix: NotRequired[pulumi.Input[str]]
    """Prefix of the bucket's generated name (at most 37 characters); default derived from the component name."""
    checkpoint_version_days: NotRequired[int]
    """Days to keep overwritten versions under checkpoints/ before they expire; default 30."""
    force_destroy: NotRequired[pulumi.Input[bool]]
    """Let destroy delete a non-empty bucket; default False (never in prod)."""
    fsx: NotRequired[ArtifactFsxArgs]
    """FSx for Lustre linked to the bucket; default none."""
    tags: NotRequired[pulumi.Input[Mapping[str, pulumi.Input[str]]]]
    """Tags for every taggable resource."""


@dataclass(frozen=True)
class LustreSettings:
    """The validated, defaulted shape of the linked file system."""

    storage_capacity_gib: int
    throughput_per_tib: int
    import_prefix: str
    """Bucket prefix, always ending in "/"."""
    file_system_path: str
    """Where the prefix appears inside the file system, e.g. "/datasets"."""


def default_bucket_prefix(name: str) -> str:
    """A valid bucket prefix from a component name: lowercase, safe characters, ends with "-"."""
    cleaned = re.sub(r"[^a-z0-9-]+", "-", name.lower()).strip("-") or "artifacts"
    return cleaned[: _MAX_BUCKET_PREFIX - 1].rstrip("-") + "-"


def check_bucket_prefix(prefix: str) -> None:
    if len(prefix) > _MAX_BUCKET_PREFIX or not _BUCKET_PREFIX.match(prefix):
        raise ValueError(
            f"bucket_prefix={prefix!r}: must be 1 to {_MAX_BUCKET_PREFIX} characters of lowercase letters, "
            "digits, '.' and '-', starting with a letter or digit"
        )


def lustre_problems(at: str, capacity_gib: int, throughput_per_tib: int, import_prefix: str) -> list[str]:
    """Every problem of a PERSISTENT_2 file system's settings, each naming `at` (the config path)."""
    problems = []
    if capacity_gib not in (1200, 2400) and (capacity_gib < 2400 or capacity_gib % 2400):
        problems.append(f"{at}.storage_capacity_gib={capacity_gib!r}: PERSISTENT_2 needs {LUSTRE_CAPACITIES_GIB} GiB")
    if throughput_per_tib not in LUSTRE_THROUGHPUTS_PER_TIB:
        allowed = ", ".join(str(t) for t in LUSTRE_THROUGHPUTS_PER_TIB)
        problems.append(f"{at}.throughput_per_tib={throughput_per_tib!r}: must be one of {allowed} MB/s/TiB")
    if not isinstance(import_prefix, str) or not _IMPORT_PREFIX.match(import_prefix):
        problems.append(
            f"{at}.import_prefix={import_prefix!r}: must be a relative key prefix such as 'datasets/' "
            "(letters, digits, '.', '_', '-', separated by '/')"
        )
    return problems


def lustre_settings(fsx: ArtifactFsxArgs) -> LustreSettings:
    """Defaults and validation for the FSx input; ValueError names the bad field."""
    capacity = fsx.get("storage_capacity_gib", 1200)
    throughput = fsx.get("throughput_per_tib", 250)
    prefix = fsx.get("import_prefix", "datasets/")
    problems = lustre_problems("fsx", capacity, throughput, prefix)
    if problems:
        raise ValueError("; ".join(problems))
    if "security_group_ids" not in fsx and ("vpc_id" not in fsx or "vpc_cidr" not in fsx):
        raise ValueError(
            "fsx.vpc_id/fsx.vpc_cidr: both are required to create the Lustre security group; "
            "set them, or pass fsx.security_group_ids"
        )
    stripped = prefix.rstrip("/")
    return LustreSettings(capacity, throughput, f"{stripped}/", f"/{stripped}")


def _lifecycle_rule_args(rule: LifecycleRule) -> aws.s3.BucketLifecycleConfigurationRuleArgs:
    return aws.s3.BucketLifecycleConfigurationRuleArgs(
        id=rule.id,
        status="Enabled",
        # An empty filter is S3's spelling of "the whole bucket".
        filter=aws.s3.BucketLifecycleConfigurationRuleFilterArgs(prefix=rule.prefix or None),
        noncurrent_version_expiration=(
            aws.s3.BucketLifecycleConfigurationRuleNoncurrentVersionExpirationArgs(
                noncurrent_days=rule.noncurrent_version_expiration_days
            )
            if rule.noncurrent_version_expiration_days is not None
            else None
        ),
        abort_incomplete_multipart_upload=(
            aws.s3.BucketLifecycleConfigurationRuleAbortIncompleteMultipartUploadArgs(
                days_after_initiation=rule.abort_incomplete_multipart_upload_days
            )
            if rule.abort_incomplete_multipart_upload_days is not None
            else None
        ),
    )


class ArtifactStore(pulumi.ComponentResource):
    """S3 bucket (+ optional FSx for Lustre) for datasets and checkpoints.

    The fsx_* outputs are None when no `fsx` input was given.
    """

    bucket_name: pulumi.Output[str]
    bucket_arn: pulumi.Output[str]
    kms_key_arn: pulumi.Output[str]
    fsx_file_system_id: pulumi.Output[str] | None
    fsx_dns_name: pulumi.Output[str] | None
    fsx_mount_name: pulumi.Output[str] | None

    def __init__(self, name: str, args: ArtifactStoreArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__(COMPONENT_TYPE, name, {}, opts)
        bucket_prefix = args.get("bucket_prefix", default_bucket_prefix(name))
        if isinstance(bucket_prefix, str):
            check_bucket_prefix(bucket_prefix)
        rules = artifact_lifecycle_rules(args.get("checkpoint_version_days", DEFAULT_CHECKPOINT_VERSION_DAYS))
        fsx = args.get("fsx")
        lustre = lustre_settings(fsx) if fsx is not None else None
        tags = args.get("tags")
        child = pulumi.ResourceOptions(parent=self)

        key = self._key(name, tags, child)
        bucket = aws.s3.Bucket(
            f"{name}-bucket",
            bucket_prefix=bucket_prefix,
            force_destroy=args.get("force_destroy", False),
            tags=tags,
            opts=child,
        )
        ownership = aws.s3.BucketOwnershipControls(
            f"{name}-ownership",
            bucket=bucket.id,
            rule=aws.s3.BucketOwnershipControlsRuleArgs(object_ownership="BucketOwnerEnforced"),
            opts=child,
        )
        public_access_block = aws.s3.BucketPublicAccessBlock(
            f"{name}-public-access-block",
            bucket=bucket.id,
            block_public_acls=True,
            block_public_policy=True,
            ignore_public_acls=True,
            restrict_public_buckets=True,
            opts=child,
        )
        versioning = aws.s3.BucketVersioning(
            f"{name}-versioning",
            bucket=bucket.id,
            versioning_configuration=aws.s3.BucketVersioningVersioningConfigurationArgs(status="Enabled"),
            opts=child,
        )
        aws.s3.BucketServerSideEncryptionConfiguration(
            f"{name}-encryption",
            bucket=bucket.id,
            rules=[
                aws.s3.BucketServerSideEncryptionConfigurationRuleArgs(
                    apply_server_side_encryption_by_default=(
                        aws.s3.BucketServerSideEncryptionConfigurationRuleApplyServerSideEncryptionByDefaultArgs(
                            sse_algorithm="aws:kms", kms_master_key_id=key.arn
                        )
                    ),
                    # Bucket keys cut KMS requests (and their cost) by orders of magnitude for many small objects.
                    bucket_key_enabled=True,
                )
            ],
            opts=child,
        )
        aws.s3.BucketPolicy(
            f"{name}-policy",
            bucket=bucket.id,
            policy=bucket.arn.apply(tls_only_bucket_policy_json),
            # S3 rejects concurrent changes to one bucket's access settings.
            opts=pulumi.ResourceOptions(parent=self, depends_on=[public_access_block, ownership]),
        )
        aws.s3.BucketLifecycleConfiguration(
            f"{name}-lifecycle",
            bucket=bucket.id,
            rules=[_lifecycle_rule_args(rule) for rule in rules],
            # Noncurrent-version rules only make sense once versioning is on.
            opts=pulumi.ResourceOptions(parent=self, depends_on=[versioning]),
        )

        self.bucket_name = bucket.bucket
        self.bucket_arn = bucket.arn
        self.kms_key_arn = key.arn
        self.fsx_file_system_id = None
        self.fsx_dns_name = None
        self.fsx_mount_name = None
        if fsx is not None and lustre is not None:
            file_system = self._lustre(name, fsx, lustre, bucket, key, tags)
            self.fsx_file_system_id = file_system.id
            self.fsx_dns_name = file_system.dns_name
            self.fsx_mount_name = file_system.mount_name

        self.register_outputs(
            {
                "bucket_name": self.bucket_name,
                "bucket_arn": self.bucket_arn,
                "kms_key_arn": self.kms_key_arn,
                "fsx_file_system_id": self.fsx_file_system_id,
                "fsx_dns_name": self.fsx_dns_name,
                "fsx_mount_name": self.fsx_mount_name,
            }
        )

    def _key(
        self,
        name: str,
        tags: pulumi.Input[Mapping[str, pulumi.Input[str]]] | None,
        child: pulumi.ResourceOptions,
    ) -> aws.kms.Key:
        key = aws.kms.Key(
            f"{name}-key",
            description=f"Encrypts the {name} artifact store",
            enable_key_rotation=True,
            deletion_window_in_days=30,
            tags=tags,
            opts=child,
        )
        aws.kms.Alias(f"{name}-key-alias", name=f"alias/{name}", target_key_id=key.id, opts=child)
        return key

    def _lustre(
        self,
        name: str,
        fsx: ArtifactFsxArgs,
        lustre: LustreSettings,
        bucket: aws.s3.Bucket,
        key: aws.kms.Key,
        tags: pulumi.Input[Mapping[str, pulumi.Input[str]]] | None,
    ) -> aws.fsx.LustreFileSystem:
        child = pulumi.ResourceOptions(parent=self)
        key_policy = aws.kms.KeyPolicy(
            f"{name}-key-policy",
            key_id=key.id,
            policy=key.arn.apply(fsx_linked_key_policy_json),
            opts=child,
        )
        security_group_ids = fsx.get("security_group_ids")
        if security_group_ids is None:
            security_group_ids = [self._lustre_security_group(name, fsx, tags).id]
        file_system = aws.fsx.LustreFileSystem(
            f"{name}-lustre",
            deployment_type="PERSISTENT_2",
            storage_capacity=lustre.storage_capacity_gib,
            per_unit_storage_throughput=lustre.throughput_per_tib,
            data_compression_type="LZ4",
            subnet_ids=fsx["subnet_id"],
            security_group_ids=security_group_ids,
            kms_key_id=key.arn,
            tags=tags,
            opts=child,
        )
        aws.fsx.DataRepositoryAssociation(
            f"{name}-lustre-link",
            file_system_id=file_system.id,
            file_system_path=lustre.file_system_path,
            data_repository_path=bucket.bucket.apply(lambda bucket_name: f"s3://{bucket_name}/{lustre.import_prefix}"),
            batch_import_meta_data_on_create=True,
            # Deleting the link must never delete the datasets it exposes.
            delete_data_in_filesystem=False,
            s3=aws.fsx.DataRepositoryAssociationS3Args(
                auto_import_policy=aws.fsx.DataRepositoryAssociationS3AutoImportPolicyArgs(events=S3_EVENTS),
                auto_export_policy=aws.fsx.DataRepositoryAssociationS3AutoExportPolicyArgs(events=S3_EVENTS),
            ),
            tags=tags,
            # The first import fails unless FSx may already use the bucket's key.
            opts=pulumi.ResourceOptions(parent=self, depends_on=[key_policy]),
        )
        return file_system

    def _lustre_security_group(
        self,
        name: str,
        fsx: ArtifactFsxArgs,
        tags: pulumi.Input[Mapping[str, pulumi.Input[str]]] | None,
    ) -> aws.ec2.SecurityGroup:
        cidr_blocks = [fsx["vpc_cidr"]]
        return aws.ec2.SecurityGroup(
            f"{name}-lustre-sg",
            description=f"Lustre traffic for the {name} file system, within the VPC",
            vpc_id=fsx["vpc_id"],
            ingress=[
                aws.ec2.SecurityGroupIngressArgs(
                    protocol="tcp", from_port=low, to_port=high, cidr_blocks=cidr_blocks, description="Lustre"
                )
                for low, high in LUSTRE_PORT_RANGES
            ],
            # The file servers talk to each other on the same ports.
            egress=[
                aws.ec2.SecurityGroupEgressArgs(
                    protocol="tcp", from_port=low, to_port=high, cidr_blocks=cidr_blocks, description="Lustre"
                )
                for low, high in LUSTRE_PORT_RANGES
            ],
            tags=tags,
            opts=pulumi.ResourceOptions(parent=self),
        )
