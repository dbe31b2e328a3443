"""GPU capacity rules wherever the capacity is declared: node groups, their launch templates, NodePools,
Auto Scaling groups; GPU types in the catalog or only in EC2's list (gr6, g4dn)."""

from __future__ import annotations

from typing import Any

import pytest

from modelplane.components.gpu_nodes import CapacityType
from modelplane.components.karpenter_pools import PoolKind, node_pool_manifest
from modelplane.policies.rules import budget, gpu_pools
from modelplane.policies.rules.gpu_pools import DEFAULT_ALLOWED_GPU_TYPES
from tests.policies.harness import advice, messages, resource
from tests.policies.test_nodes import as_engine_sends

NODE_GROUP = "aws:eks/nodeGroup:NodeGroup"
LAUNCH_TEMPLATE = "aws:ec2/launchTemplate:LaunchTemplate"
AUTOSCALING_GROUP = "aws:autoscaling/group:Group"
NODE_POOL = "kubernetes:karpenter.sh/v1:NodePool"
GPU_TAINT = [{"key": "nvidia.com/gpu", "value": "true", "effect": "NO_SCHEDULE"}]
GPU_GROUP = {
    "instanceTypes": ["g6.xlarge"],
    "amiType": "AL2023_x86_64_NVIDIA",
    "taints": GPU_TAINT,
    "labels": {"nvidia.com/gpu.present": "true", "modelplane.io/pool": "gpu-small"},
    "scalingConfig": {"minSize": 0.0, "maxSize": 2.0, "desiredSize": 0.0},
}
SYSTEM_GROUP = {"instanceTypes": ["m7i.large"], "amiType": "AL2023_x86_64_STANDARD", "labels": {}}
ALLOWED = {"allowedInstanceTypes": ["g6.xlarge"]}
CAPACITY_RULES = (gpu_pools.GPU_TAINT, gpu_pools.NVIDIA_AMI, gpu_pools.ALLOWED_GPU_TYPES)
BUDGET = {"maxGpus": 16.0, "maxMonthlyGpuCostUsd": 10_000.0}


def gpu_group(**changes: Any) -> dict[str, Any]:
    return resource(NODE_GROUP, "gpu-nodes", {**GPU_GROUP, **changes})


def custom_ami_group_in(instance_type: str, max_size: float = 64.0) -> list[dict[str, Any]]:
    """A node group as platform engineers write one for their own AMI: every fact in the launch template."""
    template = resource(
        LAUNCH_TEMPLATE,
        "gpu-template",
        {
            "imageId": "ami-0123456789abcdef0",
            "instanceType": instance_type,
            "metadataOptions": {"httpTokens": "required"},
            "name": "gpu-template",
        },
    )
    group = resource(
        NODE_GROUP,
        "gpu-nodes",
        {
            "amiType": "CUSTOM",
            "launchTemplate": {"name": "gpu-template", "version": "1"},
            "scalingConfig": {"minSize": 0.0, "maxSize": max_size, "desiredSize": 0.0},
        },
        dependencies=[template],
    )
    return [template, group]


def test_sound_gpu_node_group_passes_every_capacity_rule() -> None:
    for rule in CAPACITY_RULES:
        assert messages(rule, [gpu_group()], ALLOWED) == [], rule.name
        assert advice(rule, [gpu_group()], ALLOWED) == [], rule.name


def test_system_node_group_is_not_a_gpu_one() -> None:
    group = resource(NODE_GROUP, "system-nodes", SYSTEM_GROUP)
    for rule in CAPACITY_RULES:
        assert messages(rule, [group], ALLOWED) == [], rule.name


def test_gpu_node_group_without_the_taint_fires() -> None:
    (message,) = messages(gpu_pools.GPU_TAINT, [gpu_group(taints=[])])
    assert "nvidia.com/gpu=true:NoSchedule" in message


def test_gpu_instance_on_a_standard_ami_fires() -> None:
    assert len(messages(gpu_pools.NVIDIA_AMI, [gpu_group(amiType="AL2023_x86_64_STANDARD")])) == 1


def test_gpu_type_outside_the_environments_list_fires() -> None:
    (message,) = messages(gpu_pools.ALLOWED_GPU_TYPES, [gpu_group(instanceTypes=["p5.48xlarge"])], ALLOWED)
    assert "p5.48xlarge" in message


def test_without_a_list_the_single_gpu_default_applies() -> None:
    assert "g6.xlarge" in DEFAULT_ALLOWED_GPU_TYPES and "p5.48xlarge" not in DEFAULT_ALLOWED_GPU_TYPES
    assert messages(gpu_pools.ALLOWED_GPU_TYPES, [gpu_group()]) == []
    assert len(messages(gpu_pools.ALLOWED_GPU_TYPES, [gpu_group(instanceTypes=["p5.48xlarge"])])) == 1


def test_gpu_capacity_declared_only_in_a_launch_template_is_held_to_every_rule() -> None:
    stack = custom_ami_group_in("p5en.48xlarge")
    assert len(messages(gpu_pools.GPU_TAINT, stack)) == 1
    (refused,) = messages(gpu_pools.ALLOWED_GPU_TYPES, stack, ALLOWED)
    assert "p5en.48xlarge" in refused
    (count,) = messages(budget.GPU_COUNT_WITHIN_BUDGET, stack, BUDGET)
    assert "512 GPUs" in count
    assert len(messages(budget.GPU_COST_WITHIN_BUDGET, stack, BUDGET)) == 1


def test_a_custom_ami_is_advice_not_a_verdict() -> None:
    stack = custom_ami_group_in("g6.xlarge", max_size=1.0)
    assert messages(gpu_pools.NVIDIA_AMI, stack) == []
    (said,) = advice(gpu_pools.NVIDIA_AMI, stack)
    assert "custom AMI" in said


@pytest.mark.parametrize("instance_type", ["gr6.4xlarge", "g4dn.xlarge", "p6-b200.48xlarge", "g6f.xlarge"])
def test_gpu_types_outside_the_catalog_are_gpu_capacity(instance_type: str) -> None:
    group = gpu_group(instanceTypes=[instance_type], amiType="AL2023_x86_64_STANDARD", taints=[], labels={})
    assert len(messages(gpu_pools.GPU_TAINT, [group])) == 1
    assert len(messages(gpu_pools.NVIDIA_AMI, [group])) == 1
    assert len(messages(gpu_pools.ALLOWED_GPU_TYPES, [group], ALLOWED)) == 1


def test_gpus_outside_the_catalog_are_counted_but_not_priced() -> None:
    group = gpu_group(instanceTypes=["p6-b200.48xlarge"], scalingConfig={"maxSize": 4.0})
    (count,) = messages(budget.GPU_COUNT_WITHIN_BUDGET, [group], BUDGET)
    assert "32 GPUs" in count
    assert messages(budget.GPU_COST_WITHIN_BUDGET, [group], BUDGET) == []
    (said,) = advice(budget.GPU_COST_WITHIN_BUDGET, [group], BUDGET)
    assert "cannot price p6-b200.48xlarge" in said
    priced = {**BUDGET, "hourlyRates": {"gpu-small": 100.0}}
    assert advice(budget.GPU_COST_WITHIN_BUDGET, [group], priced) == []
    assert len(messages(budget.GPU_COST_WITHIN_BUDGET, [group], priced)) == 1


def test_a_gpu_type_no_table_knows_is_advice() -> None:
    group = gpu_group(instanceTypes=["p9.96xlarge"])
    assert messages(budget.GPU_COUNT_WITHIN_BUDGET, [group], BUDGET) == []
    (said,) = advice(budget.GPU_COUNT_WITHIN_BUDGET, [group], BUDGET)
    assert "p9.96xlarge" in said


def test_nvidia_node_group_without_instance_types_never_crashes() -> None:
    group = gpu_group()
    del group["inputs"]["instanceTypes"]
    for rule in (*CAPACITY_RULES, budget.GPU_COUNT_WITHIN_BUDGET, budget.GPU_COST_WITHIN_BUDGET):
        assert not any("check failed" in said for said in advice(rule, [group], {**ALLOWED, **BUDGET})), rule.name


def test_self_managed_gpu_nodes_taint_themselves_so_the_rule_says_it_cannot_tell() -> None:
    template = resource(LAUNCH_TEMPLATE, "gpu-template", {"instanceType": "g6.xlarge", "name": "gpu-template"})
    group = resource(
        AUTOSCALING_GROUP,
        "gpu-asg",
        {
            "maxSize": 2.0,
            "minSize": 0.0,
            "launchTemplate": {"name": "gpu-template"},
            "tags": [{"key": "kubernetes.io/cluster/demo", "value": "owned", "propagateAtLaunch": True}],
        },
        dependencies=[template],
    )
    assert messages(gpu_pools.GPU_TAINT, [template, group]) == []
    assert len(advice(gpu_pools.GPU_TAINT, [template, group])) == 1
    assert len(messages(budget.GPU_COUNT_WITHIN_BUDGET, [template, group], {"maxGpus": 1.0})) == 1


def gpu_node_pool(instance_type: str = "g6.xlarge", **spec_changes: Any) -> dict[str, Any]:
    manifest = node_pool_manifest(
        pool_name="gpu-small",
        instance_type=instance_type,
        capacity_type=CapacityType.SPOT,
        max_size=2,
        kind=PoolKind.INFERENCE,
        node_class_name="gpu-small",
    )
    manifest["spec"]["template"]["spec"].update(spec_changes)
    return resource(NODE_POOL, "gpu-small-node-pool", as_engine_sends(manifest))


def test_sound_karpenter_pool_passes_every_capacity_rule() -> None:
    for rule in CAPACITY_RULES:
        assert messages(rule, [gpu_node_pool()], ALLOWED) == [], rule.name


def test_gpu_node_pool_without_the_taint_fires() -> None:
    (message,) = messages(gpu_pools.GPU_TAINT, [gpu_node_pool(taints=[])])
    assert "lack the taint nvidia.com/gpu=true:NoSchedule" in message


def test_gpu_node_pool_of_a_type_outside_the_environments_list_fires() -> None:
    (message,) = messages(gpu_pools.ALLOWED_GPU_TYPES, [gpu_node_pool("p5.48xlarge")], ALLOWED)
    assert "['p5.48xlarge'] are not allowed" in message


def test_gpu_node_pool_that_pins_no_instance_type_fires() -> None:
    requirements = [{"key": "karpenter.k8s.aws/instance-family", "operator": "In", "values": ["gr6"]}]
    (message,) = messages(gpu_pools.ALLOWED_GPU_TYPES, [gpu_node_pool(requirements=requirements)], ALLOWED)
    assert "no node.kubernetes.io/instance-type In requirement" in message


def test_cpu_node_pool_needs_no_taint_or_allowed_type() -> None:
    requirements = [{"key": "karpenter.k8s.aws/instance-category", "operator": "In", "values": ["m", "c"]}]
    spec = {"template": {"spec": {"requirements": requirements}}, "limits": {"cpu": "64"}}
    cpu_pool = resource(NODE_POOL, "cpu-node-pool", {"apiVersion": "karpenter.sh/v1", "kind": "NodePool", "spec": spec})
    for rule in (gpu_pools.GPU_TAINT, gpu_pools.ALLOWED_GPU_TYPES):
        assert messages(rule, [cpu_pool], ALLOWED) == [], rule.name


def test_gpu_node_pool_whose_requirements_are_not_yet_known_is_skipped() -> None:
    pool = gpu_node_pool(requirements="[unknown]", taints="[unknown]")
    for rule in (gpu_pools.GPU_TAINT, gpu_pools.ALLOWED_GPU_TYPES):
        assert messages(rule, [pool], ALLOWED) == [], rule.name
