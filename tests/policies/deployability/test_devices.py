"""check_devices: every GPU and EFA request is advertised by a device plugin where the pod can land."""

from __future__ import annotations

import pulumi_aws as aws
import pulumi_kubernetes as k8s

from modelplane.policies.deployability.devices import check_devices
from tests.conftest import ProgramRunner
from tests.policies.deployability.cluster_plans import (
    EKS_GPU_TAINT,
    GPU_TOLERATION,
    UNKNOWN,
    container,
    daemon_set,
    deployment,
    efa_plugin,
    gpu_deployment,
    node_class,
    node_group,
    node_pool,
    nvidia_plugin,
    planned,
    pod_spec,
    release,
    runtime,
    train_job,
)

GPU_POOL = node_pool(
    "gpu",
    ("g6.xlarge",),
    limits={"nvidia.com/gpu": "4"},
    labels={"pool": "gpu", "gpu": "true", "nvidia.com/gpu.present": "true"},
)
TRAIN_POOL = node_pool(
    "train",
    ("p5.48xlarge",),
    limits={"nvidia.com/gpu": "16"},
    labels={"pool": "train", "gpu": "true", "efa": "true", "nvidia.com/gpu.present": "true"},
)
GPU_EXISTS = [{"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}]


def test_a_gpu_pod_without_any_device_plugin() -> None:
    server = gpu_deployment()
    (finding,) = check_devices([GPU_POOL, server])
    assert (finding.check, finding.urn) == ("devices", server["urn"])
    assert finding.needs == "1 nvidia.com/gpu for each pod of Deployment server"
    assert "nothing in the plan advertises nvidia.com/gpu" in finding.missing
    assert "nvidia-device-plugin chart" in finding.fix
    assert check_devices([GPU_POOL, nvidia_plugin({"gpu": "true"}, GPU_EXISTS), server]) == []


def test_a_plugin_that_does_not_tolerate_the_gpu_taint() -> None:
    plugin = nvidia_plugin({"gpu": "true"}, tolerations=[])
    (finding,) = check_devices([GPU_POOL, plugin, gpu_deployment()])
    assert "no device plugin for nvidia.com/gpu runs on those nodes" in finding.missing
    assert (
        "nvidia-device-plugin does not run there (its taint nvidia.com/gpu=true:NoSchedule is not tolerated)"
        in finding.missing
    )
    assert finding.fix == "add a toleration for nvidia.com/gpu=true:NoSchedule to nvidia-device-plugin's tolerations"


def test_a_plugin_whose_node_selector_misses_the_pods_nodes() -> None:
    plugin = nvidia_plugin({"accelerator": "nvidia"}, GPU_EXISTS)
    (finding,) = check_devices([GPU_POOL, plugin, gpu_deployment(node_selector={"pool": "gpu"})])
    assert "nodeSelector accelerator=nvidia: its nodes have no accelerator label" in finding.missing
    assert finding.fix == (
        "make nvidia-device-plugin's nodeSelector/affinity match the labels of Karpenter NodePool gpu, "
        "or give that pool the labels the plugin selects"
    )


def test_the_nvidia_charts_default_affinity_wants_a_gpu_label_or_node_feature_discovery() -> None:
    plain = node_pool("gpu", ("g6.xlarge",), labels={"pool": "gpu"})
    (finding,) = check_devices([plain, nvidia_plugin(), gpu_deployment()])
    assert "required node affinity" in finding.missing
    labelled = node_pool("gpu", ("g6.xlarge",), labels={"nvidia.com/gpu.present": "true"})
    assert check_devices([labelled, nvidia_plugin(), gpu_deployment()]) == []
    discovery = release("nfd", "node-feature-discovery")
    assert check_devices([plain, discovery, nvidia_plugin(), gpu_deployment()]) == []


def test_efa_requests_need_the_efa_plugin_on_the_efa_nodes() -> None:
    per_node = {"nvidia.com/gpu": "8", "vpc.amazonaws.com/efa": "32"}
    job = train_job(num_nodes=2, per_node=per_node, node_selector={"pool": "train"})
    gpu = nvidia_plugin({"gpu": "true"}, GPU_EXISTS)
    (finding,) = check_devices([TRAIN_POOL, runtime(), gpu, job])
    assert finding.needs == "32 vpc.amazonaws.com/efa for each pod of TrainJob train"
    assert "aws-efa-k8s-device-plugin" in finding.fix
    elsewhere = efa_plugin({"efa": "false"})
    (finding,) = check_devices([TRAIN_POOL, runtime(), gpu, elsewhere, job])
    assert "efa-device-plugin does not run there (nodeSelector efa=false: its nodes carry efa=true)" in finding.missing
    assert check_devices([TRAIN_POOL, runtime(), gpu, efa_plugin({"efa": "true"}), job]) == []


def test_a_raw_daemon_set_plugin_counts() -> None:
    plugin = daemon_set(
        "nvidia-device-plugin-daemonset",
        pod_spec([container(name="plugin")], tolerations=GPU_EXISTS)
        | {"containers": [{"image": "nvcr.io/nvidia/k8s-device-plugin:v0.17.0"}]},
    )
    assert check_devices([GPU_POOL, plugin, gpu_deployment()]) == []
    plugin["inputs"]["spec"]["template"]["spec"]["tolerations"] = []
    assert len(check_devices([GPU_POOL, plugin, gpu_deployment()])) == 1


def test_bottlerocket_nvidia_nodes_advertise_gpus_without_a_plugin() -> None:
    pool = node_pool("gpu", ("g6.xlarge",), node_class="br")
    assert check_devices([pool, node_class("br", alias="bottlerocket@latest"), gpu_deployment()]) == []
    group = node_group("gpu", ("g6.xlarge",), taints=[EKS_GPU_TAINT], amiType="BOTTLEROCKET_x86_64_NVIDIA")
    assert check_devices([group, gpu_deployment()]) == []


def test_nodes_without_the_device_and_unknowns_are_left_to_other_checks() -> None:
    # A GPU pod that lands only on CPU nodes is the fit check's; an unknown plugin placement may run anywhere.
    cpu = node_group("cpu", ("m7i.xlarge",), taints=[])
    assert check_devices([cpu, nvidia_plugin({"gpu": "true"}), gpu_deployment()]) == []
    unknown = release("nvidia-device-plugin", "nvidia-device-plugin", UNKNOWN)
    assert check_devices([GPU_POOL, unknown, gpu_deployment()]) == []
    unknown_pool = node_pool("gpu", ("g6.xlarge",), labels=UNKNOWN)  # type: ignore[arg-type]
    assert check_devices([unknown_pool, nvidia_plugin({"gpu": "true"}, GPU_EXISTS), gpu_deployment()]) == []
    unknown_request = deployment(
        "later", pod_spec([container(limits={"nvidia.com/gpu": UNKNOWN})], tolerations=[GPU_TOLERATION])
    )
    assert check_devices([GPU_POOL, unknown_request]) == []


def test_a_raw_program_with_a_gpu_deployment_and_no_device_plugin(run_program: ProgramRunner) -> None:
    def program(with_plugin: bool) -> None:
        aws.eks.NodeGroup(
            "gpu",
            cluster_name="c",
            node_role_arn="arn:aws:iam::123456789012:role/node",
            subnet_ids=["subnet-1"],
            instance_types=["g5.xlarge"],
            scaling_config={"min_size": 1, "max_size": 2, "desired_size": 1},
            labels={"nvidia.com/gpu.present": "true"},
            taints=[{"key": "nvidia.com/gpu", "value": "true", "effect": "NO_SCHEDULE"}],
        )
        k8s.apps.v1.Deployment(
            "server",
            metadata={"name": "server", "namespace": "ml"},
            spec={
                "selector": {"match_labels": {"app": "s"}},
                "template": {
                    "metadata": {"labels": {"app": "s"}},
                    "spec": {
                        "tolerations": [{"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}],
                        "containers": [{"name": "s", "image": "s:1", "resources": {"limits": {"nvidia.com/gpu": "1"}}}],
                    },
                },
            },
        )
        if with_plugin:
            k8s.helm.v3.Release(
                "nvidia-device-plugin",
                chart="nvidia-device-plugin",
                version="0.17.1",
                repository_opts={"repo": "https://nvidia.github.io/k8s-device-plugin"},
            )

    (finding,) = check_devices(planned(run_program, lambda: program(with_plugin=False)))
    assert finding.urn.endswith("kubernetes:apps/v1:Deployment::server")
    assert "nothing in the plan advertises nvidia.com/gpu" in finding.missing
    assert check_devices(planned(run_program, lambda: program(with_plugin=True))) == []


def test_values_from_files_the_plan_does_not_read_may_place_the_plugin_anywhere() -> None:
    filed = release("nvidia-device-plugin", "nvidia-device-plugin", {"tolerations": []}, valueYamlFiles=["v.yaml"])
    assert check_devices([GPU_POOL, filed, gpu_deployment()]) == []
    unknown_pod = daemon_set("nvidia-device-plugin", {})
    unknown_pod["inputs"]["spec"]["template"]["spec"] = UNKNOWN
    assert check_devices([GPU_POOL, unknown_pod, gpu_deployment()]) == []
