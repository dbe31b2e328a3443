from __future__ import annotations

from typing import Any

import pytest

from modelplane.components.karpenter_pools import ec2_node_class_manifest
from modelplane.policies.rules import nodes
from tests.policies.harness import messages, resource

LAUNCH_TEMPLATE = "aws:ec2/launchTemplate:LaunchTemplate"
GOOD_TEMPLATE = {
    "metadataOptions": {"httpEndpoint": "enabled", "httpTokens": "required", "httpPutResponseHopLimit": 2.0},
    "blockDeviceMappings": [{"deviceName": "/dev/xvda", "ebs": {"volumeSize": 200.0, "encrypted": "true"}}],
}


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


NODE_CLASS = "kubernetes:karpenter.k8s.aws/v1:EC2NodeClass"


def as_engine_sends(value: Any) -> Any:
    """`value` with every integer a float, as the engine carries numbers."""
    if isinstance(value, dict):
        return {key: as_engine_sends(item) for key, item in value.items()}
    if isinstance(value, list):
        return [as_engine_sends(item) for item in value]
    return float(value) if isinstance(value, int) and not isinstance(value, bool) else value


def node_class(**spec_changes: Any) -> dict[str, Any]:
    manifest = ec2_node_class_manifest(name="gpu-small", cluster_name="demo", node_role_name="karpenter-node")
    manifest["spec"].update(spec_changes)
    return resource(NODE_CLASS, "gpu-small-node-class", as_engine_sends(manifest))


def test_sound_node_class_passes_every_launch_template_rule() -> None:
    for rule in nodes.RULES:
        assert messages(rule, [node_class()]) == [], rule.name


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
