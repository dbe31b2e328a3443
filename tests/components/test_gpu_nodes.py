from __future__ import annotations

import pytest

from modelplane.components.gpu_nodes import (
    GPU_TAINT,
    SYSTEM_AMI_TYPE,
    AmiFamily,
    CapacityType,
    ami_type_for,
    block_device_mappings,
    capacity_block_launch,
    efa_network_interfaces,
    gpu_node_labels,
    metadata_options,
    uses_placement_group,
)
from modelplane.terms.gpu_catalog import gpu_instance_type
from modelplane.terms.scheduling import GPU_TAINT_KEY, POOL_LABEL, gpu_toleration


@pytest.mark.parametrize(
    ("instance_type", "family", "ami_type"),
    [
        ("g6.xlarge", AmiFamily.AL2023, "AL2023_x86_64_NVIDIA"),
        ("p5.48xlarge", AmiFamily.BOTTLEROCKET, "BOTTLEROCKET_x86_64_NVIDIA"),
        ("g5g.xlarge", AmiFamily.AL2023, "AL2023_ARM_64_NVIDIA"),
        ("g5g.16xlarge", AmiFamily.BOTTLEROCKET, "BOTTLEROCKET_ARM_64_NVIDIA"),
    ],
)
def test_ami_type_follows_architecture_and_family(instance_type: str, family: AmiFamily, ami_type: str) -> None:
    assert ami_type_for(instance_type, family) == ami_type


def test_ami_family_defaults_to_al2023() -> None:
    assert ami_type_for("g6e.xlarge") == "AL2023_x86_64_NVIDIA"


def test_system_nodes_use_the_standard_al2023_ami() -> None:
    assert SYSTEM_AMI_TYPE == "AL2023_x86_64_STANDARD"


def test_unknown_instance_type_is_refused() -> None:
    with pytest.raises(KeyError, match=r"m7i\.large"):
        ami_type_for("m7i.large")


def test_taint_uses_eks_spelling_and_toleration_kubernetes_spelling() -> None:
    assert GPU_TAINT == {"key": "nvidia.com/gpu", "value": "true", "effect": "NO_SCHEDULE"}
    assert gpu_toleration() == {"key": GPU_TAINT_KEY, "operator": "Equal", "value": "true", "effect": "NoSchedule"}


def test_gpu_labels_name_pool_and_model_and_keep_user_labels() -> None:
    labels = gpu_node_labels("train", gpu_instance_type("p5.48xlarge"), {"team": "nlp"})
    assert labels == {
        "team": "nlp",
        "nvidia.com/gpu.present": "true",
        POOL_LABEL: "train",
        "modelplane.io/gpu-model": "H100",
    }


def test_user_labels_cannot_redefine_modelplane_labels() -> None:
    with pytest.raises(ValueError, match=r"modelplane\.io/pool set by modelplane"):
        gpu_node_labels("train", gpu_instance_type("g6.xlarge"), {POOL_LABEL: "other"})


def test_imds_v2_required_and_only_from_the_node_itself() -> None:
    # Hop limit 1: a pod in its own network namespace gets no answer, so it cannot take the node role.
    assert metadata_options() == {
        "http_endpoint": "enabled",
        "http_tokens": "required",
        "http_put_response_hop_limit": 1,
    }


def test_al2023_sizes_its_root_volume_encrypted_gp3() -> None:
    (mapping,) = block_device_mappings(AmiFamily.AL2023, 200)
    assert mapping["device_name"] == "/dev/xvda"
    assert mapping["ebs"] == {
        "volume_size": 200,
        "volume_type": "gp3",
        "encrypted": "true",
        "delete_on_termination": "true",
    }


def test_bottlerocket_sizes_its_data_volume() -> None:
    (mapping,) = block_device_mappings(AmiFamily.BOTTLEROCKET, 500)
    assert mapping["device_name"] == "/dev/xvdb"
    assert mapping["ebs"] == {
        "volume_size": 500,
        "volume_type": "gp3",
        "encrypted": "true",
        "delete_on_termination": "true",
    }


@pytest.mark.parametrize(("instance_type", "count"), [("g6.8xlarge", 1), ("p4d.24xlarge", 4), ("p5.48xlarge", 32)])
def test_one_efa_interface_per_network_card(instance_type: str, count: int) -> None:
    interfaces = efa_network_interfaces(gpu_instance_type(instance_type), ["sg-efa", "sg-cluster"])
    assert len(interfaces) == count
    assert [i["network_card_index"] for i in interfaces] == list(range(count))
    assert interfaces[0]["device_index"] == 0
    assert all(i["device_index"] == 1 for i in interfaces[1:])
    assert all(i["interface_type"] == "efa" and i["security_groups"] == ["sg-efa", "sg-cluster"] for i in interfaces)


def test_efa_interfaces_need_an_efa_type() -> None:
    with pytest.raises(ValueError, match=r"g6.xlarge has no EFA"):
        efa_network_interfaces(gpu_instance_type("g6.xlarge"), ["sg-efa"])


@pytest.mark.parametrize(
    ("efa", "capacity_type", "expected"),
    [
        (True, CapacityType.ON_DEMAND, True),
        (True, CapacityType.SPOT, True),
        (True, CapacityType.CAPACITY_BLOCK, False),
        (False, CapacityType.ON_DEMAND, False),
    ],
)
def test_placement_group_only_for_efa_outside_capacity_blocks(
    efa: bool, capacity_type: CapacityType, expected: bool
) -> None:
    assert uses_placement_group(efa, capacity_type) is expected


def test_capacity_block_launches_into_its_reservation() -> None:
    launch = capacity_block_launch(CapacityType.CAPACITY_BLOCK, "cr-0123456789abcdef0")
    assert launch is not None
    assert launch.instance_market_options == {"market_type": "capacity-block"}
    assert launch.capacity_reservation_specification == {
        "capacity_reservation_target": {"capacity_reservation_id": "cr-0123456789abcdef0"}
    }


def test_other_capacity_types_have_no_capacity_block_settings() -> None:
    assert capacity_block_launch(CapacityType.ON_DEMAND, None) is None


def test_capacity_block_needs_its_reservation() -> None:
    with pytest.raises(ValueError, match="capacity_reservation_id=None"):
        capacity_block_launch(CapacityType.CAPACITY_BLOCK, None)
