from __future__ import annotations

import re
from typing import Any

import pytest

from modelplane.components.gpu_nodes import AmiFamily, CapacityType
from modelplane.components.node_pools import GpuNodePool, GpuNodePoolArgs, SystemNodePool, SystemNodePoolArgs
from modelplane.plan.mocks import RecordingMonitor, planned_id
from tests.conftest import ProgramRunner
from tests.resources import Registered

NODE_GROUP = "aws:eks/nodeGroup:NodeGroup"
LAUNCH_TEMPLATE = "aws:ec2/launchTemplate:LaunchTemplate"
PLACEMENT_GROUP = "aws:ec2/placementGroup:PlacementGroup"
SECURITY_GROUP = "aws:ec2/securityGroup:SecurityGroup"
RESERVATION = "cr-0123456789abcdef0"


def gpu_pool(run_program: ProgramRunner, **overrides: Any) -> Registered:
    args: GpuNodePoolArgs = {
        "cluster_name": "demo",
        "node_role_arn": "arn:aws:iam::123456789012:role/node",
        "subnet_ids": ["subnet-a", "subnet-b", "subnet-c"],
        "pool_name": "train",
        "max_size": 2,
        "tags": {"env": "dev"},
    }
    args.update(overrides)  # type: ignore[typeddict-item]
    return run_program(lambda: GpuNodePool("gpu", args))


def efa_pool(run_program: ProgramRunner, **overrides: Any) -> Registered:
    return gpu_pool(
        run_program,
        instance_type="p5.48xlarge",
        efa=True,
        vpc_id="vpc-1",
        cluster_security_group_id="sg-cluster",
        **overrides,
    )


def system_pool(run_program: ProgramRunner, **overrides: Any) -> Registered:
    args: SystemNodePoolArgs = {
        "cluster_name": "demo",
        "node_role_arn": "arn:aws:iam::123456789012:role/node",
        "subnet_ids": ["subnet-a", "subnet-b"],
    }
    args.update(overrides)  # type: ignore[typeddict-item]
    return run_program(lambda: SystemNodePool("system", args))


def test_gpu_pool_children_are_named_after_and_parented_to_it(run_program: ProgramRunner) -> None:
    reg = efa_pool(run_program)
    component = reg.one("modelplane:compute:GpuNodePool", "gpu")
    children = reg.children_of(component)
    assert len(children) == len(reg) - 1
    assert {c.name for c in children} == {
        "gpu-nodes",
        "gpu-launch-template",
        "gpu-placement",
        "gpu-efa",
        "gpu-efa-ingress",
        "gpu-efa-egress",
    }


def test_gpu_node_group_is_tainted_labelled_and_typed(run_program: ProgramRunner) -> None:
    group = gpu_pool(run_program, labels={"team": "nlp"}).one(NODE_GROUP, "gpu-nodes").inputs
    assert group["amiType"] == "AL2023_x86_64_NVIDIA"
    assert group["instanceTypes"] == ["g6.xlarge"]
    assert group["capacityType"] == "ON_DEMAND"
    assert group["taints"] == [{"key": "nvidia.com/gpu", "value": "true", "effect": "NO_SCHEDULE"}]
    assert group["labels"] == {
        "team": "nlp",
        "nvidia.com/gpu.present": "true",
        "modelplane.io/pool": "train",
        "modelplane.io/gpu-model": "L4",
    }
    assert group["subnetIds"] == ["subnet-a", "subnet-b", "subnet-c"]
    assert group["updateConfig"] == {"maxUnavailable": 1.0}
    assert group["launchTemplate"]["id"].startswith("gpu-launch-template-")
    assert group["tags"] == {"env": "dev"}


def test_desired_size_defaults_to_min_size(run_program: ProgramRunner) -> None:
    group = gpu_pool(run_program, min_size=1, max_size=3).one(NODE_GROUP).inputs
    assert group["scalingConfig"] == {"minSize": 1.0, "maxSize": 3.0, "desiredSize": 1.0}


def test_autoscaled_desired_size_is_not_reset(run_program: ProgramRunner, monkeypatch: pytest.MonkeyPatch) -> None:
    ignored: dict[str, list[str]] = {}
    register = RecordingMonitor.RegisterResource

    def recording(self: RecordingMonitor, request: Any) -> Any:
        ignored[request.name] = list(request.ignoreChanges)
        return register(self, request)

    monkeypatch.setattr(RecordingMonitor, "RegisterResource", recording)
    gpu_pool(run_program)
    system_pool(run_program)
    assert ignored["gpu-nodes"] == ["scalingConfig.desiredSize"]
    assert ignored["system-nodes"] == ["scalingConfig.desiredSize"]


def test_launch_template_requires_imdsv2_and_encrypts_gp3(run_program: ProgramRunner) -> None:
    template = gpu_pool(run_program, disk_size_gib=300).one(LAUNCH_TEMPLATE, "gpu-launch-template").inputs
    assert template["metadataOptions"] == {
        "httpEndpoint": "enabled",
        "httpTokens": "required",
        "httpPutResponseHopLimit": 1.0,
    }
    assert template["blockDeviceMappings"] == [
        {
            "deviceName": "/dev/xvda",
            "ebs": {"volumeSize": 300.0, "volumeType": "gp3", "encrypted": "true", "deleteOnTermination": "true"},
        }
    ]
    assert {s["resourceType"] for s in template["tagSpecifications"]} == {"instance", "volume", "network-interface"}
    assert template["tagSpecifications"][0]["tags"] == {"env": "dev", "Name": "train"}
    assert "networkInterfaces" not in template and "placement" not in template


def test_bottlerocket_on_arm_uses_its_ami_and_data_volume(run_program: ProgramRunner) -> None:
    reg = gpu_pool(run_program, instance_type="g5g.xlarge", ami_family=AmiFamily.BOTTLEROCKET)
    assert reg.one(NODE_GROUP).inputs["amiType"] == "BOTTLEROCKET_ARM_64_NVIDIA"
    assert reg.one(LAUNCH_TEMPLATE).inputs["blockDeviceMappings"][0]["deviceName"] == "/dev/xvdb"


def test_efa_pool_packs_nodes_in_one_az_and_placement_group(run_program: ProgramRunner) -> None:
    reg = efa_pool(run_program)
    assert reg.one(PLACEMENT_GROUP, "gpu-placement").inputs["strategy"] == "cluster"
    template = reg.one(LAUNCH_TEMPLATE).inputs
    assert template["placement"]["groupName"] == "gpu-placement"
    assert reg.one(NODE_GROUP).inputs["subnetIds"] == ["subnet-a"]


def test_efa_pool_attaches_one_interface_per_card_with_both_groups(run_program: ProgramRunner) -> None:
    reg = efa_pool(run_program)
    interfaces = reg.one(LAUNCH_TEMPLATE).inputs["networkInterfaces"]
    efa_group = reg.one(SECURITY_GROUP, "gpu-efa")
    assert len(interfaces) == 32
    assert interfaces[0]["deviceIndex"] == 0.0 and interfaces[0]["networkCardIndex"] == 0.0
    assert interfaces[31]["networkCardIndex"] == 31.0
    assert all(i["interfaceType"] == "efa" for i in interfaces)
    groups = interfaces[0]["securityGroups"]
    assert groups == [planned_id("aws:ec2/securityGroup:SecurityGroup", "gpu-efa"), "sg-cluster"]
    assert efa_group.inputs["vpcId"] == "vpc-1"


def test_efa_group_allows_all_traffic_to_and_from_itself(run_program: ProgramRunner) -> None:
    reg = efa_pool(run_program)
    for kind, name in (("Ingress", "gpu-efa-ingress"), ("Egress", "gpu-efa-egress")):
        rule = reg.one(f"aws:vpc/securityGroup{kind}Rule:SecurityGroup{kind}Rule", name).inputs
        assert rule["ipProtocol"] == "-1"
        assert rule["securityGroupId"] == rule["referencedSecurityGroupId"]
        assert rule["securityGroupId"] == planned_id("aws:ec2/securityGroup:SecurityGroup", "gpu-efa")


def test_capacity_block_launches_into_its_reservation_without_placement_group(run_program: ProgramRunner) -> None:
    reg = efa_pool(run_program, capacity_type=CapacityType.CAPACITY_BLOCK, capacity_reservation_id=RESERVATION)
    assert not reg.of_type(PLACEMENT_GROUP)
    template = reg.one(LAUNCH_TEMPLATE).inputs
    assert "placement" not in template
    assert template["instanceMarketOptions"] == {"marketType": "capacity-block"}
    assert template["capacityReservationSpecification"] == {
        "capacityReservationTarget": {"capacityReservationId": RESERVATION}
    }
    assert reg.one(NODE_GROUP).inputs["capacityType"] == "CAPACITY_BLOCK"


def test_pool_without_efa_has_no_placement_or_security_group(run_program: ProgramRunner) -> None:
    reg = gpu_pool(run_program, capacity_type=CapacityType.SPOT)
    assert not reg.of_type(PLACEMENT_GROUP) and not reg.of_type(SECURITY_GROUP)
    assert reg.one(NODE_GROUP).inputs["capacityType"] == "SPOT"


def test_system_pool_is_untainted_on_demand_standard_nodes(run_program: ProgramRunner) -> None:
    reg = system_pool(run_program, labels={"team": "platform"})
    component = reg.one("modelplane:compute:SystemNodePool", "system")
    assert {c.name for c in reg.children_of(component)} == {"system-nodes", "system-launch-template"}
    group = reg.one(NODE_GROUP, "system-nodes").inputs
    assert group["amiType"] == "AL2023_x86_64_STANDARD"
    assert group["instanceTypes"] == ["m7i.xlarge"]
    assert group["capacityType"] == "ON_DEMAND"
    assert "taints" not in group
    assert group["labels"] == {"team": "platform", "modelplane.io/pool": "system"}
    assert group["scalingConfig"] == {"minSize": 2.0, "maxSize": 4.0, "desiredSize": 2.0}
    template = reg.one(LAUNCH_TEMPLATE).inputs
    assert template["metadataOptions"]["httpTokens"] == "required"
    assert template["blockDeviceMappings"][0]["ebs"]["volumeSize"] == 50.0
    assert template["blockDeviceMappings"][0]["ebs"]["encrypted"] == "true"


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"min_size": 1, "max_size": 0}, "GpuNodePool 'gpu'.max_size=0: must be at least min_size (1)"),
        ({"min_size": -1}, "min_size=-1: must be at least 0"),
        (
            {"min_size": 1, "max_size": 2, "desired_size": 3},
            "desired_size=3: must lie within min_size..max_size (1..2)",
        ),
        ({"instance_type": "m7i.large"}, "instance_type='m7i.large': unknown GPU instance type"),
        ({"efa": True}, "efa=True: g6.xlarge has no EFA"),
        ({"instance_type": "p5.48xlarge", "efa": True}, "vpc_id=None: required with efa=True"),
        ({"capacity_type": CapacityType.CAPACITY_BLOCK}, "capacity_reservation_id=None"),
        ({"capacity_reservation_id": RESERVATION}, "capacity_reservation_id='cr-0123456789abcdef0': only with"),
        ({"labels": {"modelplane.io/pool": "x"}}, "modelplane.io/pool set by modelplane"),
    ],
)
def test_invalid_gpu_pool_args_are_refused(run_program: ProgramRunner, overrides: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=re.escape(message)):
        gpu_pool(run_program, **overrides)


def test_invalid_system_pool_args_are_refused(run_program: ProgramRunner) -> None:
    with pytest.raises(ValueError, match=r"SystemNodePool 'system'\.max_size=1: must be at least min_size \(2\)"):
        system_pool(run_program, max_size=1)
