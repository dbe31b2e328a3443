from __future__ import annotations

from modelplane.components.block_storage import EncryptedBlockStorage, gp3_parameters


def test_gp3_is_always_encrypted() -> None:
    assert gp3_parameters() == {"type": "gp3", "encrypted": "true", "csi.storage.k8s.io/fstype": "ext4"}
    assert gp3_parameters("arn:aws:kms:us-east-1:123456789012:key/k")["kmsKeyId"].endswith("key/k")


def test_default_class_binds_on_first_consumer(run_program) -> None:
    registered = run_program(lambda: EncryptedBlockStorage("block", {}))
    component = registered.one("modelplane:storage:EncryptedBlockStorage", "block")
    storage_class = registered.one("kubernetes:storage.k8s.io/v1:StorageClass", "block-class")
    assert storage_class.parent == component.urn
    inputs = storage_class.inputs
    assert inputs["metadata"]["name"] == "gp3-encrypted"
    assert inputs["metadata"]["annotations"] == {"storageclass.kubernetes.io/is-default-class": "true"}
    assert inputs["provisioner"] == "ebs.csi.aws.com"
    assert inputs["parameters"]["encrypted"] == "true"
    assert inputs["volumeBindingMode"] == "WaitForFirstConsumer"


def test_non_default_class_has_no_default_annotation(run_program) -> None:
    registered = run_program(lambda: EncryptedBlockStorage("block", {"default": False, "storage_class_name": "fast"}))
    metadata = registered.one("kubernetes:storage.k8s.io/v1:StorageClass").inputs["metadata"]
    assert metadata["name"] == "fast"
    assert not metadata.get("annotations")
