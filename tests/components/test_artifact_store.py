import json
from collections.abc import Callable
from typing import Any

import pulumi
import pytest

from modelplane.components.artifact_store import (
    COMPONENT_TYPE,
    ArtifactFsxArgs,
    ArtifactStore,
    ArtifactStoreArgs,
    check_bucket_prefix,
    default_bucket_prefix,
    lustre_settings,
)
from tests.resources import assert_rejected_before_children, dig

S3 = "aws:s3/"
FSX: ArtifactFsxArgs = {"subnet_id": "subnet-0abc", "vpc_id": "vpc-0abc", "vpc_cidr": "10.0.0.0/16"}


def _recorder(outputs: dict[str, Any], key: str) -> Callable[[Any], None]:
    def record(value: Any) -> None:
        outputs[key] = value

    return record


def _store(args: ArtifactStoreArgs, outputs: dict[str, Any] | None = None):
    def program() -> None:
        store = ArtifactStore("artifacts", args)
        if outputs is not None:
            outputs["store"] = store
            for attribute in ("bucket_name", "bucket_arn", "kms_key_arn", "fsx_file_system_id", "fsx_dns_name"):
                value = getattr(store, attribute)
                if isinstance(value, pulumi.Output):
                    value.apply(_recorder(outputs, attribute))

    return program


@pytest.fixture
def store(run_program):
    return run_program(_store({"checkpoint_version_days": 14, "tags": {"team": "ml"}}))


@pytest.fixture
def store_with_fsx(run_program):
    return run_program(_store({"fsx": {**FSX, "storage_capacity_gib": 2400, "throughput_per_tib": 500}}))


def test_every_child_is_named_after_and_parented_to_the_component(store):
    component = store.one(COMPONENT_TYPE, "artifacts")
    children = [r for r in store if r is not component]
    assert children
    for child in children:
        assert child.parent == component.urn
        assert child.name.startswith("artifacts-")


def test_without_fsx_only_the_bucket_and_its_key_exist(store):
    assert store.types() == {
        COMPONENT_TYPE,
        "aws:kms/key:Key",
        "aws:kms/alias:Alias",
        S3 + "bucket:Bucket",
        S3 + "bucketOwnershipControls:BucketOwnershipControls",
        S3 + "bucketPublicAccessBlock:BucketPublicAccessBlock",
        S3 + "bucketVersioning:BucketVersioning",
        S3 + "bucketServerSideEncryptionConfiguration:BucketServerSideEncryptionConfiguration",
        S3 + "bucketPolicy:BucketPolicy",
        S3 + "bucketLifecycleConfiguration:BucketLifecycleConfiguration",
    }


def test_key_rotates_and_has_an_alias(store):
    key = store.one("aws:kms/key:Key", "artifacts-key")
    assert key.inputs["enableKeyRotation"] is True
    alias = store.one("aws:kms/alias:Alias", "artifacts-key-alias")
    assert alias.inputs["name"] == "alias/artifacts"


def test_bucket_defaults_to_a_name_derived_prefix_and_no_force_destroy(store):
    bucket = store.one(S3 + "bucket:Bucket", "artifacts-bucket")
    assert bucket.inputs["bucketPrefix"] == "artifacts-"
    assert bucket.inputs["forceDestroy"] is False
    assert bucket.inputs["tags"] == {"team": "ml"}


def test_bucket_owner_enforced_and_every_public_access_blocked(store):
    ownership = store.one(S3 + "bucketOwnershipControls:BucketOwnershipControls")
    assert dig(ownership.inputs, "rule", "objectOwnership") == "BucketOwnerEnforced"
    block = store.one(S3 + "bucketPublicAccessBlock:BucketPublicAccessBlock", "artifacts-public-access-block")
    for flag in ("blockPublicAcls", "blockPublicPolicy", "ignorePublicAcls", "restrictPublicBuckets"):
        assert block.inputs[flag] is True, flag


def test_versioning_enabled(store):
    versioning = store.one(S3 + "bucketVersioning:BucketVersioning", "artifacts-versioning")
    assert dig(versioning.inputs, "versioningConfiguration", "status") == "Enabled"


def test_default_encryption_is_kms_with_the_store_key_and_bucket_key(store):
    encryption = store.one(S3 + "bucketServerSideEncryptionConfiguration:BucketServerSideEncryptionConfiguration")
    (rule,) = encryption.inputs["rules"]
    assert dig(rule, "applyServerSideEncryptionByDefault", "sseAlgorithm") == "aws:kms"
    key = store.one("aws:kms/key:Key", "artifacts-key")
    assert key.urn in encryption.dependencies
    assert dig(rule, "applyServerSideEncryptionByDefault", "kmsMasterKeyId").startswith("arn:aws:kms:")
    assert rule["bucketKeyEnabled"] is True


def test_bucket_policy_denies_non_tls_and_waits_for_the_public_access_block(store):
    policy = store.one(S3 + "bucketPolicy:BucketPolicy", "artifacts-policy")
    (statement,) = json.loads(policy.inputs["policy"])["Statement"]
    assert statement["Effect"] == "Deny"
    assert statement["Condition"] == {"Bool": {"aws:SecureTransport": "false"}}
    bucket_arn = statement["Resource"][0]
    assert statement["Resource"] == [bucket_arn, f"{bucket_arn}/*"]
    assert bucket_arn.startswith("arn:aws:s3:::")
    block = store.one(S3 + "bucketPublicAccessBlock:BucketPublicAccessBlock")
    assert block.urn in policy.dependencies


def test_lifecycle_expires_noncurrent_checkpoints_and_aborts_uploads(store):
    lifecycle = store.one(S3 + "bucketLifecycleConfiguration:BucketLifecycleConfiguration", "artifacts-lifecycle")
    checkpoints, uploads = lifecycle.inputs["rules"]
    assert checkpoints["status"] == "Enabled"
    assert dig(checkpoints, "filter", "prefix") == "checkpoints/"
    assert dig(checkpoints, "noncurrentVersionExpiration", "noncurrentDays") == 14
    assert uploads["filter"] == {}
    assert dig(uploads, "abortIncompleteMultipartUpload", "daysAfterInitiation") == 7
    versioning = store.one(S3 + "bucketVersioning:BucketVersioning")
    assert versioning.urn in lifecycle.dependencies


def test_outputs_name_the_bucket_and_key_and_no_file_system(run_program):
    outputs: dict[str, Any] = {}
    store = run_program(_store({}, outputs))
    bucket_prefix = store.one(S3 + "bucket:Bucket").inputs["bucketPrefix"]
    assert outputs["bucket_name"].startswith(bucket_prefix)
    assert outputs["bucket_arn"] == f"arn:aws:s3:::{outputs['bucket_name']}"
    assert outputs["kms_key_arn"].startswith("arn:aws:kms:")
    assert outputs["store"].fsx_file_system_id is None
    assert outputs["store"].fsx_dns_name is None
    assert outputs["store"].fsx_mount_name is None


def test_fsx_is_persistent_2_with_lz4_and_the_store_key(store_with_fsx):
    file_system = store_with_fsx.one("aws:fsx/lustreFileSystem:LustreFileSystem", "artifacts-lustre")
    assert file_system.inputs["deploymentType"] == "PERSISTENT_2"
    assert file_system.inputs["storageCapacity"] == 2400
    assert file_system.inputs["perUnitStorageThroughput"] == 500
    assert file_system.inputs["dataCompressionType"] == "LZ4"
    assert file_system.inputs["subnetIds"] == "subnet-0abc"
    assert file_system.inputs["kmsKeyId"].startswith("arn:aws:kms:")
    group = store_with_fsx.one("aws:ec2/securityGroup:SecurityGroup", "artifacts-lustre-sg")
    assert group.urn in file_system.dependencies


def test_fsx_security_group_opens_only_lustre_ports_within_the_vpc(store_with_fsx):
    group = store_with_fsx.one("aws:ec2/securityGroup:SecurityGroup", "artifacts-lustre-sg")
    assert group.inputs["vpcId"] == "vpc-0abc"
    ports = {(rule["fromPort"], rule["toPort"]) for rule in group.inputs["ingress"]}
    assert ports == {(988, 988), (1018, 1023)}
    for rule in group.inputs["ingress"]:
        assert rule["protocol"] == "tcp"
        assert rule["cidrBlocks"] == ["10.0.0.0/16"]


def test_fsx_links_datasets_to_the_bucket_prefix_both_ways(store_with_fsx):
    link = store_with_fsx.one("aws:fsx/dataRepositoryAssociation:DataRepositoryAssociation", "artifacts-lustre-link")
    assert link.inputs["fileSystemPath"] == "/datasets"
    bucket = store_with_fsx.one("aws:s3/bucket:Bucket")
    assert link.inputs["dataRepositoryPath"].startswith(f"s3://{bucket.inputs['bucketPrefix']}")
    assert link.inputs["dataRepositoryPath"].endswith("/datasets/")
    assert dig(link.inputs, "s3", "autoImportPolicy", "events") == ["NEW", "CHANGED", "DELETED"]
    assert dig(link.inputs, "s3", "autoExportPolicy", "events") == ["NEW", "CHANGED", "DELETED"]
    assert link.inputs["deleteDataInFilesystem"] is False
    file_system = store_with_fsx.one("aws:fsx/lustreFileSystem:LustreFileSystem")
    assert file_system.urn in link.dependencies


def test_fsx_may_use_the_key_before_the_link_imports(store_with_fsx):
    key_policy = store_with_fsx.one("aws:kms/keyPolicy:KeyPolicy", "artifacts-key-policy")
    sids = [s["Sid"] for s in json.loads(key_policy.inputs["policy"])["Statement"]]
    assert sids == ["AccountAdministersKeyThroughIam", "FsxLinkedFileSystemsUseKeyThroughS3"]
    link = store_with_fsx.one("aws:fsx/dataRepositoryAssociation:DataRepositoryAssociation")
    assert key_policy.urn in link.dependencies


def test_fsx_with_given_security_groups_creates_none(run_program):
    registered = run_program(_store({"fsx": {"subnet_id": "subnet-1", "security_group_ids": ["sg-1"]}}))
    assert not registered.of_type("aws:ec2/securityGroup:SecurityGroup")
    file_system = registered.one("aws:fsx/lustreFileSystem:LustreFileSystem")
    assert file_system.inputs["securityGroupIds"] == ["sg-1"]


def test_fsx_outputs_are_set(run_program):
    outputs: dict[str, Any] = {}
    run_program(_store({"fsx": FSX}, outputs))
    assert outputs["fsx_file_system_id"].startswith("artifacts-lustre")
    assert outputs["fsx_dns_name"].endswith(".amazonaws.com")


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ({"checkpoint_version_days": 0}, r"^checkpoint_version_days=0"),
        ({"bucket_prefix": "Upper_Case"}, r"^bucket_prefix='Upper_Case'"),
        ({"fsx": {**FSX, "storage_capacity_gib": 1000}}, r"^fsx\.storage_capacity_gib=1000"),
        ({"fsx": {**FSX, "throughput_per_tib": 200}}, r"^fsx\.throughput_per_tib=200"),
        ({"fsx": {**FSX, "import_prefix": "/abs"}}, r"^fsx\.import_prefix='/abs'"),
        ({"fsx": {"subnet_id": "subnet-1", "vpc_id": "vpc-1"}}, r"^fsx\.vpc_id/fsx\.vpc_cidr"),
    ],
)
def test_bad_inputs_fail_before_any_child_resource(run_program, args, message):
    assert_rejected_before_children(run_program, lambda: ArtifactStore("artifacts", args), message, [COMPONENT_TYPE])


def test_default_bucket_prefix_is_valid_for_awkward_names():
    for name in ("artifacts", "ModelPlane_Dev Artifacts", "x" * 80, "---"):
        prefix = default_bucket_prefix(name)
        check_bucket_prefix(prefix)
        assert prefix.endswith("-")
        assert len(prefix) <= 37


def test_lustre_settings_defaults():
    settings = lustre_settings({"subnet_id": "subnet-1", "security_group_ids": ["sg-1"]})
    assert (settings.storage_capacity_gib, settings.throughput_per_tib) == (1200, 250)
    assert (settings.import_prefix, settings.file_system_path) == ("datasets/", "/datasets")


def test_lustre_settings_normalise_the_prefix():
    settings = lustre_settings({**FSX, "import_prefix": "data/imagenet"})
    assert (settings.import_prefix, settings.file_system_path) == ("data/imagenet/", "/data/imagenet")


@pytest.mark.parametrize("capacity", [1200, 2400, 4800, 9600])
def test_lustre_settings_accept_valid_capacities(capacity):
    assert lustre_settings({**FSX, "storage_capacity_gib": capacity}).storage_capacity_gib == capacity


@pytest.mark.parametrize("capacity", [0, 1800, 3600, 4000])
def test_lustre_settings_reject_invalid_capacities(capacity):
    with pytest.raises(ValueError, match=rf"^fsx\.storage_capacity_gib={capacity}"):
        lustre_settings({**FSX, "storage_capacity_gib": capacity})
