"""check_fit: every pod fits on a node the plan can have, and a GPU workload's pods all fit at once."""

from __future__ import annotations

from typing import Any

import pulumi_aws as aws
import pulumi_kubernetes as k8s

from modelplane.policies.deployability.fit import check_fit
from modelplane.policies.deployability.instance_figures import SystemReserve
from tests.conftest import ProgramRunner
from tests.policies.deployability.cluster_plans import (
    EKS_GPU_TAINT,
    GPU_TOLERATION,
    UNKNOWN,
    container,
    daemon_set,
    deployment,
    gpu_deployment,
    hpa,
    node_group,
    node_pool,
    pod_spec,
    runtime,
    train_job,
    urn,
)

SYSTEM = node_group("system", ("m7i.xlarge",), labels={"pool": "system"}, taints=[])
GPU_POOL = node_pool("gpu", ("g6.xlarge",), limits={"nvidia.com/gpu": "4"}, labels={"pool": "gpu"})


def test_a_gpu_pod_that_does_not_tolerate_the_gpu_taint_fits_nowhere() -> None:
    server = gpu_deployment(node_selector={"pool": "gpu"}, tolerations=[])
    (finding,) = check_fit([SYSTEM, GPU_POOL, server])
    assert finding.check == "fit" and finding.urn == server["urn"]
    assert (
        "Karpenter NodePool gpu (g6.xlarge): its taint nvidia.com/gpu=true:NoSchedule is not tolerated"
        in finding.missing
    )
    assert "EKS node group system (m7i.xlarge): nodeSelector pool=gpu: its nodes carry pool=system" in finding.missing
    assert finding.fix.startswith("add tolerations for nvidia.com/gpu=true:NoSchedule to Deployment server")
    assert check_fit([SYSTEM, GPU_POOL, gpu_deployment(node_selector={"pool": "gpu"})]) == []


def test_a_selector_no_pool_carries_fits_nowhere() -> None:
    (finding,) = check_fit([SYSTEM, GPU_POOL, gpu_deployment(node_selector={"pool": "gpu-large"})])
    assert "nodeSelector pool=gpu-large" in finding.missing
    assert "nodeSelector/affinity" in finding.fix


def test_required_node_affinity_is_matched_against_the_pools_labels() -> None:
    affinity = {
        "nodeAffinity": {
            "requiredDuringSchedulingIgnoredDuringExecution": {
                "nodeSelectorTerms": [
                    {
                        "matchExpressions": [
                            {"key": "node.kubernetes.io/instance-type", "operator": "In", "values": ["p5.48xlarge"]}
                        ]
                    }
                ]
            }
        }
    }
    (finding,) = check_fit([GPU_POOL, gpu_deployment(affinity=affinity)])
    assert "required node affinity (node.kubernetes.io/instance-type=p5.48xlarge) matches none" in finding.missing
    affinity["nodeAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"]["nodeSelectorTerms"][0][
        "matchExpressions"
    ][0]["values"] = ["g6.xlarge"]
    assert check_fit([GPU_POOL, gpu_deployment(affinity=affinity)]) == []


def test_cpu_and_memory_must_fit_a_node_less_the_system_reserve() -> None:
    big = deployment("big", pod_spec([container({"cpu": "4", "memory": "8Gi"})], node_selector={"pool": "system"}))
    (finding,) = check_fit([SYSTEM, big])
    assert "it asks for 4 cpu; one m7i.xlarge node leaves 2 after the 2-vCPU system reserve" in finding.missing
    assert "lower Deployment big's requests" in finding.fix
    hungry = deployment(
        "hungry", pod_spec([container({"cpu": "1", "memory": "15Gi"})], node_selector={"pool": "system"})
    )
    (finding,) = check_fit([SYSTEM, hungry])
    assert "it asks for 15Gi memory; one m7i.xlarge node leaves 14.4Gi after the 10% system reserve" in finding.missing
    small = deployment("small", pod_spec([container({"cpu": "2", "memory": "14Gi"})], node_selector={"pool": "system"}))
    assert check_fit([SYSTEM, small]) == []
    assert check_fit([SYSTEM, big], reserve=SystemReserve(vcpus=0, memory_fraction=0)) == []


def test_gpus_and_efa_interfaces_must_fit_one_node() -> None:
    too_many = gpu_deployment(gpus=2, node_selector={"pool": "gpu"})
    (finding,) = check_fit([GPU_POOL, too_many])
    assert "it asks for 2 nvidia.com/gpu; one g6.xlarge node has 1" in finding.missing
    efa = deployment(
        "efa",
        pod_spec(
            [container(limits={"nvidia.com/gpu": "1", "vpc.amazonaws.com/efa": "1"})], tolerations=[GPU_TOLERATION]
        ),
    )
    (finding,) = check_fit([GPU_POOL, efa])
    assert "it asks for 1 vpc.amazonaws.com/efa; one g6.xlarge node has 0" in finding.missing
    efa_pool = node_pool("efa", ("g6.8xlarge",), limits={"nvidia.com/gpu": "2"})
    assert check_fit([GPU_POOL, efa_pool, efa]) == []


def test_node_pool_limits_too_small_for_one_node() -> None:
    pool = node_pool("tiny", ("p5.48xlarge",), limits={"nvidia.com/gpu": "4"})
    (finding,) = check_fit([pool, gpu_deployment()])
    assert "its limits (nvidia.com/gpu=4) leave no room for a single p5.48xlarge node" in finding.missing
    assert "raise Karpenter NodePool tiny's limits" in finding.fix


def test_replicas_times_gpus_must_fit_the_pools_maximum() -> None:
    server = gpu_deployment(replicas=5, node_selector={"pool": "gpu"})
    (finding,) = check_fit([GPU_POOL, server])
    assert finding.needs == "5 pods of Deployment server at once, each with 1 nvidia.com/gpu"
    assert finding.missing == (
        "the node pools it fits hold 4: Karpenter NodePool gpu (g6.xlarge) holds at most 4 nodes of 1 such pods each"
    )
    assert finding.fix == (
        "raise the limits of Karpenter NodePool gpu to hold 5 g6.xlarge nodes (nvidia.com/gpu >= 5), "
        "or lower Deployment server's replicas to 4"
    )
    assert check_fit([GPU_POOL, gpu_deployment(replicas=4, node_selector={"pool": "gpu"})]) == []


def test_an_hpa_floor_counts_as_the_replicas_that_must_run() -> None:
    group = node_group("gpu", ("g6.xlarge",), max_size=2, labels={"pool": "gpu"}, taints=[EKS_GPU_TAINT])
    server = gpu_deployment(replicas=1, node_selector={"pool": "gpu"})
    (finding,) = check_fit([group, server, hpa("server", "server", min_replicas=3)])
    assert "EKS node group gpu (g6.xlarge) holds at most 2 nodes of 1 such pods each" in finding.missing
    assert finding.fix.startswith("raise the max size of EKS node group gpu to at least 3")
    assert check_fit([group, server, hpa("server", "server", min_replicas=2)]) == []


def test_a_train_job_needs_num_nodes_nodes_of_its_per_node_resources() -> None:
    pool = node_pool("train", ("p5.48xlarge",), limits={"nvidia.com/gpu": "16"}, labels={"pool": "train"})
    per_node = {"nvidia.com/gpu": "8", "vpc.amazonaws.com/efa": "32", "cpu": "190", "memory": "1843Gi"}
    job = train_job(num_nodes=3, per_node=per_node, node_selector={"pool": "train"})
    (finding,) = check_fit([pool, runtime(), job])
    assert finding.needs == "3 pods of TrainJob train at once, each with 8 nvidia.com/gpu, 32 vpc.amazonaws.com/efa"
    assert "holds at most 2 nodes of 1 such pods each" in finding.missing
    assert "(nvidia.com/gpu >= 24)" in finding.fix
    assert (
        check_fit([pool, runtime(), train_job(num_nodes=2, per_node=per_node, node_selector={"pool": "train"})]) == []
    )
    greedy = train_job(num_nodes=1, per_node={**per_node, "cpu": "191"}, node_selector={"pool": "train"})
    (finding,) = check_fit([pool, runtime(), greedy])
    assert "it asks for 191 cpu; one p5.48xlarge node leaves 190" in finding.missing


def test_values_not_known_are_never_guessed() -> None:
    unknown_type = node_group("gpu", UNKNOWN, labels={"pool": "gpu"}, taints=[EKS_GPU_TAINT])
    assert check_fit([unknown_type, gpu_deployment(gpus=8, replicas=10, node_selector={"pool": "gpu"})]) == []
    unknown_taints = node_group("gpu", ("g6.xlarge",), labels={"pool": "gpu"}, taints=UNKNOWN)
    assert check_fit([unknown_taints, gpu_deployment(node_selector={"pool": "gpu"}, tolerations=[])]) == []
    unknown_labels = node_group("gpu", ("g6.xlarge",), labels=UNKNOWN, taints=[])
    assert check_fit([unknown_labels, gpu_deployment(node_selector={"pool": "gpu"})]) == []
    unknown_selector = gpu_deployment(node_selector={"pool": UNKNOWN})
    assert check_fit([GPU_POOL, unknown_selector]) == []
    uncatalogued = node_group("odd", ("x9.large",), labels={"pool": "gpu"}, taints=[])
    assert check_fit([uncatalogued, gpu_deployment(gpus=4, node_selector={"pool": "gpu"})]) == []
    unknown_replicas = gpu_deployment(replicas=UNKNOWN, node_selector={"pool": "gpu"})
    assert check_fit([GPU_POOL, unknown_replicas]) == []


def test_a_plan_without_nodes_is_not_judged() -> None:
    assert check_fit([gpu_deployment(gpus=64)]) == []


def test_snake_case_inputs() -> None:
    group = node_group("gpu", None, labels={"pool": "gpu"})
    group["inputs"]["instance_types"] = ["g6.xlarge"]
    group["inputs"]["taints"] = [EKS_GPU_TAINT]
    server = gpu_deployment(node_selector=None, tolerations=None)
    server["inputs"]["spec"]["template"]["spec"]["node_selector"] = {"pool": "gpu"}
    (finding,) = check_fit([group, server])
    assert "its taint nvidia.com/gpu=true:NoSchedule is not tolerated" in finding.missing
    server["inputs"]["spec"]["template"]["spec"]["tolerations"] = [{"key": "nvidia.com/gpu", "operator": "Exists"}]
    assert check_fit([group, server]) == []


def test_a_daemon_set_must_fit_every_node_it_selects_but_may_select_none() -> None:
    group = node_group("gpu", ("g6.xlarge",), labels={"pool": "gpu"}, taints=[EKS_GPU_TAINT])
    agent = daemon_set("agent", {"containers": [container({"cpu": "3"})], "tolerations": [{"operator": "Exists"}]})
    (finding,) = check_fit([SYSTEM, group, agent])
    assert finding.urn == urn("kubernetes:apps/v1:DaemonSet", "agent")
    assert "Pending on EKS node group system (m7i.xlarge): it asks for 3 cpu" in finding.missing
    assert "EKS node group gpu (g6.xlarge): it asks for 3 cpu" in finding.missing
    small = daemon_set("agent", {"containers": [container({"cpu": "100m"})], "tolerations": [{"operator": "Exists"}]})
    assert check_fit([SYSTEM, group, small]) == []
    elsewhere = daemon_set("agent", {"containers": [container({"cpu": "3"})], "nodeSelector": {"pool": "none"}})
    assert check_fit([SYSTEM, group, elsewhere]) == []


def test_a_pod_bound_to_a_named_node_is_not_scheduled() -> None:
    assert check_fit([SYSTEM, gpu_deployment(gpus=8, nodeName="node-1")]) == []


def test_a_raw_program_with_a_tainted_node_group_and_an_intolerant_deployment(run_program: ProgramRunner) -> None:
    def program(tolerate: bool) -> None:
        aws.eks.NodeGroup(
            "gpu",
            cluster_name="c",
            node_role_arn="arn:aws:iam::123456789012:role/node",
            subnet_ids=["subnet-1"],
            instance_types=["g6.xlarge"],
            ami_type="AL2023_x86_64_NVIDIA",
            scaling_config={"min_size": 1, "max_size": 2, "desired_size": 1},
            labels={"pool": "gpu"},
            taints=[{"key": "nvidia.com/gpu", "value": "true", "effect": "NO_SCHEDULE"}],
        )
        spec: dict[str, Any] = {
            "node_selector": {"pool": "gpu"},
            "containers": [{"name": "s", "image": "s:1", "resources": {"limits": {"nvidia.com/gpu": "1"}}}],
        }
        if tolerate:
            spec["tolerations"] = [{"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}]
        deployment_spec: Any = {
            "selector": {"match_labels": {"app": "s"}},
            "template": {"metadata": {"labels": {"app": "s"}}, "spec": spec},
        }
        k8s.apps.v1.Deployment("server", metadata={"name": "server", "namespace": "ml"}, spec=deployment_spec)

    from tests.policies.deployability.cluster_plans import planned

    (finding,) = check_fit(planned(run_program, lambda: program(tolerate=False)))
    assert finding.urn.endswith("kubernetes:apps/v1:Deployment::server")
    assert "its taint nvidia.com/gpu=true:NoSchedule is not tolerated" in finding.missing
    assert check_fit(planned(run_program, lambda: program(tolerate=True))) == []
