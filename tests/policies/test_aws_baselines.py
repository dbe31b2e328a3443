"""AWS baselines: KMS rotation, security groups open to the internet, EBS volumes and EC2 instances."""

from __future__ import annotations

from typing import Any

import pytest

from modelplane.policies.rules import compute, kms, network
from modelplane.policies.rules.rule import ResourceRule
from tests.policies.harness import resource, violations

KEY = "aws:kms/key:Key"
GROUP = "aws:ec2/securityGroup:SecurityGroup"
GROUP_RULE = "aws:ec2/securityGroupRule:SecurityGroupRule"
INGRESS_RULE = "aws:vpc/securityGroupIngressRule:SecurityGroupIngressRule"
VOLUME = "aws:ebs/volume:Volume"
INSTANCE = "aws:ec2/instance:Instance"
GOOD_INSTANCE = {
    "ami": "ami-1",
    "instanceType": "m7i.large",
    "metadataOptions": {"httpTokens": "required", "httpPutResponseHopLimit": 1.0},
    "rootBlockDevice": {"encrypted": True, "volumeSize": 50.0},
    "ebsBlockDevices": [{"deviceName": "/dev/sdf", "encrypted": True}],
}


def decided(rule: ResourceRule, type_: str, inputs: dict[str, Any]) -> list[str]:
    reports = violations(rule, [resource(type_, "subject", inputs)])
    assert not [r for r in reports if r.advice], reports
    return [r.message for r in reports]


@pytest.mark.parametrize(
    "inputs",
    [
        {"enableKeyRotation": True},
        {"enableKeyRotation": True, "rotationPeriodInDays": 90.0},
        {"customerMasterKeySpec": "RSA_2048", "keyUsage": "SIGN_VERIFY"},
        {"keySpec": "HMAC_256", "keyUsage": "GENERATE_VERIFY_MAC"},
        {"enableKeyRotation": "[unknown]"},
    ],
    ids=["rotating", "rotating-quarterly", "asymmetric", "hmac", "unknown"],
)
def test_kms_keys_that_rotate_or_cannot_pass(inputs: dict[str, Any]) -> None:
    assert decided(kms.KMS_KEY_ROTATION, KEY, inputs) == []


@pytest.mark.parametrize(
    "inputs",
    [{}, {"enableKeyRotation": False}, {"keySpec": "SYMMETRIC_DEFAULT", "description": "artifacts"}],
    ids=["unset", "off", "symmetric-unset"],
)
def test_symmetric_kms_key_without_rotation_fires(inputs: dict[str, Any]) -> None:
    (message,) = decided(kms.KMS_KEY_ROTATION, KEY, inputs)
    assert "enableKeyRotation" in message


def ingress(protocol: str, from_port: float, to_port: float, **cidrs: list[str]) -> dict[str, Any]:
    return {"protocol": protocol, "fromPort": from_port, "toPort": to_port, **cidrs}


@pytest.mark.parametrize(
    ("type_", "inputs", "exposed"),
    [
        (GROUP, {"ingress": [ingress("tcp", 22.0, 22.0, cidrBlocks=["0.0.0.0/0"])]}, "SSH (22)"),
        (GROUP, {"ingress": [ingress("-1", 0.0, 0.0, ipv6CidrBlocks=["::/0"])]}, "every port and protocol"),
        (GROUP, {"ingress": [ingress("tcp", 0.0, 65535.0, cidrBlocks=["10.0.0.0/8", "0.0.0.0/0"])]}, "every tcp port"),
        (GROUP, {"ingress": [ingress("6", 3000.0, 4000.0, cidrBlocks=["0.0.0.0/0"])]}, "RDP (3389)"),
        (GROUP_RULE, {"type": "ingress", **ingress("all", 0.0, 0.0, cidrBlocks=["0.0.0.0/0"])}, "every port"),
        (GROUP_RULE, {"type": "ingress", **ingress("udp", 3389.0, 3389.0, cidrBlocks=["0.0.0.0/0"])}, "RDP"),
        (INGRESS_RULE, {"ipProtocol": "tcp", "fromPort": 22.0, "toPort": 22.0, "cidrIpv4": "0.0.0.0/0"}, "SSH"),
        (INGRESS_RULE, {"ipProtocol": "-1", "cidrIpv6": "::/0"}, "every port"),
    ],
    ids=[
        "ssh",
        "all-ipv6",
        "port-range",
        "rdp-in-range",
        "rule-all",
        "rdp-udp",
        "ingress-rule-ssh",
        "ingress-rule-all",
    ],
)
def test_security_group_open_to_the_internet_fires(type_: str, inputs: dict[str, Any], exposed: str) -> None:
    (message,) = decided(network.SECURITY_GROUP_NO_OPEN_INGRESS, type_, inputs)
    assert exposed in message


@pytest.mark.parametrize(
    ("type_", "inputs"),
    [
        (GROUP, {"ingress": [ingress("tcp", 443.0, 443.0, cidrBlocks=["0.0.0.0/0"])]}),
        (GROUP, {"ingress": [ingress("tcp", 22.0, 22.0, cidrBlocks=["10.0.0.0/16"])]}),
        (GROUP, {"ingress": [ingress("udp", 22.0, 22.0, cidrBlocks=["0.0.0.0/0"])]}),
        (GROUP, {"ingress": [ingress("icmp", -1.0, -1.0, cidrBlocks=["0.0.0.0/0"])]}),
        (GROUP, {"ingress": [{"protocol": "-1", "fromPort": 0.0, "toPort": 0.0, "self": True}]}),
        (GROUP, {"egress": [ingress("-1", 0.0, 0.0, cidrBlocks=["0.0.0.0/0"])]}),
        (GROUP_RULE, {"type": "egress", **ingress("-1", 0.0, 0.0, cidrBlocks=["0.0.0.0/0"])}),
        (INGRESS_RULE, {"ipProtocol": "-1", "referencedSecurityGroupId": "sg-1"}),
        (INGRESS_RULE, {"ipProtocol": "tcp", "fromPort": 22.0, "toPort": 22.0, "cidrIpv4": "[unknown]"}),
    ],
    ids=["https", "ssh-from-vpc", "udp-22", "icmp", "self", "egress", "egress-rule", "group-reference", "unknown"],
)
def test_security_group_reaching_only_what_it_should_passes(type_: str, inputs: dict[str, Any]) -> None:
    assert decided(network.SECURITY_GROUP_NO_OPEN_INGRESS, type_, inputs) == []


def test_unreadable_cidr_is_undecided() -> None:
    rule = {"ipProtocol": "tcp", "fromPort": 22.0, "toPort": 22.0, "cidrIpv4": "everywhere"}
    (report,) = violations(network.SECURITY_GROUP_NO_OPEN_INGRESS, [resource(INGRESS_RULE, "r", rule)])
    assert report.advice


@pytest.mark.parametrize(
    ("inputs", "fires"),
    [({"encrypted": True, "size": 100.0}, False), ({"encrypted": "true"}, False), ({"size": 100.0}, True)],
    ids=["encrypted", "encrypted-string", "unset"],
)
def test_ebs_volume_encryption(inputs: dict[str, Any], fires: bool) -> None:
    assert bool(decided(compute.EBS_VOLUME_ENCRYPTED, VOLUME, {"availabilityZone": "us-east-1a", **inputs})) == fires


@pytest.mark.parametrize(
    ("rule", "inputs"),
    [
        (compute.INSTANCE_IMDSV2, GOOD_INSTANCE),
        (compute.INSTANCE_ENCRYPTED_VOLUMES, GOOD_INSTANCE),
        (compute.INSTANCE_IMDSV2, {"launchTemplate": {"id": "lt-1", "version": "$Latest"}}),
        (compute.INSTANCE_ENCRYPTED_VOLUMES, {"launchTemplate": {"id": "lt-1", "version": "$Latest"}}),
        (compute.INSTANCE_IMDSV2, {**GOOD_INSTANCE, "metadataOptions": {"httpEndpoint": "disabled"}}),
    ],
    ids=["imds", "volumes", "imds-from-template", "volumes-from-template", "imds-disabled"],
)
def test_sound_instance_passes(rule: ResourceRule, inputs: dict[str, Any]) -> None:
    assert decided(rule, INSTANCE, inputs) == []


@pytest.mark.parametrize(
    ("rule", "inputs", "named"),
    [
        (compute.INSTANCE_IMDSV2, {**GOOD_INSTANCE, "metadataOptions": None}, "httpTokens=None"),
        (compute.INSTANCE_IMDSV2, {**GOOD_INSTANCE, "metadataOptions": {"httpTokens": "optional"}}, "'optional'"),
        (
            compute.INSTANCE_IMDSV2,
            {"launchTemplate": {"id": "lt-1"}, "metadataOptions": {"httpTokens": "optional"}},
            "'optional'",
        ),
        (compute.INSTANCE_ENCRYPTED_VOLUMES, {**GOOD_INSTANCE, "rootBlockDevice": None}, "rootBlockDevice"),
        (compute.INSTANCE_ENCRYPTED_VOLUMES, {**GOOD_INSTANCE, "rootBlockDevice": {"encrypted": False}}, "root"),
        (
            compute.INSTANCE_ENCRYPTED_VOLUMES,
            {**GOOD_INSTANCE, "ebsBlockDevices": [{"deviceName": "/dev/sdf", "volumeSize": 500.0}]},
            "/dev/sdf",
        ),
    ],
    ids=["imds-unset", "imds-optional", "template-overridden", "root-unset", "root-off", "data-volume"],
)
def test_unsafe_instance_fires(rule: ResourceRule, inputs: dict[str, Any], named: str) -> None:
    (message,) = decided(rule, INSTANCE, inputs)
    assert named in message
