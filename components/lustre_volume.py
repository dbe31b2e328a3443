"""Kubernetes storage backed by FSx for Lustre through the FSx CSI driver.

A StorageClass for dynamically provisioned scratch file systems (one per claim, for
short-lived jobs), and optionally a static PersistentVolume + claim for the persistent
file system the ArtifactStore links to its bucket. The driver itself is the EKS add-on
FSX_CSI_ADDON_NAME, installed with the cluster.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import NotRequired, TypedDict

import pulumi
import pulumi_kubernetes as k8s

from modelplane.terms.names import is_dns_label, is_dns_subdomain

COMPONENT_TYPE = "modelplane:storage:LustreStorageClass"
FSX_CSI_ADDON_NAME = "aws-fsx-csi-driver"
"""The EKS add-on that installs the FSx CSI driver; the cluster must enable it."""
FSX_CSI_DRIVER = "fsx.csi.aws.com"
SCRATCH_DEPLOYMENT_TYPE = "SCRATCH_2"
# Many training frameworks lock files (checkpoint writers, dataset caches); Lustre refuses locks without it.
LUSTRE_MOUNT_OPTIONS = ["flock"]


class LustreStorageClassArgs(TypedDict):
    subnet_id: pulumi.Input[str]
    """Subnet scratch file systems are created in; the GPU nodes must reach it."""
    security_group_ids: pulumi.Input[Sequence[str]]
    """Security groups for scratch file systems; they must allow Lustre (988, 1018-1023) from the nodes."""
    storage_class_name: NotRequired[str]
    """Name of the scratch StorageClass; default "fsx-lustre-scratch"."""
    namespace: NotRequired[str]
    """Namespace of the claim on the persistent file system; required with file_system_id."""
    file_system_id: NotRequired[pulumi.Input[str]]
    """The persistent file system (fs-...) to expose as a static volume; default none."""
    dns_name: NotRequired[pulumi.Input[str]]
    """DNS name of that file system; required with file_system_id."""
    mount_name: NotRequired[pulumi.Input[str]]
    """Lustre mount name of that file system; required with file_system_id."""
    claim_name: NotRequired[str]
    """Name of the claim on the persistent file system; default "datasets"."""
    storage_capacity_gib: NotRequired[int]
    """Capacity of the persistent file system, as the volume reports it; default 1200."""


def check_kubernetes_names(args: LustreStorageClassArgs) -> None:
    """ValueError naming the first input that is not a valid Kubernetes name or is missing its partners."""
    storage_class_name = args.get("storage_class_name", "fsx-lustre-scratch")
    if not is_dns_subdomain(storage_class_name):
        raise ValueError(f"storage_class_name={storage_class_name!r}: must be a DNS subdomain (lowercase, digits, -)")
    persistent = [field for field in ("file_system_id", "dns_name", "mount_name", "namespace") if field in args]
    if persistent and len(persistent) < 4:
        missing = sorted({"file_system_id", "dns_name", "mount_name", "namespace"} - set(persistent))
        raise ValueError(
            f"{', '.join(missing)}: required with {', '.join(persistent)} to expose the persistent file system"
        )
    namespace = args.get("namespace", "default")
    if not is_dns_label(namespace):
        raise ValueError(f"namespace={namespace!r}: must be a DNS label (lowercase, digits, -)")
    claim_name = args.get("claim_name", "datasets")
    if not is_dns_subdomain(claim_name):
        raise ValueError(f"claim_name={claim_name!r}: must be a DNS subdomain (lowercase, digits, -)")
    capacity = args.get("storage_capacity_gib", 1200)
    if isinstance(capacity, bool) or not isinstance(capacity, int) or capacity < 1:
        raise ValueError(f"storage_capacity_gib={capacity!r}: must be a positive number of GiB")


def scratch_parameters(subnet_id: str, security_group_ids: Sequence[str]) -> dict[str, str]:
    """StorageClass parameters the FSx CSI driver reads to create a scratch file system per claim."""
    return {
        "subnetId": subnet_id,
        # The driver takes one comma-separated string, not a list.
        "securityGroupIds": ",".join(security_group_ids),
        "deploymentType": SCRATCH_DEPLOYMENT_TYPE,
    }


class LustreStorageClass(pulumi.ComponentResource):
    """FSx for Lustre storage for pods; pass the cluster's Kubernetes provider through opts.

    persistent_volume_name and persistent_volume_claim_name are None without file_system_id.
    """

    storage_class_name: pulumi.Output[str]
    persistent_volume_name: pulumi.Output[str] | None
    persistent_volume_claim_name: pulumi.Output[str] | None

    def __init__(self, name: str, args: LustreStorageClassArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__(COMPONENT_TYPE, name, {}, opts)
        check_kubernetes_names(args)
        child = pulumi.ResourceOptions(parent=self)

        class_name = args.get("storage_class_name", "fsx-lustre-scratch")
        parameters = pulumi.Output.all(
            pulumi.Output.from_input(args["subnet_id"]), pulumi.Output.from_input(args["security_group_ids"])
        ).apply(lambda values: scratch_parameters(values[0], values[1]))
        storage_class = k8s.storage.v1.StorageClass(
            f"{name}-scratch",
            metadata=k8s.meta.v1.ObjectMetaArgs(name=class_name),
            provisioner=FSX_CSI_DRIVER,
            parameters=parameters,
            mount_options=LUSTRE_MOUNT_OPTIONS,
            # Scratch data is disposable by definition: the file system goes with its claim.
            reclaim_policy="Delete",
            volume_binding_mode="Immediate",
            opts=child,
        )
        # Names are fixed inputs; resolving them through each object makes consumers wait for it to exist.
        self.storage_class_name = storage_class.id.apply(lambda _: class_name)
        self.persistent_volume_name = None
        self.persistent_volume_claim_name = None
        if "file_system_id" in args:
            volume, volume_name, claim, claim_name = self._persistent(name, args)
            self.persistent_volume_name = volume.id.apply(lambda _: volume_name)
            self.persistent_volume_claim_name = claim.id.apply(lambda _: claim_name)

        self.register_outputs(
            {
                "storage_class_name": self.storage_class_name,
                "persistent_volume_name": self.persistent_volume_name,
                "persistent_volume_claim_name": self.persistent_volume_claim_name,
            }
        )

    def _persistent(
        self, name: str, args: LustreStorageClassArgs
    ) -> tuple[k8s.core.v1.PersistentVolume, str, k8s.core.v1.PersistentVolumeClaim, str]:
        namespace = args["namespace"]
        claim_name = args.get("claim_name", "datasets")
        storage = f"{args.get('storage_capacity_gib', 1200)}Gi"
        # Volumes are cluster-wide: the namespace in the name keeps two namespaces' volumes apart.
        volume_name = f"{namespace}-{claim_name}-lustre"
        volume = k8s.core.v1.PersistentVolume(
            f"{name}-volume",
            metadata=k8s.meta.v1.ObjectMetaArgs(name=volume_name),
            spec=k8s.core.v1.PersistentVolumeSpecArgs(
                capacity={"storage": storage},
                volume_mode="Filesystem",
                access_modes=["ReadWriteMany"],
                # The file system belongs to the ArtifactStore; deleting the volume must not touch it.
                persistent_volume_reclaim_policy="Retain",
                # Empty class: bind only to the claim below, never to a dynamic request.
                storage_class_name="",
                mount_options=LUSTRE_MOUNT_OPTIONS,
                csi=k8s.core.v1.CSIPersistentVolumeSourceArgs(
                    driver=FSX_CSI_DRIVER,
                    volume_handle=args["file_system_id"],
                    volume_attributes={"dnsname": args["dns_name"], "mountname": args["mount_name"]},
                ),
                claim_ref=k8s.core.v1.ObjectReferenceArgs(namespace=namespace, name=claim_name),
            ),
            opts=pulumi.ResourceOptions(parent=self),
        )
        claim = k8s.core.v1.PersistentVolumeClaim(
            f"{name}-claim",
            metadata=k8s.meta.v1.ObjectMetaArgs(name=claim_name, namespace=namespace),
            spec=k8s.core.v1.PersistentVolumeClaimSpecArgs(
                access_modes=["ReadWriteMany"],
                storage_class_name="",
                volume_name=volume.id.apply(lambda _: volume_name),
                resources=k8s.core.v1.VolumeResourceRequirementsArgs(requests={"storage": storage}),
            ),
            opts=pulumi.ResourceOptions(parent=self),
        )
        return volume, volume_name, claim, claim_name
