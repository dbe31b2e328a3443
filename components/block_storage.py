"""The cluster's default block storage: encrypted gp3 volumes from the EBS CSI driver.

EKS no longer marks a default StorageClass for new clusters, and its legacy gp2 class uses the
in-tree provisioner; every claim without a class (Prometheus' data volume among them) lands here.
"""

from __future__ import annotations

from typing import NotRequired, TypedDict

import pulumi
import pulumi_kubernetes as k8s

EBS_CSI_PROVISIONER = "ebs.csi.aws.com"
DEFAULT_CLASS_ANNOTATION = "storageclass.kubernetes.io/is-default-class"
DEFAULT_STORAGE_CLASS = "gp3-encrypted"


def gp3_parameters(kms_key_arn: str | None = None) -> dict[str, str]:
    """EBS CSI parameters: gp3, always encrypted (with the given key, else the account's EBS key)."""
    parameters = {"type": "gp3", "encrypted": "true", "csi.storage.k8s.io/fstype": "ext4"}
    if kms_key_arn:
        parameters["kmsKeyId"] = kms_key_arn
    return parameters


class EncryptedBlockStorageArgs(TypedDict):
    storage_class_name: NotRequired[str]
    """Name of the class; default "gp3-encrypted"."""
    default: NotRequired[bool]
    """Mark it the cluster's default class; default True."""


class EncryptedBlockStorage(pulumi.ComponentResource):
    storage_class_name: pulumi.Output[str]

    def __init__(self, name: str, args: EncryptedBlockStorageArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__("modelplane:storage:EncryptedBlockStorage", name, {}, opts)
        class_name = args.get("storage_class_name", DEFAULT_STORAGE_CLASS)
        annotations = {DEFAULT_CLASS_ANNOTATION: "true"} if args.get("default", True) else {}
        storage_class = k8s.storage.v1.StorageClass(
            f"{name}-class",
            metadata=k8s.meta.v1.ObjectMetaArgs(name=class_name, annotations=annotations),
            provisioner=EBS_CSI_PROVISIONER,
            parameters=gp3_parameters(),
            # Bind where the pod lands: an EBS volume lives in one AZ.
            volume_binding_mode="WaitForFirstConsumer",
            allow_volume_expansion=True,
            reclaim_policy="Delete",
            opts=pulumi.ResourceOptions(parent=self),
        )
        self.storage_class_name = storage_class.metadata.apply(lambda metadata: metadata.name or class_name)
        self.register_outputs({"storage_class_name": self.storage_class_name})
