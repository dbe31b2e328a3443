"""Compose the platform's components for one environment: what `stacks/__main__.py` runs."""

from __future__ import annotations

from dataclasses import dataclass

import pulumi
import pulumi_kubernetes as k8s

from components.alerting.custom_rules import custom_rule_group
from components.alerting.gpu_rules import gpu_rules
from components.alerting.platform_rules import platform_rules
from components.alerting.rules import RuleGroup
from components.artifact_store import ArtifactStore, ArtifactStoreArgs
from components.block_storage import DEFAULT_STORAGE_CLASS, EncryptedBlockStorage
from components.container_registry import ContainerRegistry
from components.device_plugin import NvidiaDevicePlugin
from components.eks_cluster import EksCluster, EksNodeAddons
from components.kubeflow_trainer import KubeflowTrainer
from components.lustre_volume import LustreStorageClass
from components.monitoring_stack import MonitoringStack
from components.network import Network
from components.node_pools import GpuNodePool, SystemNodePool
from modelplane.config import CONFIG_NAMESPACE, EnvironmentConfig
from workloads.serving.service import InferenceService, InferenceServiceArgs
from workloads.serving.spec import Accelerator
from workloads.spec_fields import repository_of
from workloads.training.job import TrainingJob

WORKLOAD_NAMESPACE = "ml"
"""Namespace of training jobs, inference services and their data volumes."""


def platform_rule_groups(env: EnvironmentConfig) -> list[RuleGroup]:
    """The alert rules every environment runs: GPU health, platform health, and the team's own."""
    groups = [gpu_rules(), platform_rules({pool.name: pool.max_size for pool in env.gpu_node_pools})]
    if env.monitoring.custom_alerts:
        groups.append(custom_rule_group(env.monitoring.custom_alerts))
    return groups


def cluster_name_for(env: EnvironmentConfig) -> str:
    return f"modelplane-{env.name}"


def platform_tags(env: EnvironmentConfig) -> dict[str, str]:
    return {"modelplane:environment": env.name, "managed-by": "modelplane", **env.tags}


@dataclass
class Platform:
    """The environment's components, for programs that add workloads on top."""

    env: EnvironmentConfig
    network: Network
    cluster: EksCluster
    kubernetes: k8s.Provider
    gpu_pools: dict[str, GpuNodePool]
    artifacts: ArtifactStore
    registry: ContainerRegistry
    monitoring: MonitoringStack


def deploy_platform(env: EnvironmentConfig) -> Platform:
    tags = platform_tags(env)
    cluster_name = cluster_name_for(env)
    network = Network(
        "network",
        {
            "cluster_name": cluster_name,
            "cidr": env.network.cidr,
            "az_count": env.network.az_count,
            "nat_gateways": env.network.nat_gateways,
            "tags": tags,
        },
    )
    cluster = EksCluster(
        "cluster",
        {
            "cluster_name": cluster_name,
            "kubernetes_version": env.cluster.kubernetes_version,
            "subnet_ids": network.private_subnet_ids,
            "endpoint_access": env.cluster.endpoint_access,
            "public_access_cidrs": env.cluster.public_access_cidrs,
            "control_plane_logging": env.cluster.control_plane_logging,
            "admin_role_arns": env.cluster.admin_role_arns,
            "tags": tags,
        },
    )
    # Built here, from the cluster's outputs, and handed to every Kubernetes component through opts.
    kubernetes = k8s.Provider("kubernetes", kubeconfig=cluster.kubeconfig, enable_server_side_apply=True)
    on_cluster = pulumi.ResourceOptions(provider=kubernetes)

    system_pool = SystemNodePool(
        "system-nodes",
        {
            "cluster_name": cluster.cluster_name,
            "node_role_arn": cluster.node_role_arn,
            "subnet_ids": network.private_subnet_ids,
            "instance_type": env.system_node_pool.instance_type,
            "min_size": env.system_node_pool.min_size,
            "max_size": env.system_node_pool.max_size,
            "disk_size_gib": env.system_node_pool.disk_size_gib,
            "tags": tags,
        },
    )
    node_addons = EksNodeAddons(
        "node-addons",
        {"cluster_name": cluster.cluster_name, "fsx_csi_driver": env.storage.fsx is not None, "tags": tags},
        opts=pulumi.ResourceOptions(depends_on=[system_pool]),
    )
    gpu_pools = {
        pool.name: GpuNodePool(
            f"gpu-{pool.name}",
            {
                "cluster_name": cluster.cluster_name,
                "node_role_arn": cluster.node_role_arn,
                "subnet_ids": network.private_subnet_ids,
                "vpc_id": network.vpc_id,
                "cluster_security_group_id": cluster.cluster_security_group_id,
                "pool_name": pool.name,
                "instance_type": pool.instance_type,
                "capacity_type": pool.capacity_type,
                "min_size": pool.min_size,
                "max_size": pool.max_size,
                "desired_size": pool.desired_size if pool.desired_size is not None else pool.min_size,
                "disk_size_gib": pool.disk_size_gib,
                "ami_family": pool.ami_family,
                "efa": pool.efa,
                "capacity_reservation_id": pool.capacity_reservation_id,
                "labels": pool.labels,
                "tags": tags,
            },
            opts=pulumi.ResourceOptions(depends_on=[system_pool]),
        )
        for pool in env.gpu_node_pools
    }
    NvidiaDevicePlugin("nvidia-device-plugin", {}, opts=on_cluster)
    block_storage = EncryptedBlockStorage(
        "block-storage", {}, opts=pulumi.ResourceOptions(provider=kubernetes, depends_on=[node_addons])
    )
    config = pulumi.Config(CONFIG_NAMESPACE)
    monitoring = MonitoringStack(
        "monitoring",
        {
            "monitoring": env.monitoring,
            "environment": env.name,
            "grafana_admin_password": config.require_secret(env.monitoring.grafana_admin_password_secret),
            "receiver_secrets": {r.secret: config.require_secret(r.secret) for r in env.monitoring.receivers},
            "rule_groups": platform_rule_groups(env),
            "storage_class": DEFAULT_STORAGE_CLASS,
        },
        opts=pulumi.ResourceOptions(provider=kubernetes, depends_on=[system_pool, node_addons, block_storage]),
    )

    first_private_subnet = network.private_subnet_ids.apply(lambda ids: ids[0])
    store_args: ArtifactStoreArgs = {
        "bucket_prefix": f"modelplane-{env.name}-artifacts-",
        "checkpoint_version_days": env.storage.checkpoint_version_days,
        "force_destroy": env.storage.force_destroy,
        "tags": tags,
    }
    if env.storage.fsx is not None:
        store_args["fsx"] = {
            "subnet_id": first_private_subnet,
            "storage_capacity_gib": env.storage.fsx.storage_capacity_gib,
            "throughput_per_tib": env.storage.fsx.throughput_per_tib,
            "import_prefix": env.storage.fsx.import_prefix,
            "vpc_id": network.vpc_id,
            "vpc_cidr": env.network.cidr,
        }
    artifacts = ArtifactStore("artifacts", store_args)
    if env.storage.fsx is not None:
        assert artifacts.fsx_file_system_id and artifacts.fsx_dns_name and artifacts.fsx_mount_name
        LustreStorageClass(
            "lustre",
            {
                "subnet_id": first_private_subnet,
                "security_group_ids": cluster.cluster_security_group_id.apply(lambda group: [group]),
                "file_system_id": artifacts.fsx_file_system_id,
                "dns_name": artifacts.fsx_dns_name,
                "mount_name": artifacts.fsx_mount_name,
                "namespace": WORKLOAD_NAMESPACE,
                "storage_capacity_gib": env.storage.fsx.storage_capacity_gib,
            },
            opts=on_cluster,
        )
    registry = ContainerRegistry(
        "registry",
        {
            "name_prefix": cluster_name,
            "repositories": env.registries.repositories,
            "untagged_expiry_days": env.registries.untagged_expiry_days,
            "tags": tags,
        },
    )

    pulumi.export("cluster_name", cluster.cluster_name)
    pulumi.export("kubeconfig", cluster.kubeconfig)
    pulumi.export("artifact_bucket", artifacts.bucket_name)
    pulumi.export("repository_urls", registry.repository_urls)
    pulumi.export("grafana_url", monitoring.grafana_url)
    platform = Platform(env, network, cluster, kubernetes, gpu_pools, artifacts, registry, monitoring)
    namespace = workload_namespace(platform)
    deploy_training_jobs(platform, system_pool, namespace)
    deploy_inference_services(platform, namespace)
    return platform


def repository_url(registry: ContainerRegistry, repository: str) -> pulumi.Output[str]:
    return registry.repository_urls.apply(lambda urls: urls[repository])


def workload_namespace(platform: Platform) -> k8s.core.v1.Namespace | None:
    """The namespace of training jobs and inference services (restricted pod security), when there are any."""
    if not platform.env.training_jobs and not platform.env.inference_services:
        return None
    return k8s.core.v1.Namespace(
        "workload-namespace",
        metadata=k8s.meta.v1.ObjectMetaArgs(
            name=WORKLOAD_NAMESPACE, labels={"pod-security.kubernetes.io/enforce": "restricted"}
        ),
        opts=pulumi.ResourceOptions(provider=platform.kubernetes),
    )


def deploy_training_jobs(
    platform: Platform, system_pool: SystemNodePool, namespace: k8s.core.v1.Namespace | None
) -> None:
    """Kubeflow Trainer and one TrainingJob per `training_jobs` entry, when the environment declares any."""
    env = platform.env
    if not env.training_jobs:
        return
    assert namespace is not None, "workload_namespace exists whenever training jobs do"
    trainer = KubeflowTrainer(
        "kubeflow-trainer", {}, opts=pulumi.ResourceOptions(provider=platform.kubernetes, depends_on=[system_pool])
    )
    for job in env.training_jobs:
        pool = env.gpu_pool(job.gpu_pool)
        TrainingJob(
            f"train-{job.name}",
            {
                "spec": job,
                "cluster_name": platform.cluster.cluster_name,
                "image_repository_url": repository_url(platform.registry, repository_of(job.image)),
                "artifact_bucket": platform.artifacts.bucket_name,
                "artifact_bucket_arn": platform.artifacts.bucket_arn,
                "artifact_kms_key_arn": platform.artifacts.kms_key_arn,
                "instance_type": pool.instance_type,
                "efa": pool.efa,
                "namespace": WORKLOAD_NAMESPACE,
            },
            opts=pulumi.ResourceOptions(
                providers=[platform.kubernetes],
                depends_on=[trainer, namespace, platform.gpu_pools[pool.name]],
            ),
        )


def deploy_inference_services(platform: Platform, namespace: k8s.core.v1.Namespace | None) -> None:
    """One InferenceService per `inference_services` entry, after the monitoring stack (its CRDs) and its pool."""
    env = platform.env
    if not env.inference_services:
        return
    assert namespace is not None, "workload_namespace exists whenever inference services do"
    for service in env.inference_services:
        args: InferenceServiceArgs = {
            "spec": service,
            "cluster_name": platform.cluster.cluster_name,
            "image_repository_url": repository_url(platform.registry, repository_of(service.image)),
            "artifact_bucket": platform.artifacts.bucket_name,
            "artifact_bucket_arn": platform.artifacts.bucket_arn,
            "artifact_kms_key_arn": platform.artifacts.kms_key_arn,
            "namespace": WORKLOAD_NAMESPACE,
        }
        depends_on: list[pulumi.Resource] = [namespace, platform.monitoring]
        if service.canary_image is not None and repository_of(service.canary_image) != repository_of(service.image):
            args["canary_image_repository_url"] = repository_url(platform.registry, repository_of(service.canary_image))
        if service.accelerator is Accelerator.GPU and service.gpu_pool is not None:
            args["instance_type"] = env.gpu_pool(service.gpu_pool).instance_type
            depends_on.append(platform.gpu_pools[service.gpu_pool])
        InferenceService(
            f"serve-{service.name}",
            args,
            opts=pulumi.ResourceOptions(providers=[platform.kubernetes], depends_on=depends_on),
        )
