from typing import Any

import pulumi
import pulumi_kubernetes as k8s
import pytest

from modelplane.components.lustre_volume import (
    COMPONENT_TYPE,
    FSX_CSI_ADDON_NAME,
    FSX_CSI_DRIVER,
    LustreStorageClass,
    LustreStorageClassArgs,
    scratch_parameters,
)
from tests.resources import assert_rejected_before_children, dig

STORAGE_CLASS = "kubernetes:storage.k8s.io/v1:StorageClass"
VOLUME = "kubernetes:core/v1:PersistentVolume"
CLAIM = "kubernetes:core/v1:PersistentVolumeClaim"
SCRATCH: LustreStorageClassArgs = {"subnet_id": "subnet-1", "security_group_ids": ["sg-1", "sg-2"]}
PERSISTENT: LustreStorageClassArgs = {
    **SCRATCH,
    "namespace": "training",
    "file_system_id": "fs-0123456789abcdef0",
    "dns_name": "fs-0123456789abcdef0.fsx.us-east-1.amazonaws.com",
    "mount_name": "abcdefgh",
}


def _lustre(args: LustreStorageClassArgs, outputs: dict[str, Any] | None = None):
    def program() -> None:
        provider = k8s.Provider("cluster", kubeconfig="{}")
        lustre = LustreStorageClass("lustre", args, pulumi.ResourceOptions(provider=provider))
        if outputs is not None:
            outputs["component"] = lustre
            lustre.storage_class_name.apply(lambda v: outputs.__setitem__("storage_class_name", v))
            if lustre.persistent_volume_claim_name is not None:
                lustre.persistent_volume_claim_name.apply(lambda v: outputs.__setitem__("claim", v))

    return program


@pytest.fixture
def persistent(run_program):
    return run_program(_lustre(PERSISTENT))


def test_addon_and_driver_names():
    assert FSX_CSI_ADDON_NAME == "aws-fsx-csi-driver"
    assert FSX_CSI_DRIVER == "fsx.csi.aws.com"


def test_scratch_parameters_join_security_groups():
    assert scratch_parameters("subnet-1", ["sg-1", "sg-2"]) == {
        "subnetId": "subnet-1",
        "securityGroupIds": "sg-1,sg-2",
        "deploymentType": "SCRATCH_2",
    }


def test_children_use_the_callers_provider_and_parent(persistent):
    component = persistent.one(COMPONENT_TYPE, "lustre")
    provider = persistent.one("pulumi:providers:kubernetes", "cluster")
    children = persistent.children_of(component)
    assert {c.type for c in children} == {STORAGE_CLASS, VOLUME, CLAIM}
    for child in children:
        assert child.name.startswith("lustre-")
        assert child.provider.startswith(provider.urn + "::")


def test_scratch_storage_class(persistent):
    storage_class = persistent.one(STORAGE_CLASS, "lustre-scratch")
    assert storage_class.inputs["provisioner"] == "fsx.csi.aws.com"
    assert dig(storage_class.inputs, "metadata", "name") == "fsx-lustre-scratch"
    assert storage_class.inputs["parameters"] == {
        "subnetId": "subnet-1",
        "securityGroupIds": "sg-1,sg-2",
        "deploymentType": "SCRATCH_2",
    }
    assert storage_class.inputs["reclaimPolicy"] == "Delete"
    assert storage_class.inputs["mountOptions"] == ["flock"]


def test_static_volume_points_at_the_persistent_file_system(persistent):
    volume = persistent.one(VOLUME, "lustre-volume")
    spec = volume.inputs["spec"]
    assert dig(spec, "csi", "driver") == "fsx.csi.aws.com"
    assert dig(spec, "csi", "volumeHandle") == "fs-0123456789abcdef0"
    assert dig(spec, "csi", "volumeAttributes") == {
        "dnsname": "fs-0123456789abcdef0.fsx.us-east-1.amazonaws.com",
        "mountname": "abcdefgh",
    }
    assert spec["accessModes"] == ["ReadWriteMany"]
    assert spec["persistentVolumeReclaimPolicy"] == "Retain"
    assert spec["storageClassName"] == ""
    assert dig(spec, "capacity", "storage") == "1200Gi"
    assert spec["claimRef"] == {"namespace": "training", "name": "datasets"}


def test_claim_binds_to_the_static_volume(persistent):
    volume = persistent.one(VOLUME)
    claim = persistent.one(CLAIM, "lustre-claim")
    assert claim.inputs["metadata"] == {"name": "datasets", "namespace": "training"}
    spec = claim.inputs["spec"]
    assert spec["volumeName"] == dig(volume.inputs, "metadata", "name")
    assert spec["storageClassName"] == ""
    assert spec["accessModes"] == ["ReadWriteMany"]
    assert dig(spec, "resources", "requests", "storage") == "1200Gi"


def test_outputs(run_program):
    outputs: dict[str, Any] = {}
    run_program(_lustre({**PERSISTENT, "claim_name": "imagenet", "storage_class_name": "scratch"}, outputs))
    assert outputs["storage_class_name"] == "scratch"
    assert outputs["claim"] == "imagenet"


def test_scratch_only_without_a_file_system(run_program):
    outputs: dict[str, Any] = {}
    registered = run_program(_lustre(SCRATCH, outputs))
    assert not registered.of_type(VOLUME)
    assert not registered.of_type(CLAIM)
    assert outputs["component"].persistent_volume_name is None
    assert outputs["component"].persistent_volume_claim_name is None


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ({**SCRATCH, "storage_class_name": "Bad_Name"}, r"^storage_class_name='Bad_Name'"),
        ({**SCRATCH, "file_system_id": "fs-1"}, r"^dns_name, mount_name, namespace: required with file_system_id"),
        ({**PERSISTENT, "namespace": "Training"}, r"^namespace='Training'"),
        ({**PERSISTENT, "claim_name": "a b"}, r"^claim_name='a b'"),
        ({**PERSISTENT, "storage_capacity_gib": 0}, r"^storage_capacity_gib=0"),
    ],
)
def test_bad_inputs_fail_before_any_child_resource(run_program, args, message):
    assert_rejected_before_children(run_program, lambda: LustreStorageClass("lustre", args), message, [COMPONENT_TYPE])
