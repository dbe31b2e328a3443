"""Compose the platform's components for one environment: what `stacks/__main__.py` runs."""

from __future__ import annotations

from dataclasses import dataclass

import pulumi
import pulumi_kubernetes as k8s

from components.artifact_store import ArtifactStore
from components.container_registry import ContainerRegistry
from components.device_plugin import NvidiaDevicePlugin
from components.eks_cluster import EksCluster
from components.network import Network
from components.node_pools import GpuNodePool, SystemNodePool
from modelplane.config import EnvironmentConfig


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
            "vpc_id": network.vpc_id,
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
    gpu_pools = {
        pool.name: GpuNodePool(
            f"gpu-{pool.name}",
            {
                "cluster_name": cluster.cluster_name,
                "node_role_arn": cluster.node_role_arn,
                "subnet_ids": network.private_subnet_ids,
                "vpc_id": network.vpc_id,
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

    artifacts = ArtifactStore(
        "artifacts",
        {
            "bucket_prefix": f"modelplane-{env.name}-artifacts",
            "checkpoint_version_days": env.storage.checkpoint_version_days,
            "force_destroy": env.storage.force_destroy,
            "tags": tags,
        },
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
    return Platform(env, network, cluster, kubernetes, gpu_pools, artifacts, registry)
