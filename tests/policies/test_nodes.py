from __future__ import annotations

from typing import Any

import pytest

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
