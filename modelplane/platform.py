"""Compose the platform's components for one environment: what `stacks/__main__.py` runs."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pulumi
import pulumi_kubernetes as k8s

from modelplane.components.alerting.custom_rules import custom_rule_group
from modelplane.components.alerting.gpu_rules import gpu_rules
from modelplane.components.alerting.platform_rules import platform_rules
from modelplane.components.alerting.rules import RuleGroup, with_runbook_base
from modelplane.components.artifact_store import ArtifactStore, ArtifactStoreArgs
from modelplane.components.block_storage import DEFAULT_STORAGE_CLASS, EncryptedBlockStorage
from modelplane.components.container_image import ContainerImage, ContainerImageArgs
from modelplane.components.container_logs import ContainerLogs
from modelplane.components.container_registry import ContainerRegistry
from modelplane.components.device_plugin import NvidiaDevicePlugin
from modelplane.components.efa_device_plugin import EfaDevicePlugin
from modelplane.components.eks_cluster import EksCluster, EksNodeAddons, EndpointAccess
from modelplane.components.gpu_nodes import is_elastic
from modelplane.components.karpenter import Karpenter
from modelplane.components.karpenter_gpu_pool import KarpenterGpuPool, KarpenterGpuPoolArgs
from modelplane.components.karpenter_pools import PoolKind
from modelplane.components.kueue import Kueue
from modelplane.components.lustre_volume import LustreStorageClass
from modelplane.components.monitoring_stack import MonitoringStack
from modelplane.components.network import Network
from modelplane.components.node_pools import GpuNodePool, SystemNodePool
from modelplane.components.priorities import PriorityClasses
from modelplane.config import (
    BUILT_REPOSITORIES,
    CONFIG_NAMESPACE,
    EnvironmentConfig,
    GpuNodePoolConfig,
    built_image_tags,
)
from modelplane.terms.names import ENVIRONMENT_TAG, MANAGED_BY_TAG, artifact_bucket_prefix, cluster_name
from modelplane.terms.scheduling import WORKLOAD_NAMESPACE
from modelplane.workloads.serving.dashboard import inference_service_dashboard
from modelplane.workloads.serving.service import InferenceService, InferenceServiceArgs
from modelplane.workloads.serving.spec import Accelerator
from modelplane.workloads.spec_fields import repository_of
from modelplane.workloads.training.dashboard import training_run_dashboard
from modelplane.workloads.training.job import TrainingJob, TrainingJobArgs
from modelplane.workloads.training.kubernetes import runtime_grace_seconds
from modelplane.workloads.training.runtime import KubeflowTrainer

DATASETS_CLAIM = "datasets"
"""The claim on the Lustre file system that training jobs of its team mount."""


def platform_rule_groups(env: EnvironmentConfig) -> list[RuleGroup]:
    """The alert rules every environment runs: GPU health, platform health, and the team's own."""
    groups = [gpu_rules(), platform_rules({pool.name: pool.max_size for pool in env.gpu_node_pools})]
    groups = with_runbook_base(groups, env.monitoring.runbook_base_url)
    if env.monitoring.custom_alerts:
        groups.append(custom_rule_group(env.monitoring.custom_alerts))
    return groups


def workload_dashboards() -> list[dict[str, Any]]:
    """The dashboards of the workloads the platform runs, beside the monitoring stack's own GPU fleet board."""
    return [training_run_dashboard(), inference_service_dashboard()]


def cluster_name_for(env: EnvironmentConfig) -> str:
    return cluster_name(env.name)


def registry_prefix(env: EnvironmentConfig) -> str:
    """The prefix of the environment's ECR repositories (`<prefix>/trainer`), which its images must come from."""
    return cluster_name_for(env)


def platform_tags(env: EnvironmentConfig) -> dict[str, str]:
    return {ENVIRONMENT_TAG: env.name, MANAGED_BY_TAG: "modelplane", **env.tags}


@dataclass
class Platform:
    """The environment's components, for programs that add workloads on top."""

    env: EnvironmentConfig
    network: Network
    cluster: EksCluster
    kubernetes: k8s.Provider
    system_pool: SystemNodePool
    gpu_pools: dict[str, GpuNodePool | KarpenterGpuPool]
    artifacts: ArtifactStore
    registry: ContainerRegistry
    monitoring: MonitoringStack
    scheduling: Scheduling
    datasets: SharedDatasets | None
    """The S3-linked Lustre file system, when the environment has one."""
    images: dict[str, ContainerImage]
    """The images built from this checkout, by repository (none when CI builds them)."""

    def image_of(self, spec_image: str) -> pulumi.Output[str] | None:
        """The digest a workload runs when its image is built here; None: it runs its spec's tag or digest."""
        built = self.images.get(repository_of(spec_image))
        return built.ref if built is not None and "@" not in spec_image else None


@dataclass
class SharedDatasets:
    """The Lustre file system's claim, in one team's namespace, and the bucket prefix it imports."""

    storage: LustreStorageClass
    team: str
    claim_name: str
    bucket_prefix: str


@dataclass
class Scheduling:
    """What places workloads on GPUs: Karpenter, Kueue's team queues, priorities and the teams' namespaces."""

    karpenter: Karpenter
    kueue: Kueue
    priority_classes: PriorityClasses
    team_namespaces: dict[str, k8s.core.v1.Namespace]


def deploy_platform(env: EnvironmentConfig, source_root: Path | None = None) -> Platform:
    """Every component of the environment, then its workloads. `source_root` is the checkout the stack program
    runs from: the images are built from its Dockerfiles (default: the checkout modelplane is imported from)."""
    tags = platform_tags(env)
    network = deploy_network(env, tags)
    cluster = deploy_cluster(env, network, tags)
    # Built here, from the cluster's outputs, and handed to every Kubernetes component through opts.
    kubernetes = k8s.Provider("kubernetes", kubeconfig=cluster.kubeconfig, enable_server_side_apply=True)
    system_pool = deploy_system_pool(env, network, cluster, tags)
    node_addons = EksNodeAddons(
        "node-addons",
        {"cluster_name": cluster.cluster_name, "fsx_csi_driver": env.storage.fsx is not None, "tags": tags},
        opts=pulumi.ResourceOptions(depends_on=[system_pool]),
    )
    karpenter = Karpenter(
        "karpenter",
        {
            "cluster_name": cluster_name_for(env),
            "cluster_security_group_id": cluster.cluster_security_group_id,
            "tags": tags,
        },
        opts=pulumi.ResourceOptions(providers=[kubernetes], depends_on=[system_pool]),
    )
    gpu_pools = {
        pool.name: deploy_gpu_pool(env, pool, network, cluster, system_pool, karpenter, kubernetes, tags)
        for pool in env.gpu_node_pools
    }
    NvidiaDevicePlugin("nvidia-device-plugin", {}, opts=pulumi.ResourceOptions(provider=kubernetes))
    if any(pool.efa for pool in env.gpu_node_pools):
        EfaDevicePlugin("efa-device-plugin", {}, opts=pulumi.ResourceOptions(provider=kubernetes))
    block_storage = EncryptedBlockStorage(
        "block-storage", {}, opts=pulumi.ResourceOptions(provider=kubernetes, depends_on=[node_addons])
    )
    monitoring = deploy_monitoring(
        env, pulumi.ResourceOptions(provider=kubernetes, depends_on=[system_pool, node_addons, block_storage])
    )
    scheduling = deploy_scheduling(env, kubernetes, system_pool, karpenter)
    logs = ContainerLogs(
        "container-logs",
        {"cluster_name": cluster_name_for(env), "retention_days": env.logging.retention_days, "tags": tags},
        opts=pulumi.ResourceOptions(providers=[kubernetes], depends_on=[system_pool]),
    )
    artifacts, datasets = deploy_artifacts(env, network, cluster, kubernetes, scheduling, tags)
    registry = ContainerRegistry(
        "registry",
        {
            "name_prefix": registry_prefix(env),
            "repositories": env.registries.repositories,
            "untagged_expiry_days": env.registries.untagged_expiry_days,
            "tags": tags,
        },
    )
    images = deploy_images(env, registry, source_root)
    pulumi.export("cluster_name", cluster.cluster_name)
    pulumi.export("kubeconfig", cluster.kubeconfig)
    pulumi.export("artifact_bucket", artifacts.bucket_name)
    pulumi.export("repository_urls", registry.repository_urls)
    pulumi.export("grafana_url", monitoring.grafana_url)
    pulumi.export("application_log_group", logs.application_log_group_name)
    platform = Platform(
        env,
        network,
        cluster,
        kubernetes,
        system_pool,
        gpu_pools,
        artifacts,
        registry,
        monitoring,
        scheduling,
        datasets,
        images,
    )
    deploy_training_jobs(platform)
    deploy_inference_services(platform)
    return platform


def deploy_images(
    env: EnvironmentConfig, registry: ContainerRegistry, source_root: Path | None
) -> dict[str, ContainerImage]:
    """The trainer and server images the workloads run, built from this checkout and pushed (when images.build),
    tagged with the version their specs name; the workloads run the pushed digest."""
    images = {}
    for repository, tag in sorted(built_image_tags(env).items()):
        args: ContainerImageArgs = {
            "repository_url": repository_url(registry, repository),
            "dockerfile": BUILT_REPOSITORIES[repository],
            "tag": tag,
        }
        if source_root is not None:
            if not (source_root / BUILT_REPOSITORIES[repository]).is_file():
                raise ValueError(
                    f"images.build=true: no {BUILT_REPOSITORIES[repository]} under {source_root}, the checkout the "
                    f"stack program runs from; run it from a modelplane checkout, or set modelplane:images: "
                    "{build: false} and push the images from CI"
                )
            args["context"] = str(source_root)
        images[repository] = ContainerImage(f"image-{repository}", args)
    return images


def deploy_network(env: EnvironmentConfig, tags: dict[str, str]) -> Network:
    return Network(
        "network",
        {
            "cluster_name": cluster_name_for(env),
            "cidr": env.network.cidr,
            "az_count": env.network.az_count,
            "nat_gateways": env.network.nat_gateways,
            "private_cluster_endpoints": env.cluster.endpoint_access == EndpointAccess.PRIVATE,
            "tags": tags,
        },
    )


def deploy_cluster(env: EnvironmentConfig, network: Network, tags: dict[str, str]) -> EksCluster:
    return EksCluster(
        "cluster",
        {
            "cluster_name": cluster_name_for(env),
            "kubernetes_version": env.cluster.kubernetes_version,
            "subnet_ids": network.private_subnet_ids,
            "endpoint_access": env.cluster.endpoint_access,
            "public_access_cidrs": env.cluster.public_access_cidrs,
            "deployer_cidrs": env.cluster.deployer_cidrs,
            "control_plane_logging": env.cluster.control_plane_logging,
            "log_retention_days": env.cluster.log_retention_days,
            "admin_role_arns": env.cluster.admin_role_arns,
            "tags": tags,
        },
    )


def deploy_system_pool(
    env: EnvironmentConfig, network: Network, cluster: EksCluster, tags: dict[str, str]
) -> SystemNodePool:
    return SystemNodePool(
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


def pool_kind(env: EnvironmentConfig, pool_name: str) -> PoolKind:
    """A pool some training job runs on is never consolidated under it; any other pool serves."""
    uses = {job.gpu_pool for job in env.training_jobs}
    return PoolKind.TRAINING if pool_name in uses else PoolKind.INFERENCE


def deploy_gpu_pool(
    env: EnvironmentConfig,
    pool: GpuNodePoolConfig,
    network: Network,
    cluster: EksCluster,
    system_pool: SystemNodePool,
    karpenter: Karpenter,
    kubernetes: k8s.Provider,
    tags: dict[str, str],
) -> GpuNodePool | KarpenterGpuPool:
    """An elastic pool is a Karpenter NodePool scaling from zero to its limit; a reserved pool (a capacity
    block) is a managed node group of exactly the reservation's size."""
    if not is_elastic(pool.capacity_type):
        return deploy_reserved_pool(pool, network, cluster, system_pool, tags)
    args: KarpenterGpuPoolArgs = {
        "cluster_name": cluster_name_for(env),
        "node_role_name": karpenter.node_role_name,
        "pool_name": pool.name,
        "instance_type": pool.instance_type,
        "capacity_type": pool.capacity_type,
        "max_size": pool.max_size,
        "kind": pool_kind(env, pool.name),
        "ami_family": pool.ami_family,
        "disk_size_gib": pool.disk_size_gib,
        "efa": pool.efa,
        "labels": pool.labels,
        "tags": tags,
    }
    if pool.efa:
        # EFA traffic does not cross AZs: the pool's nodes all start in the first private subnet's AZ.
        args["vpc_id"] = network.vpc_id
        args["zone"] = network.availability_zones.apply(lambda zones: zones[0])
    return KarpenterGpuPool(
        f"gpu-{pool.name}",
        args,
        opts=pulumi.ResourceOptions(providers=[kubernetes], depends_on=[karpenter.release]),
    )


def deploy_reserved_pool(
    pool: GpuNodePoolConfig, network: Network, cluster: EksCluster, system_pool: SystemNodePool, tags: dict[str, str]
) -> GpuNodePool:
    return GpuNodePool(
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
            "min_size": pool.max_size,
            "max_size": pool.max_size,
            "desired_size": pool.max_size,
            "disk_size_gib": pool.disk_size_gib,
            "ami_family": pool.ami_family,
            "efa": pool.efa,
            "capacity_reservation_id": pool.capacity_reservation_id,
            "labels": pool.labels,
            "tags": tags,
        },
        opts=pulumi.ResourceOptions(depends_on=[system_pool]),
    )


def deploy_scheduling(
    env: EnvironmentConfig, kubernetes: k8s.Provider, system_pool: SystemNodePool, karpenter: Karpenter
) -> Scheduling:
    """Priority classes, a namespace per team, and Kueue with a GPU queue per team."""
    on_cluster = pulumi.ResourceOptions(provider=kubernetes)
    priority_classes = PriorityClasses("priority-classes", {}, opts=on_cluster)
    namespaces = {team.name: team_namespace(team.name, kubernetes) for team in env.effective_teams()}
    kueue = Kueue(
        "kueue",
        {
            "teams": [
                {"name": q.name, "namespace": q.namespace, "gpu_quota": q.gpu_quota, "can_borrow": q.can_borrow}
                for q in env.team_queues()
            ],
            "pools": [{"pool": f.pool, "gpus_at_max": f.gpus_at_max} for f in env.queue_flavors()],
        },
        opts=pulumi.ResourceOptions(providers=[kubernetes], depends_on=[system_pool, *namespaces.values()]),
    )
    return Scheduling(karpenter, kueue, priority_classes, namespaces)


def team_namespace(team: str, kubernetes: k8s.Provider) -> k8s.core.v1.Namespace:
    """A team's namespace, restricted pod security; the default team keeps the workload namespace's resource."""
    aliases = [pulumi.Alias(name="workload-namespace")] if team == WORKLOAD_NAMESPACE else []
    return k8s.core.v1.Namespace(
        f"team-{team}",
        metadata=k8s.meta.v1.ObjectMetaArgs(name=team, labels={"pod-security.kubernetes.io/enforce": "restricted"}),
        opts=pulumi.ResourceOptions(provider=kubernetes, aliases=aliases),
    )


def deploy_monitoring(env: EnvironmentConfig, opts: pulumi.ResourceOptions) -> MonitoringStack:
    """The monitoring stack, its secrets read from the stack's secret config."""
    config = pulumi.Config(CONFIG_NAMESPACE)
    monitoring = env.monitoring
    return MonitoringStack(
        "monitoring",
        {
            "environment": env.name,
            "routing": monitoring.routing(),
            "prometheus_retention": monitoring.prometheus_retention,
            "prometheus_storage_gib": monitoring.prometheus_storage_gib,
            "dashboards": workload_dashboards(),
            "grafana_admin_password": config.require_secret(monitoring.grafana_admin_password_secret),
            "receiver_secrets": {r.secret: config.require_secret(r.secret) for r in monitoring.receivers},
            "rule_groups": platform_rule_groups(env),
            "storage_class": DEFAULT_STORAGE_CLASS,
        },
        opts=opts,
    )


def deploy_artifacts(
    env: EnvironmentConfig,
    network: Network,
    cluster: EksCluster,
    kubernetes: k8s.Provider,
    scheduling: Scheduling,
    tags: dict[str, str],
) -> tuple[ArtifactStore, SharedDatasets | None]:
    """The artifact bucket and, when configured, the Lustre file system linked to it with its storage class
    (its claim in the first team's namespace)."""
    first_private_subnet = network.private_subnet_ids.apply(lambda ids: ids[0])
    store_args: ArtifactStoreArgs = {
        "bucket_prefix": artifact_bucket_prefix(env.name),
        "checkpoint_version_days": env.storage.checkpoint_version_days,
        "force_destroy": env.storage.force_destroy,
        "tags": tags,
    }
    fsx = env.storage.fsx
    if fsx is not None:
        store_args["fsx"] = {
            "subnet_id": first_private_subnet,
            "storage_capacity_gib": fsx.storage_capacity_gib,
            "throughput_per_tib": fsx.throughput_per_tib,
            "import_prefix": fsx.import_prefix,
            "vpc_id": network.vpc_id,
            "vpc_cidr": env.network.cidr,
        }
    artifacts = ArtifactStore("artifacts", store_args)
    if fsx is None:
        return artifacts, None
    claim_team = env.effective_teams()[0].name
    assert artifacts.fsx_file_system_id and artifacts.fsx_dns_name and artifacts.fsx_mount_name
    storage = LustreStorageClass(
        "lustre",
        {
            "subnet_id": first_private_subnet,
            "security_group_ids": cluster.cluster_security_group_id.apply(lambda group: [group]),
            "file_system_id": artifacts.fsx_file_system_id,
            "dns_name": artifacts.fsx_dns_name,
            "mount_name": artifacts.fsx_mount_name,
            "namespace": claim_team,
            "storage_capacity_gib": fsx.storage_capacity_gib,
            "claim_name": DATASETS_CLAIM,
        },
        opts=pulumi.ResourceOptions(provider=kubernetes, depends_on=[scheduling.team_namespaces[claim_team]]),
    )
    return artifacts, SharedDatasets(storage, claim_team, DATASETS_CLAIM, fsx.import_prefix)


def repository_url(registry: ContainerRegistry, repository: str) -> pulumi.Output[str]:
    return registry.repository_urls.apply(lambda urls: urls[repository])


def deploy_training_jobs(platform: Platform) -> None:
    """Kubeflow Trainer and one TrainingJob per `training_jobs` entry, in its team's namespace and GPU queue."""
    env, scheduling = platform.env, platform.scheduling
    if not env.training_jobs:
        return
    trainer = KubeflowTrainer(
        "kubeflow-trainer",
        {"termination_grace_seconds": runtime_grace_seconds(env.training_jobs)},
        opts=pulumi.ResourceOptions(provider=platform.kubernetes, depends_on=[platform.system_pool]),
    )
    for job in env.training_jobs:
        pool = env.gpu_pool(job.gpu_pool)
        team = env.team_of(job.team)
        args: TrainingJobArgs = {
            "spec": job.model_dump(mode="json"),
            "cluster_name": platform.cluster.cluster_name,
            "image_repository_url": repository_url(platform.registry, repository_of(job.image)),
            "artifact_bucket": platform.artifacts.bucket_name,
            "artifact_bucket_arn": platform.artifacts.bucket_arn,
            "artifact_kms_key_arn": platform.artifacts.kms_key_arn,
            "instance_type": pool.instance_type,
            "efa": pool.efa,
            "namespace": team,
            "queue_name": scheduling.kueue.local_queue_names[team],
            "runbook_base_url": env.monitoring.runbook_base_url,
        }
        depends_on: list[pulumi.Resource] = []
        if (built := platform.image_of(job.image)) is not None:
            args["image"] = built
        if platform.datasets is not None and platform.datasets.team == team:
            args["dataset_claim"] = platform.datasets.claim_name
            args["dataset_prefix"] = platform.datasets.bucket_prefix
            depends_on.append(platform.datasets.storage)
        TrainingJob(
            f"train-{job.name}",
            args,
            opts=pulumi.ResourceOptions(
                providers=[platform.kubernetes],
                # Kueue's webhook must hold every TrainJob from its creation, or it would start outside any quota;
                # the job's PodMonitor and PrometheusRule need the Prometheus operator's CRDs (the monitoring stack).
                depends_on=[
                    trainer,
                    platform.monitoring,
                    scheduling.team_namespaces[team],
                    scheduling.kueue,
                    scheduling.priority_classes,
                    platform.gpu_pools[pool.name],
                    *depends_on,
                ],
            ),
        )


def deploy_inference_services(platform: Platform) -> None:
    """One InferenceService per `inference_services` entry in its team's namespace, after the monitoring stack
    (its CRDs), the priority classes and its pool."""
    env, scheduling = platform.env, platform.scheduling
    for service in env.inference_services:
        team = env.team_of(service.team)
        args: InferenceServiceArgs = {
            "spec": service.model_dump(mode="json"),
            "cluster_name": platform.cluster.cluster_name,
            "image_repository_url": repository_url(platform.registry, repository_of(service.image)),
            "artifact_bucket": platform.artifacts.bucket_name,
            "artifact_bucket_arn": platform.artifacts.bucket_arn,
            "artifact_kms_key_arn": platform.artifacts.kms_key_arn,
            "namespace": team,
            "runbook_base_url": env.monitoring.runbook_base_url,
        }
        depends_on: list[pulumi.Resource] = [
            scheduling.team_namespaces[team],
            scheduling.priority_classes,
            platform.monitoring,
        ]
        if (built := platform.image_of(service.image)) is not None:
            args["image"] = built
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
