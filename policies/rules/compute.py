"""EC2 rules outside launch templates: instances require IMDSv2 and encrypt their volumes, EBS volumes are encrypted.

An instance launched from a launch template takes what it leaves unset from the template, which the launch
template rules check; only what the instance sets itself is held against it then.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from modelplane.policies.rules.props import as_dict, as_list, dig, is_true, is_unknown
from modelplane.policies.rules.rule import ResourceRule, Rule

INSTANCE_TYPES = frozenset({"aws:ec2/instance:Instance", "aws:ec2/spotInstanceRequest:SpotInstanceRequest"})
VOLUME_TYPES = frozenset({"aws:ebs/volume:Volume"})


def _from_template(props: dict[str, Any]) -> bool:
    return props.get("launchTemplate") is not None


def _imdsv2(_type: str, props: dict[str, Any], _config: Mapping[str, Any]) -> list[str]:
    tokens = dig(props, "metadataOptions", "httpTokens")
    if is_unknown(tokens) or tokens == "required" or dig(props, "metadataOptions", "httpEndpoint") == "disabled":
        return []
    if tokens is None and _from_template(props):
        return []
    return [f"metadataOptions.httpTokens={tokens!r}; set 'required' so only IMDSv2 sessions reach the instance role"]


def _encrypted_volumes(_type: str, props: dict[str, Any], _config: Mapping[str, Any]) -> list[str]:
    root, extra = props.get("rootBlockDevice"), props.get("ebsBlockDevices")
    if is_unknown(root) or is_unknown(extra):
        return []
    problems = []
    root_encrypted = as_dict(root).get("encrypted")
    left_to_template = root_encrypted is None and _from_template(props)
    if not is_unknown(root_encrypted) and not is_true(root_encrypted) and not left_to_template:
        problems.append(
            f"rootBlockDevice.encrypted is {root_encrypted!r}; encrypt the root volume instead of leaving it to "
            "the AMI and the account default"
        )
    for device in as_list(extra):
        encrypted = as_dict(device).get("encrypted")
        if not is_unknown(encrypted) and not is_true(encrypted):
            name = dig(device, "deviceName") or "?"
            problems.append(f"ebsBlockDevices {name}: encrypted is {encrypted!r}; encrypt every volume")
    return problems


def _encrypted_volume(_type: str, props: dict[str, Any], _config: Mapping[str, Any]) -> list[str]:
    encrypted = props.get("encrypted")
    if is_unknown(encrypted) or is_true(encrypted):
        return []
    return [f"encrypted is {encrypted!r}; set it true (with a KMS key) so the volume and its snapshots are encrypted"]


INSTANCE_IMDSV2 = ResourceRule(
    name="aws-ec2-instance-require-imdsv2",
    description="EC2 instances written outside a launch template require IMDSv2 (metadataOptions.httpTokens "
    "'required').",
    why="With IMDSv1 a server-side request forgery in any process on the instance reads the instance role's "
    "credentials.",
    resource_types=INSTANCE_TYPES,
    check=_imdsv2,
)
INSTANCE_ENCRYPTED_VOLUMES = ResourceRule(
    name="aws-ec2-instance-require-encrypted-volumes",
    description="EC2 instances written outside a launch template encrypt their root and EBS volumes.",
    why="Volumes hold datasets, checkpoints and credentials cached on disk; their snapshots outlive the instance.",
    resource_types=INSTANCE_TYPES,
    check=_encrypted_volumes,
)
EBS_VOLUME_ENCRYPTED = ResourceRule(
    name="aws-ebs-volume-require-encryption",
    description="EBS volumes the stack creates are encrypted.",
    why="A volume detached from its instance, or its snapshot shared by mistake, must not expose its data.",
    resource_types=VOLUME_TYPES,
    check=_encrypted_volume,
)

RULES: list[Rule] = [INSTANCE_IMDSV2, INSTANCE_ENCRYPTED_VOLUMES, EBS_VOLUME_ENCRYPTED]
