"""A program declaring unsafe resources directly, bypassing modelplane's components: each trips a rule."""

import json

import pulumi_aws as aws
import pulumi_kubernetes as k8s

aws.s3.Bucket("loose-bucket")
aws.ecr.Repository("loose-repository", image_tag_mutability="MUTABLE")
aws.iam.Policy(
    "admin-policy",
    policy=json.dumps({"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "*", "Resource": "*"}]}),
)
aws.ec2.LaunchTemplate("imdsv1-template", metadata_options={"http_tokens": "optional"})
aws.eks.NodeGroup(
    "untainted-gpu-nodes",
    cluster_name="modelplane",
    node_role_arn="arn:aws:iam::123456789012:role/node",
    subnet_ids=["subnet-1"],
    instance_types=["g6.xlarge"],
    ami_type="AL2023_x86_64_NVIDIA",
    scaling_config={"min_size": 0, "max_size": 1, "desired_size": 0},
)
k8s.apps.v1.Deployment(
    "unsafe-deployment",
    spec={
        "selector": {"match_labels": {"app": "unsafe"}},
        "template": {
            "metadata": {"labels": {"app": "unsafe"}},
            "spec": {
                "tolerations": [{"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}],
                "containers": [
                    {"name": "app", "image": "python:latest", "security_context": {"privileged": True}},
                ],
            },
        },
    },
)
k8s.core.v1.Service(
    "public-service", spec={"type": "LoadBalancer", "selector": {"app": "unsafe"}, "ports": [{"port": 80}]}
)
k8s.apiextensions.CustomResource(
    "unlabelled-alerts",
    api_version="monitoring.coreos.com/v1",
    kind="PrometheusRule",
    spec={"groups": [{"name": "g", "rules": [{"alert": "SomethingWrong", "expr": "up == 0"}]}]},
)
k8s.helm.v3.Release("unpinned-chart", chart="dcgm-exporter", repository_opts={"repo": "https://example.com/charts"})
