"""Launch-template rules (IMDSv2, encrypted volumes), for launch templates and Karpenter's EC2NodeClasses: an
EC2NodeClass is the launch template of the nodes Karpenter launches. GPU capacity rules are in `gpu_pools`.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from modelplane.policies.deployability.cluster_model import NODE_CLASS_TYPES
from modelplane.policies.rules.props import as_dict, as_list, dig, is_true, is_unknown
from modelplane.policies.rules.rule import ResourceRule, Rule

LAUNCH_TEMPLATE_TYPES = frozenset({"aws:ec2/launchTemplate:LaunchTemplate"})


def _launch_settings(type_: str, props: dict[str, Any]) -> dict[str, Any]:
    """Where the launch settings sit: a launch template's own inputs, an EC2NodeClass's spec."""
    return as_dict(props.get("spec")) if type_ in NODE_CLASS_TYPES else props


def _imdsv2(type_: str, props: dict[str, Any], _config: Mapping[str, Any]) -> list[str]:
    settings = _launch_settings(type_, props)
    tokens = dig(settings, "metadataOptions", "httpTokens")
    # An EC2NodeClass without metadataOptions gets Karpenter's default: httpTokens required.
    if tokens is None and type_ in NODE_CLASS_TYPES and not is_unknown(settings.get("metadataOptions")):
        return []
    if is_unknown(tokens) or tokens == "required" or dig(settings, "metadataOptions", "httpEndpoint") == "disabled":
        return []
    return [f"metadataOptions.httpTokens={tokens!r}; set 'required' so only IMDSv2 sessions reach the node role"]


def _encrypted_volumes(type_: str, props: dict[str, Any], _config: Mapping[str, Any]) -> list[str]:
    settings = _launch_settings(type_, props)
    mappings = settings.get("blockDeviceMappings")
    if is_unknown(mappings) or is_unknown(props.get("spec")):
        return []
    # Without blockDeviceMappings Karpenter gives its nodes its own encrypted default volumes.
    if mappings is None and type_ in NODE_CLASS_TYPES:
        return []
    if not as_list(mappings):
        return ["no blockDeviceMappings: the root volume's encryption is left to the AMI and account default"]
    problems = []
    for mapping in as_list(mappings):
        ebs = as_dict(dig(mapping, "ebs"))
        encrypted = ebs.get("encrypted")
        if ebs and not is_unknown(encrypted) and not is_true(encrypted):
            device = dig(mapping, "deviceName") or "?"
            problems.append(f"blockDeviceMappings {device}: ebs.encrypted is not true; encrypt every volume")
    return problems


LAUNCH_TEMPLATE_IMDSV2 = ResourceRule(
    name="aws-ec2-launchtemplate-require-imdsv2",
    description="Launch templates require IMDSv2 (metadataOptions.httpTokens 'required').",
    why="With IMDSv1 a server-side request forgery in any pod can read the node role's credentials.",
    resource_types=LAUNCH_TEMPLATE_TYPES | NODE_CLASS_TYPES,
    check=_imdsv2,
)
LAUNCH_TEMPLATE_ENCRYPTED_VOLUMES = ResourceRule(
    name="aws-ec2-launchtemplate-require-encrypted-volumes",
    description="Launch templates declare their EBS volumes, all encrypted.",
    why="Node volumes cache datasets, model weights and container images.",
    resource_types=LAUNCH_TEMPLATE_TYPES | NODE_CLASS_TYPES,
    check=_encrypted_volumes,
)
RULES: list[Rule] = [LAUNCH_TEMPLATE_IMDSV2, LAUNCH_TEMPLATE_ENCRYPTED_VOLUMES]
