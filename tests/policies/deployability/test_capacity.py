"""check_capacity: scalable capacity has a scaler (and the scaler a node), every HPA metric a source."""

from __future__ import annotations

import pulumi_aws as aws
import pulumi_kubernetes as k8s

from modelplane.policies.deployability.capacity import check_capacity
from tests.conftest import ProgramRunner
from tests.policies.deployability.cluster_plans import (
    ADDON,
    UNKNOWN,
    asg,
    cluster,
    container,
    cpu_metric,
    deployment,
    hpa,
    launch_template,
    node_group,
    node_pool,
    planned,
    pod_spec,
    release,
    resource,
)

AUTOSCALER = release("cluster-autoscaler", "cluster-autoscaler", {"autoDiscovery": {"clusterName": "c"}})
KARPENTER = release("karpenter", "oci://public.ecr.aws/karpenter/karpenter", {"nodeSelector": {"pool": "system"}})
SYSTEM = node_group("system", ("m7i.large",), min_size=2, max_size=3, labels={"pool": "system"})
METRICS_SERVER = resource(ADDON, "metrics-server", {"addonName": "metrics-server", "clusterName": "c"})


def test_a_node_group_at_zero_needs_cluster_autoscaler() -> None:
    group = node_group("gpu", min_size=0, max_size=4)
    (finding,) = check_capacity([group])
    assert (finding.check, finding.urn) == ("capacity", group["urn"])
    assert "no cluster-autoscaler in the plan" in finding.missing
    assert "cluster-autoscaler chart" in finding.fix
    assert check_capacity([group, AUTOSCALER]) == []
    assert check_capacity([node_group("gpu", min_size=1)]) == []
    assert check_capacity([node_group("gpu", min_size=UNKNOWN)]) == []


def test_a_self_managed_group_at_zero_must_be_one_cluster_autoscaler_discovers() -> None:
    template = launch_template("lt", instanceType="g6.xlarge")
    untagged = asg("gpu", deps=(template["urn"],), launchTemplate={"id": "lt"}, name="gpu-asg")
    (finding,) = check_capacity([template, untagged, AUTOSCALER])
    assert "k8s.io/cluster-autoscaler/enabled, k8s.io/cluster-autoscaler/c" in finding.missing
    tags = [
        {"key": "kubernetes.io/cluster/c", "value": "owned"},
        {"key": "k8s.io/cluster-autoscaler/enabled", "value": "true"},
        {"key": "k8s.io/cluster-autoscaler/c", "value": "owned"},
    ]
    tagged = asg("gpu", tags=tags, deps=(template["urn"],), launchTemplate={"id": "lt"})
    assert check_capacity([template, tagged, AUTOSCALER]) == []
    listed = release("cluster-autoscaler", "cluster-autoscaler", {"autoscalingGroups": [{"name": "gpu-asg"}]})
    assert check_capacity([template, untagged, listed]) == []
    assert len(check_capacity([template, untagged])) == 1


def test_node_pools_need_karpenter_unless_eks_runs_it() -> None:
    pool = node_pool("gpu", limits={"nvidia.com/gpu": "4"})
    (finding,) = check_capacity([pool])
    assert "no karpenter Helm release or Deployment" in finding.missing
    (finding,) = check_capacity([pool, release("karpenter-crd", "oci://public.ecr.aws/karpenter/karpenter-crd")])
    assert finding.urn == pool["urn"]
    assert check_capacity([pool, KARPENTER]) == []
    assert check_capacity([node_pool("auto", node_class_group="eks.amazonaws.com")]) == []


def test_the_autoscaler_needs_an_always_present_node() -> None:
    pool = node_pool("gpu", limits={"nvidia.com/gpu": "4"})
    assert check_capacity([cluster("c"), SYSTEM, pool, KARPENTER]) == []
    elsewhere = release("karpenter", "karpenter", {"nodeSelector": {"pool": "controllers"}})
    (finding,) = check_capacity([cluster("c"), SYSTEM, pool, elsewhere])
    assert finding.urn == elsewhere["urn"]
    assert "EKS node group system (m7i.large): nodeSelector pool=controllers" in finding.missing
    empty = node_group("system", ("m7i.large",), min_size=0, labels={"pool": "system"})
    findings = check_capacity([cluster("c"), empty, pool, KARPENTER])
    assert [f.urn for f in findings] == [empty["urn"], KARPENTER["urn"]]
    # Without its cluster in the plan the cluster's other nodes are not known.
    assert check_capacity([pool, KARPENTER]) == []
    assert check_capacity([cluster("c", computeConfig={"enabled": True}), pool, KARPENTER]) == []


def test_resource_metrics_need_metrics_server() -> None:
    app, autoscaler = deployment("app"), hpa("app", "app", [cpu_metric()])
    (finding,) = check_capacity([app, autoscaler])
    assert finding.urn == autoscaler["urn"]
    assert finding.needs == "the metrics.k8s.io API for its Resource metric cpu"
    assert "metrics-server" in finding.fix
    assert check_capacity([app, autoscaler, METRICS_SERVER]) == []
    assert check_capacity([app, autoscaler, release("metrics-server", "metrics-server")]) == []
    # An HPA without metrics scales on CPU.
    assert len(check_capacity([app, hpa("app", "app")])) == 1


def test_pods_and_external_metrics_need_an_adapter() -> None:
    pods = {"type": "Pods", "pods": {"metric": {"name": "queue_depth"}, "target": {"type": "AverageValue"}}}
    external = {"type": "External", "external": {"metric": {"name": "sqs_messages"}, "target": {"type": "Value"}}}
    autoscaler = hpa("app", "app", [pods, external])
    findings = check_capacity([deployment("app"), autoscaler])
    assert [f.needs for f in findings] == [
        "the custom.metrics.k8s.io API for its Pods metric queue_depth",
        "the external.metrics.k8s.io API for its External metric sqs_messages",
    ]
    adapter = release("prometheus-adapter", "prometheus-community/prometheus-adapter")
    assert check_capacity([deployment("app"), autoscaler, adapter]) == []
    keda = release("keda", "kedacore/keda")
    assert [f.needs for f in check_capacity([deployment("app"), autoscaler, keda])] == [findings[0].needs]
    api_service = resource(
        "kubernetes:apiregistration.k8s.io/v1:APIService",
        "custom-metrics",
        {"metadata": {"name": "v1beta1.custom.metrics.k8s.io"}, "spec": {"group": "custom.metrics.k8s.io"}},
    )
    assert check_capacity([deployment("app"), autoscaler, keda, api_service]) == []


def test_a_utilization_target_needs_requests_on_the_target() -> None:
    bare = deployment("app", pod_spec([container()]))
    autoscaler = hpa("app", "app", [cpu_metric()])
    (finding,) = check_capacity([bare, autoscaler, METRICS_SERVER])
    assert finding.missing == "containers app request no cpu: utilization cannot be computed"
    assert check_capacity([bare, hpa("app", "app", [cpu_metric("AverageValue")]), METRICS_SERVER]) == []
    limited = deployment("app", pod_spec([container(limits={"cpu": "1"})]))
    assert check_capacity([limited, autoscaler, METRICS_SERVER]) == []


def test_a_raw_program_with_a_node_group_at_zero_and_an_hpa(run_program: ProgramRunner) -> None:
    def program(complete: bool) -> None:
        aws.eks.NodeGroup(
            "gpu",
            cluster_name="c",
            node_role_arn="arn:aws:iam::123456789012:role/node",
            subnet_ids=["subnet-1"],
            instance_types=["g6.xlarge"],
            scaling_config={"min_size": 0, "max_size": 2, "desired_size": 0},
        )
        k8s.apps.v1.Deployment(
            "api",
            metadata={"name": "api", "namespace": "ml"},
            spec={
                "selector": {"match_labels": {"app": "api"}},
                "template": {
                    "metadata": {"labels": {"app": "api"}},
                    "spec": {
                        "containers": [{"name": "api", "image": "api:1", "resources": {"requests": {"cpu": "1"}}}]
                    },
                },
            },
        )
        k8s.autoscaling.v2.HorizontalPodAutoscaler(
            "api",
            metadata={"name": "api", "namespace": "ml"},
            spec={
                "scale_target_ref": {"api_version": "apps/v1", "kind": "Deployment", "name": "api"},
                "min_replicas": 1,
                "max_replicas": 3,
                "metrics": [
                    {
                        "type": "Resource",
                        "resource": {"name": "cpu", "target": {"type": "Utilization", "average_utilization": 70}},
                    }
                ],
            },
        )
        if complete:
            aws.eks.Addon("metrics-server", cluster_name="c", addon_name="metrics-server")
            k8s.helm.v3.Release(
                "cluster-autoscaler",
                chart="cluster-autoscaler",
                repository_opts={"repo": "https://kubernetes.github.io/autoscaler"},
                values={"autoDiscovery": {"clusterName": "c"}},
            )

    findings = check_capacity(planned(run_program, lambda: program(complete=False)))
    assert [f.urn.rsplit("::", 1)[1] for f in findings] == ["gpu", "api"]
    assert check_capacity(planned(run_program, lambda: program(complete=True))) == []


def test_snake_case_inputs() -> None:
    group = resource(
        "aws:eks/nodeGroup:NodeGroup",
        "gpu",
        {"instance_types": ["g6.xlarge"], "scaling_config": {"min_size": 0, "max_size": 2, "desired_size": 0}},
    )
    (finding,) = check_capacity([group])
    assert finding.urn == group["urn"]
    autoscaler = resource(
        "kubernetes:autoscaling/v2:HorizontalPodAutoscaler",
        "api",
        {
            "metadata": {"name": "api", "namespace": "ml"},
            "spec": {"scale_target_ref": {"kind": "Deployment", "name": "api"}},
        },
    )
    assert [f.urn for f in check_capacity([deployment("api"), autoscaler])] == [autoscaler["urn"]]
    addon = resource(ADDON, "metrics", {"addon_name": "metrics-server", "cluster_name": "c"})
    assert check_capacity([deployment("api"), autoscaler, addon]) == []
