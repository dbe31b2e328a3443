"""The cluster model: node offers, device plugins and pod templates read from planned resources of any program."""

from __future__ import annotations

import pytest

from modelplane.policies.deployability.cluster_model import (
    AUTOSCALING_GROUP,
    EC2_INSTANCE,
    NODE_GROUP,
    NODE_POOL,
    cluster_model,
    device_plugins,
    node_offers,
    pod_requests,
    pod_templates,
)
from modelplane.policies.deployability.instance_figures import SYSTEM_RESERVE, instance_figures
from modelplane.policies.deployability.placement import (
    NodeLabels,
    Requirement,
    Taint,
    affinity_terms,
    any_of,
    taint_of,
    toleration_of,
    untolerated,
)
from modelplane.policies.deployability.quantities import quantity
from modelplane.policies.rules.props import UNKNOWN as UNKNOWN_OBJECT
from modelplane.terms.scheduling import EFA_RESOURCE, GPU_RESOURCE, NODE_RESERVED_VCPUS
from tests.policies.deployability.cluster_plans import (
    EKS_GPU_TAINT,
    GPU_TOLERATION,
    INSTANCE,
    UNKNOWN,
    asg,
    container,
    daemon_set,
    deployment,
    efa_plugin,
    gpu_deployment,
    hpa,
    launch_template,
    node_class,
    node_group,
    node_pool,
    nvidia_plugin,
    pod_spec,
    resource,
    runtime,
    train_job,
    urn,
)

GIB = 2.0**30


@pytest.mark.parametrize(
    ("text", "value"),
    [
        ("500m", 0.5),
        ("2", 2.0),
        (8.0, 8.0),
        ("16Gi", 16 * GIB),
        ("1G", 1e9),
        ("1e3", 1000.0),
        (UNKNOWN, None),
        ("x", None),
    ],
)
def test_quantities(text: object, value: float | None) -> None:
    assert quantity(text) == value


def test_instance_figures_come_from_the_gpu_catalog_and_the_cpu_table() -> None:
    p5 = instance_figures("p5.48xlarge")
    assert p5 is not None and (p5.gpus, p5.efa_interfaces, p5.vcpus, p5.memory_gib) == (8, 32, 192, 2048)
    large = instance_figures("m7i.large")
    assert large is not None and (large.gpus, large.vcpus, large.memory_gib) == (0, 2, 8)
    assert instance_figures("c7i.4xlarge") is not None and instance_figures("m6i.2xlarge") is not None
    assert instance_figures("x99.huge") is None
    allocatable = SYSTEM_RESERVE.allocatable(p5)
    assert allocatable["cpu"] == 192 - NODE_RESERVED_VCPUS
    assert allocatable["memory"] == pytest.approx(2048 * 0.9 * GIB)
    assert SYSTEM_RESERVE.allocatable(large)["cpu"] == 0


def test_a_node_group_offers_its_instance_types_labels_taints_and_sizes_in_either_spelling() -> None:
    group = node_group(
        instance_types=None,
        labels={"pool": "gpu"},
        taints=[EKS_GPU_TAINT],
        min_size=0,
        max_size=3,
    )
    group["inputs"]["instance_types"] = ["g6.xlarge"]
    (offer,) = node_offers([group])
    assert (offer.kind, offer.instance_types, offer.min_nodes, offer.max_nodes) == (NODE_GROUP, ("g6.xlarge",), 0, 3)
    assert offer.taints == (Taint("nvidia.com/gpu", "true", "NoSchedule"),)
    (shape,) = offer.shapes()
    assert shape.labels.lookup("pool") == (True, frozenset({"gpu"}))
    assert shape.labels.lookup("node.kubernetes.io/instance-type") == (True, frozenset({"g6.xlarge"}))
    assert shape.labels.lookup("kubernetes.io/arch") == (True, frozenset({"amd64"}))
    assert shape.labels.lookup("topology.kubernetes.io/zone") == (True, None)
    assert shape.labels.lookup("other") == (False, frozenset())


def test_a_node_group_takes_its_instance_type_from_the_launch_template_it_depends_on() -> None:
    template = launch_template("lt", instanceType="p5.48xlarge")
    group = node_group(instance_types=None, launchTemplate={"id": "lt-123", "version": "1"}, deps=(template["urn"],))
    (offer,) = node_offers([template, group])
    assert offer.instance_types == ("p5.48xlarge",)
    by_name = node_group(instance_types=None, launch_template={"name": "gpu-template", "version": "1"})
    named = launch_template("named", name="gpu-template", instance_type="g6e.xlarge")
    assert node_offers([named, launch_template("other", instanceType="m7i.large"), by_name])[0].instance_types == (
        "g6e.xlarge",
    )


def test_unknown_instance_types_stay_unknown() -> None:
    (offer,) = node_offers([node_group(instance_types=UNKNOWN)])
    assert offer.instance_types is None
    (shape,) = offer.shapes()
    assert shape.figures is None and shape.allocatable() is None


def test_a_karpenter_node_pool_offers_its_pinned_types_within_its_limits() -> None:
    pool = node_pool(
        "train",
        ("p5.48xlarge",),
        limits={"nvidia.com/gpu": "16", "cpu": "1000", "memory": "8192Gi"},
        requirements=[{"key": "karpenter.sh/capacity-type", "operator": "In", "values": ["spot", "on-demand"]}],
    )
    (offer,) = node_offers([pool])
    assert (offer.kind, offer.instance_types, offer.min_nodes) == (NODE_POOL, ("p5.48xlarge",), 0)
    (shape,) = offer.shapes()
    assert shape.max_nodes == 2
    assert shape.labels.lookup("karpenter.sh/capacity-type") == (True, frozenset({"spot", "on-demand"}))
    assert shape.labels.lookup("karpenter.sh/nodepool") == (True, frozenset({"train"}))
    assert shape.labels.lookup("karpenter.k8s.aws/instance-gpu-count") == (True, frozenset({"8"}))
    unpinned = node_offers([node_pool(instance_types=None)])[0]
    assert unpinned.instance_types is None and unpinned.shapes()[0].max_nodes is None


def test_bottlerocket_and_auto_mode_nodes_advertise_gpus_themselves() -> None:
    offers = node_offers(
        [
            node_pool("br", node_class="br"),
            node_class("br", alias="bottlerocket@latest"),
            node_pool("auto", node_class_group="eks.amazonaws.com"),
            node_group("ng", amiType="BOTTLEROCKET_x86_64_NVIDIA"),
            node_group("al", amiType="AL2023_x86_64_NVIDIA"),
        ]
    )
    assert [GPU_RESOURCE in o.builtin_resources for o in offers] == [True, True, True, False]
    assert [o.scaled_by_eks for o in offers] == [False, True, False, False]


def test_auto_scaling_groups_and_instances_are_nodes_only_when_they_join_a_cluster() -> None:
    template = launch_template("lt", instanceType="g5.12xlarge")
    joined = asg("nodes", tags=None, launchTemplate={"id": "x"}, deps=(template["urn"],))
    bastion = asg("bastion", tags=[], launchTemplate={"id": "x"}, deps=(template["urn"],))
    instance = resource(
        INSTANCE, "node", {"instanceType": "g6.xlarge", "userData": "#!/bin/bash\n/etc/eks/bootstrap.sh c"}
    )
    web = resource(INSTANCE, "web", {"instanceType": "m7i.large"})
    offers = node_offers([template, joined, bastion, instance, web])
    assert [(o.kind, o.name, o.instance_types) for o in offers] == [
        (AUTOSCALING_GROUP, "nodes", ("g5.12xlarge",)),
        (EC2_INSTANCE, "node", ("g6.xlarge",)),
    ]
    assert offers[0].labels.open and offers[0].more_taints


def test_cluster_autoscaler_node_template_tags_declare_labels_and_taints() -> None:
    tags = [
        {"key": "kubernetes.io/cluster/c", "value": "owned"},
        {"key": "k8s.io/cluster-autoscaler/node-template/label/pool", "value": "gpu"},
        {"key": "k8s.io/cluster-autoscaler/node-template/taint/nvidia.com/gpu", "value": "true:NoSchedule"},
    ]
    (offer,) = node_offers(
        [asg(tags=tags, mixedInstancesPolicy={"launchTemplate": {"overrides": [{"instanceType": "g6.xlarge"}]}})]
    )
    assert offer.instance_types == ("g6.xlarge",)
    assert offer.labels.lookup("pool") == (True, frozenset({"gpu"}))
    assert offer.taints == (Taint("nvidia.com/gpu", "true", "NoSchedule"),)


def test_device_plugins_from_charts_and_daemon_sets() -> None:
    nvidia = nvidia_plugin({"gpu": "yes"})
    plugins = device_plugins(
        [
            nvidia,
            efa_plugin(),
            daemon_set(
                "nvidia-device-plugin-daemonset", {"containers": [{"image": "nvcr.io/nvidia/k8s-device-plugin:v0.17"}]}
            ),
            daemon_set(
                "efa",
                {
                    "containers": [
                        {"image": "602401143452.dkr.ecr.us-west-2.amazonaws.com/eks/aws-efa-k8s-device-plugin:v0.5"}
                    ]
                },
            ),
            daemon_set("fluent-bit", {"containers": [{"image": "fluent-bit"}]}),
        ]
    )
    assert [(p.name, p.resource) for p in plugins] == [
        ("nvidia-device-plugin", GPU_RESOURCE),
        ("efa-device-plugin", EFA_RESOURCE),
        ("nvidia-device-plugin-daemonset", GPU_RESOURCE),
        ("efa", EFA_RESOURCE),
    ]
    # The NVIDIA chart's own tolerations and affinity apply where the values set none.
    defaults = device_plugins([nvidia_plugin()])[0].placement
    assert defaults.tolerations is not None and len(defaults.tolerations) == 2
    assert defaults.affinity is not None and len(defaults.affinity) == 3


def test_requests_default_to_limits_and_count_init_containers_and_sidecars() -> None:
    pod = {
        "containers": [container({"cpu": "1"}, {"cpu": "2", "memory": "2Gi", "nvidia.com/gpu": "1"})],
        "initContainers": [
            {"name": "sidecar", "restartPolicy": "Always", "resources": {"requests": {"cpu": "500m"}}},
            {"name": "init", "resources": {"requests": {"cpu": "4", "memory": "1Gi"}}},
        ],
    }
    assert pod_requests(pod) == {"cpu": 4.5, "memory": 2 * GIB, "nvidia.com/gpu": 1.0}
    assert pod_requests({"containers": [{"resources": {"requests": UNKNOWN, "limits": {"cpu": "1"}}}]}) == {}


def test_pod_templates_of_workloads_with_their_replicas() -> None:
    resources = [
        deployment("api", replicas=2),
        hpa("api", "api", min_replicas=3),
        deployment("solo", replicas=None),
        deployment("later", replicas=UNKNOWN),
        daemon_set("agent", pod_spec()),
        resource(
            "kubernetes:batch/v1:Job",
            "job",
            {"spec": {"parallelism": 4, "completions": 2, "template": {"spec": pod_spec()}}},
        ),
        resource("kubernetes:core/v1:Pod", "pod", {"spec": pod_spec()}),
    ]
    pods = {p.name: p for p in pod_templates(resources)}
    assert {name: p.replicas for name, p in pods.items()} == {
        "api": 3,
        "solo": 1,
        "later": None,
        "agent": None,
        "job": 2,
        "pod": 1,
    }
    assert pods["agent"].per_node and pods["api"].requests == {"cpu": 1.0, "memory": GIB}


def test_a_train_job_runs_num_nodes_pods_placed_by_its_runtime_and_patches() -> None:
    base = runtime(
        pod={"nodeSelector": {"zone": "a"}, "tolerations": [{"key": "x", "operator": "Exists"}], "containers": []}
    )
    job = train_job(
        num_nodes=None, per_node={"nvidia.com/gpu": 8, "vpc.amazonaws.com/efa": 32}, node_selector={"pool": "train"}
    )
    (pod,) = pod_templates([base, job])
    assert (pod.kind, pod.replicas) == ("TrainJob", 1)
    assert pod.requests == {"nvidia.com/gpu": 8.0, "vpc.amazonaws.com/efa": 32.0}
    assert pod.placement.selector == (
        Requirement("zone", "In", ("a",)),
        Requirement("pool", "In", ("train",)),
    )
    assert pod.placement.tolerations is not None and len(pod.placement.tolerations) == 2
    assert pod_templates([train_job(num_nodes=4)])[0].replicas == 4


def test_taints_tolerations_and_affinity_answer_true_false_or_unknown() -> None:
    gpu = taint_of(EKS_GPU_TAINT)
    assert gpu == Taint("nvidia.com/gpu", "true", "NoSchedule")
    assert toleration_of(GPU_TOLERATION).tolerates(gpu) is True
    assert toleration_of({"key": "nvidia.com/gpu", "operator": "Exists"}).tolerates(gpu) is True
    assert toleration_of({"operator": "Exists"}).tolerates(gpu) is True
    assert toleration_of({"key": "nvidia.com/gpu", "value": "false", "effect": "NoSchedule"}).tolerates(gpu) is False
    assert toleration_of({"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoExecute"}).tolerates(gpu) is False
    assert toleration_of({"key": UNKNOWN, "operator": "Exists"}).tolerates(gpu) is None
    assert untolerated((), [Taint("a", "", "PreferNoSchedule")]) == (True, [])
    assert untolerated((), None) == (None, [])
    labels = NodeLabels({"pool": frozenset({"gpu"}), "cpus": frozenset({"8"})})
    terms = affinity_terms(
        {
            "nodeAffinity": {
                "requiredDuringSchedulingIgnoredDuringExecution": {
                    "nodeSelectorTerms": [
                        {"matchExpressions": [{"key": "pool", "operator": "NotIn", "values": ["gpu"]}]},
                        {
                            "matchExpressions": [
                                {"key": "cpus", "operator": "Gt", "values": ["4"]},
                                {"key": "spot", "operator": "DoesNotExist"},
                            ]
                        },
                    ]
                }
            }
        }
    )
    assert terms is not None
    assert [all(r.matches(labels) for r in term) for term in terms] == [False, True]
    assert any_of([Requirement("pool", "In", None).matches(labels)]) is None
    assert affinity_terms(UNKNOWN) is None and affinity_terms({}) == ()


def test_the_model_of_a_gpu_platform() -> None:
    model = cluster_model([node_group(), nvidia_plugin(), gpu_deployment()])
    assert [o.name for o in model.offers] == ["gpu-nodes"]
    assert [p.resource for p in model.plugins] == [GPU_RESOURCE]
    assert [(p.name, p.extended_resources()) for p in model.pods] == [("server", {GPU_RESOURCE: 1.0})]
    assert [s.instance_type for s in model.shapes] == ["g6.xlarge"]
    assert urn(INSTANCE, "x").endswith("::x")


def test_objects_not_known_yet_are_never_read_as_absent() -> None:
    later = deployment("later")
    later["inputs"]["spec"]["template"] = UNKNOWN
    assert pod_templates([later]) == []
    job = train_job(node_selector={"pool": "train"})
    job["inputs"]["spec"]["runtimePatches"] = UNKNOWN
    (pod,) = pod_templates([runtime(), job])
    assert pod.placement.selector is None and pod.placement.tolerations is None
    pool = node_pool("gpu")
    pool["inputs"]["spec"]["template"] = UNKNOWN
    (offer,) = node_offers([pool])
    assert offer.instance_types is None and offer.taints is None and offer.labels.open
    group = node_group("gpu", scalingConfig=UNKNOWN)
    (offer,) = node_offers([group])
    assert (offer.min_nodes, offer.max_nodes) == (None, None)


def test_the_policy_packs_unknown_object_reads_as_unknown() -> None:
    (offer,) = node_offers([node_group(instance_types=UNKNOWN_OBJECT, taints=UNKNOWN_OBJECT)])
    assert offer.instance_types is None and offer.taints is None
    (pod,) = pod_templates([gpu_deployment(node_selector=UNKNOWN_OBJECT, replicas=UNKNOWN_OBJECT)])
    assert pod.placement.selector is None and pod.replicas is None


def test_a_runtime_outside_the_plan_may_add_tolerations() -> None:
    (pod,) = pod_templates([train_job(node_selector={"pool": "train"}, runtime_name="torch-distributed")])
    assert pod.placement.selector == (Requirement("pool", "In", ("train",)),)
    assert pod.placement.tolerations is None
