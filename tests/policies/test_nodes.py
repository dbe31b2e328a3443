from __future__ import annotations

from typing import Any

import pytest

from modelplane.components.gpu_nodes import CapacityType
from modelplane.components.karpenter_pools import PoolKind, ec2_node_class_manifest, node_pool_manifest
from modelplane.policies.rules import nodes
from tests.policies.harness import messages, resource

LAUNCH_TEMPLATE = "aws:ec2/launchTemplate:LaunchTemplate"
NODE_GROUP = "aws:eks/nodeGroup:NodeGroup"
GOOD_TEMPLATE = {
    "metadataOptions": {"httpEndpoint": "enabled", "httpTokens": "required", "httpPutResponseHopLimit": 2.0},
    "blockDeviceMappings": [{"deviceName": "/dev/xvda", "ebs": {"volumeSize": 200.0, "encrypted": "true"}}],
}
GPU_GROUP = {
    "instanceTypes": ["g6.xlarge"],
    "amiType": "AL2023_x86_64_NVIDIA",
    "taints": [{"key": "nvidia.com/gpu", "value": "true", "effect": "NO_SCHEDULE"}],
    "labels": {"nvidia.com/gpu.present": "true", "modelplane.io/pool": "gpu-small"},
    "scalingConfig": {"minSize": 0.0, "maxSize": 2.0, "desiredSize": 0.0},
}
SYSTEM_GROUP = {"instanceTypes": ["m7i.large"], "amiType": "AL2023_x86_64_STANDARD", "labels": {}}
ALLOWED = {"allowedInstanceTypes": ["g6.xlarge"]}


def test_launch_template_with_imdsv2_and_encrypted_volumes_passes() -> None:
    template = resource(LAUNCH_TEMPLATE, "lt", GOOD_TEMPLATE)
    assert messages(nodes.LAUNCH_TEMPLATE_IMDSV2, [template]) == []
    assert messages(nodes.LAUNCH_TEMPLATE_ENCRYPTED_VOLUMES, [template]) == []


@pytest.mark.parametrize("tokens", ["optional", None])
def test_launch_template_allowing_imdsv1_fires(tokens: str | None) -> None:
    template = resource(LAUNCH_TEMPLATE, "lt", {**GOOD_TEMPLATE, "metadataOptions": {"httpTokens": tokens}})
    assert len(messages(nodes.LAUNCH_TEMPLATE_IMDSV2, [template])) == 1


@pytest.mark.parametrize(
    "mappings",
    [[], [{"deviceName": "/dev/xvda", "ebs": {"volumeSize": 50.0, "encrypted": "false"}}]],
    ids=["no-mappings", "unencrypted"],
)
def test_launch_template_with_unencrypted_volumes_fires(mappings: list[dict[str, Any]]) -> None:
    template = resource(LAUNCH_TEMPLATE, "lt", {**GOOD_TEMPLATE, "blockDeviceMappings": mappings})
    assert len(messages(nodes.LAUNCH_TEMPLATE_ENCRYPTED_VOLUMES, [template])) == 1


def test_sound_gpu_node_group_passes_every_node_rule() -> None:
    group = resource(NODE_GROUP, "gpu-nodes", GPU_GROUP)
    for rule in (nodes.NODE_GROUP_GPU_TAINT, nodes.NODE_GROUP_NVIDIA_AMI, nodes.NODE_GROUP_ALLOWED_GPU_TYPES):
        assert messages(rule, [group], ALLOWED) == [], rule.name


def test_system_node_group_is_not_a_gpu_one() -> None:
    group = resource(NODE_GROUP, "system-nodes", SYSTEM_GROUP)
    for rule in (nodes.NODE_GROUP_GPU_TAINT, nodes.NODE_GROUP_NVIDIA_AMI, nodes.NODE_GROUP_ALLOWED_GPU_TYPES):
        assert messages(rule, [group], ALLOWED) == [], rule.name


def test_gpu_node_group_without_the_taint_fires() -> None:
    group = resource(NODE_GROUP, "gpu-nodes", {**GPU_GROUP, "taints": []})
    (message,) = messages(nodes.NODE_GROUP_GPU_TAINT, [group])
    assert "nvidia.com/gpu=true:NO_SCHEDULE" in message


def test_gpu_instance_on_a_standard_ami_fires() -> None:
    group = resource(NODE_GROUP, "gpu-nodes", {**GPU_GROUP, "amiType": "AL2023_x86_64_STANDARD"})
    assert len(messages(nodes.NODE_GROUP_NVIDIA_AMI, [group])) == 1


def test_gpu_type_outside_the_environments_list_fires() -> None:
    group = resource(NODE_GROUP, "gpu-nodes", {**GPU_GROUP, "instanceTypes": ["p5.48xlarge"]})
    (message,) = messages(nodes.NODE_GROUP_ALLOWED_GPU_TYPES, [group], ALLOWED)
    assert "p5.48xlarge" in message


def test_allowed_types_rule_fails_closed_without_config() -> None:
    group = resource(NODE_GROUP, "gpu-nodes", GPU_GROUP)
    assert len(messages(nodes.NODE_GROUP_ALLOWED_GPU_TYPES, [group])) == 1


NODE_POOL = "kubernetes:karpenter.sh/v1:NodePool"
NODE_CLASS = "kubernetes:karpenter.k8s.aws/v1:EC2NodeClass"


def as_engine_sends(value: Any) -> Any:
    """`value` with every integer a float, as the engine carries numbers."""
    if isinstance(value, dict):
        return {key: as_engine_sends(item) for key, item in value.items()}
    if isinstance(value, list):
        return [as_engine_sends(item) for item in value]
    return float(value) if isinstance(value, int) and not isinstance(value, bool) else value


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


def node_class(**spec_changes: Any) -> dict[str, Any]:
    manifest = ec2_node_class_manifest(name="gpu-small", cluster_name="demo", node_role_name="karpenter-node")
    manifest["spec"].update(spec_changes)
    return resource(NODE_CLASS, "gpu-small-node-class", as_engine_sends(manifest))


def test_sound_karpenter_objects_pass_every_node_rule() -> None:
    for rule in nodes.RULES:
        assert messages(rule, [gpu_node_pool(), node_class()], ALLOWED) == [], rule.name


def test_gpu_node_pool_without_the_taint_fires() -> None:
    (message,) = messages(nodes.NODE_GROUP_GPU_TAINT, [gpu_node_pool(taints=[])])
    assert message.startswith("GPU NodePool lacks the taint nvidia.com/gpu=true:NoSchedule")


def test_gpu_node_pool_with_the_eks_spelling_of_the_taint_fires() -> None:
    taints = [{"key": "nvidia.com/gpu", "value": "true", "effect": "NO_SCHEDULE"}]
    assert len(messages(nodes.NODE_GROUP_GPU_TAINT, [gpu_node_pool(taints=taints)])) == 1


def test_cpu_node_pool_needs_no_taint_or_allowed_type() -> None:
    cpu_pool = resource(
        NODE_POOL,
        "cpu-node-pool",
        {
            "apiVersion": "karpenter.sh/v1",
            "kind": "NodePool",
            "spec": {
                "template": {
                    "spec": {
                        "requirements": [
                            {"key": "karpenter.k8s.aws/instance-category", "operator": "In", "values": ["m", "c"]}
                        ]
                    }
                }
            },
        },
    )
    for rule in (nodes.NODE_GROUP_GPU_TAINT, nodes.NODE_GROUP_ALLOWED_GPU_TYPES):
        assert messages(rule, [cpu_pool], ALLOWED) == [], rule.name


def test_gpu_node_pool_of_a_type_outside_the_environments_list_fires() -> None:
    (message,) = messages(nodes.NODE_GROUP_ALLOWED_GPU_TYPES, [gpu_node_pool("p5.48xlarge")], ALLOWED)
    assert "['p5.48xlarge'] are not allowed" in message


def test_gpu_node_pool_that_pins_no_instance_type_fires() -> None:
    requirements = [{"key": "karpenter.k8s.aws/instance-family", "operator": "In", "values": ["p5"]}]
    (message,) = messages(nodes.NODE_GROUP_ALLOWED_GPU_TYPES, [gpu_node_pool(requirements=requirements)], ALLOWED)
    assert "no node.kubernetes.io/instance-type In requirement" in message


def test_gpu_node_pool_whose_requirements_are_not_yet_known_is_skipped() -> None:
    pool = gpu_node_pool(requirements="[unknown]", taints="[unknown]")
    for rule in (nodes.NODE_GROUP_GPU_TAINT, nodes.NODE_GROUP_ALLOWED_GPU_TYPES):
        assert messages(rule, [pool], ALLOWED) == [], rule.name


def test_node_class_allowing_imdsv1_fires() -> None:
    optional = node_class(metadataOptions={"httpEndpoint": "enabled", "httpTokens": "optional"})
    (message,) = messages(nodes.LAUNCH_TEMPLATE_IMDSV2, [optional])
    assert "httpTokens='optional'" in message


def test_node_class_left_to_karpenters_defaults_passes() -> None:
    spec = node_class()["inputs"]["spec"]
    del spec["metadataOptions"], spec["blockDeviceMappings"]
    defaults = resource(NODE_CLASS, "defaults", {"apiVersion": "karpenter.k8s.aws/v1", "spec": spec})
    assert messages(nodes.LAUNCH_TEMPLATE_IMDSV2, [defaults]) == []
    assert messages(nodes.LAUNCH_TEMPLATE_ENCRYPTED_VOLUMES, [defaults]) == []


def test_node_class_with_an_unencrypted_volume_fires() -> None:
    mappings = [{"deviceName": "/dev/xvda", "ebs": {"volumeSize": "200Gi", "encrypted": False}}]
    (message,) = messages(nodes.LAUNCH_TEMPLATE_ENCRYPTED_VOLUMES, [node_class(blockDeviceMappings=mappings)])
    assert "/dev/xvda: ebs.encrypted is not true" in message
