"""A platform team's program: a VPC, an EKS cluster, a system pool, one spot L4 pool and an artifact bucket,
composed from modelplane's typed components (`pip install modelplane`)."""

import pulumi
from components.cost_tags import cost_tags

from modelplane.components.artifact_store import ArtifactStore
from modelplane.components.eks_cluster import EksCluster, EndpointAccess
from modelplane.components.gpu_nodes import CapacityType
from modelplane.components.network import Network
from modelplane.components.node_pools import GpuNodePool, SystemNodePool

CLUSTER = "research-gpu"
tags = cost_tags(team="research", cost_center="ml-1234")

network = Network("network", {"cluster_name": CLUSTER, "az_count": 2, "tags": tags})
cluster = EksCluster(
    "cluster",
    {
        "cluster_name": CLUSTER,
        "subnet_ids": network.private_subnet_ids,
        "endpoint_access": EndpointAccess.PRIVATE,
        "deployer_cidrs": ["10.8.0.0/22"],
        "tags": tags,
    },
)
system = SystemNodePool(
    "system-nodes",
    {
        "cluster_name": cluster.cluster_name,
        "node_role_arn": cluster.node_role_arn,
        "subnet_ids": network.private_subnet_ids,
        "tags": tags,
    },
)
GpuNodePool(
    "gpu-l4",
    {
        "cluster_name": cluster.cluster_name,
        "node_role_arn": cluster.node_role_arn,
        "subnet_ids": network.private_subnet_ids,
        "vpc_id": network.vpc_id,
        "cluster_security_group_id": cluster.cluster_security_group_id,
        "pool_name": "l4",
        "instance_type": "g6.xlarge",
        "capacity_type": CapacityType.SPOT,
        # A managed node group has no autoscaler of its own here: keep one node (or add Karpenter and scale from 0).
        "min_size": 1,
        "max_size": 2,
        "tags": tags,
    },
    opts=pulumi.ResourceOptions(depends_on=[system]),
)
artifacts = ArtifactStore("artifacts", {"bucket_prefix": "research-artifacts-", "tags": tags})

pulumi.export("kubeconfig", cluster.kubeconfig)
pulumi.export("artifact_bucket", artifacts.bucket_name)
